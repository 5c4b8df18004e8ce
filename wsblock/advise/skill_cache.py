"""The model's out-of-sample scores, kept until their inputs change.

Scoring the boundary model on the reference records takes seconds (every
repeat is forecast with each group held out in turn), and every ``advise``
that predicts a keepalive outcome states those scores, which are the same as
long as the records and the code that scores them are. So a result is kept
in this process and in ``<cache dir>/advise-skill.json``, under a key made
of:

* the reference directory, and every file under it: its path, size and
  modification time (nanoseconds), so that a record added, removed or
  rewritten changes the key;
* the model's version: the content of the ``wsblock`` package's source
  files, which hold the model, the rules it is scored against and the
  reading of the records;
* the arguments of the scoring (the phase grid).

A stored result whose key differs is computed again and replaced (written
atomically, so a concurrent reader sees the old result or the new one).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

CACHE_FILE = "advise-skill.json"
"""Name of the stored result in the cache directory (:func:`wsblock.paths.cache_dir`)."""

_memo: dict[str, list[dict[str, Any]]] = {}
_package: str | None = None


def _package_digest() -> str:
    # The package's source, read once per process: it does not change under a
    # running process in any way that would change this process's scores.
    global _package
    if _package is None:
        package = Path(__file__).resolve().parents[1]
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
        _package = digest.hexdigest()
    return _package


def key(root: Path, **arguments: Any) -> str:
    """The key of a scoring of the records under ``root`` with ``arguments``.

    Raises:
        OSError: A file under ``root`` or of the package cannot be read.
    """
    digest = hashlib.sha256()
    digest.update(_package_digest().encode())
    digest.update(json.dumps({"root": str(Path(root).resolve()), **arguments}, sort_keys=True, default=str).encode())
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            stat = os.stat(path)
            digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached(root: Path, compute: Callable[[], list[dict[str, Any]]], **arguments: Any) -> list[dict[str, Any]]:
    """The result of ``compute()`` for the records under ``root``, computed once per key.

    Args:
        root: The reference directory ``compute`` reads.
        compute: Scores the records; returns JSON-serialisable rows. An empty
            result is not stored (the scoring was not possible; it is tried
            again next time).
        arguments: Everything else the result depends on.
    """
    from wsblock import atomic, paths

    try:
        wanted = key(root, **arguments)
    except OSError:
        return compute()
    if wanted in _memo:
        return _memo[wanted]
    try:
        store = paths.cache_dir() / CACHE_FILE
    except OSError:
        store = None
    if store is not None:
        try:
            stored = json.loads(store.read_text(encoding="utf-8"))
            if isinstance(stored, dict) and stored.get("key") == wanted and isinstance(stored.get("rows"), list):
                _memo[wanted] = stored["rows"]
                return stored["rows"]
        except (OSError, ValueError):
            pass  # missing or damaged: compute it again
    rows = compute()
    if rows:
        _memo[wanted] = rows
        if store is not None:
            try:
                atomic.write_json(store, {"key": wanted, "rows": rows})
            except OSError:
                pass  # a read-only cache only costs the time of scoring again
    return rows


def forget() -> None:
    """Drop the results kept in this process (the stored file stays)."""
    _memo.clear()
