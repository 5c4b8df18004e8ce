"""The layout of a run directory, as ``wsblock matrix`` writes it, and its one reader.

``DIR/manifest.json`` (the matrix, the command, the environment, the skipped
pairs, the planned cells), ``DIR/cells/<cell_id>.json`` (one record per cell
and repeat) and ``DIR/cells.csv`` (the tidy table). A directory of
standalone records from ``wsblock run --out`` (``DIR/*.json``) reads the same
way.

Every tool that reads a run (``matrix`` when it resumes, ``report``,
``advise DIR``, ``compare``, ``findings``, ``boundary model`` and its scores
through :func:`ok_records`) goes through :func:`load`:

* files are read by :mod:`wsblock.inputs` (regular files only, bounded in
  size and nesting, never blocking);
* the manifest is checked by type (:func:`manifest_problem`); a damaged one
  is set aside with a warning;
* records are checked by :func:`wsblock.schema.record.load`, types included;
* the manifest decides which records belong: it lists each planned cell
  with a digest of its parameters (:func:`params_digest`), and a record in
  ``cells/`` that is not one of them (copied from another run, or edited)
  is left out with a warning. Manifests written before that list existed
  decide nothing: their records are read as they are.

A run directory has one writer at a time: :func:`lock` takes an exclusive
``flock`` on ``DIR/.lock`` and names its holder to anyone refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

MANIFEST = "manifest.json"
CELLS = "cells"
CSV_NAME = "cells.csv"
ADVICE_JSON = "advice.json"
"""The answer of ``wsblock advise`` in its run directory (:mod:`wsblock.advise.saved`)."""
ADVICE_MD = "advice.md"
"""The same answer for people; the report opens with it."""
LOCK_NAME = ".lock"
MANIFEST_VERSION = 1
MANIFEST_KIND = "wsblock.matrix"

PLANNED_KEY = "cells"
"""Manifest key: ``{cell_id: params digest}`` of every planned cell."""
PLANNED_PARAMS_KEY = "cell_params"
"""Manifest key: the parameter names each digest covers, in order."""


def record_path(directory: Path, cell_id: str) -> Path:
    """Where a matrix keeps the record of ``cell_id``."""
    return directory / CELLS / f"{cell_id}.json"


def record_files(directory: Path) -> list[Path]:
    """List the record files of a run directory.

    Args:
        directory: A run directory.

    Returns:
        ``DIR/cells/*.json`` if ``DIR/cells`` exists, else ``DIR/*.json``
        without the manifest; sorted so every tool sees the same order.
    """
    cells = directory / CELLS
    if cells.is_dir():
        return sorted(cells.glob("*.json"))
    return sorted(p for p in directory.glob("*.json") if p.name != MANIFEST)


def params_digest(params: dict[str, Any], keys: list[str]) -> str:
    """A short digest of the ``keys`` of a cell's ``params`` (a key it lacks counts as absent)."""
    chosen = [[k, params[k]] if k in params else [k] for k in keys]
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def planned_entries(cells: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The manifest's list of planned cells, from ``(cell_id, params)`` pairs.

    Returns:
        ``{PLANNED_PARAMS_KEY: [names], PLANNED_KEY: {cell_id: digest}}``.
    """
    keys = sorted({k for _, params in cells for k in params})
    return {PLANNED_PARAMS_KEY: keys, PLANNED_KEY: {cid: params_digest(p, keys) for cid, p in cells}}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def manifest_problem(data: Any) -> str | None:
    """Say what is wrong with a parsed manifest, or ``None``.

    Every key a tool reads is checked by type, so a damaged manifest is set
    aside whole instead of failing half-way through a run or a report.
    """
    if not isinstance(data, dict):
        return "a manifest must be a JSON object"
    if not isinstance(data.get("config"), dict):
        return "config: missing or not a table"
    if not isinstance(data.get("started_utc"), str):
        return "started_utc: missing or not a text"
    for key in ("command", "finished_utc", "profile", "config_path"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key}: not a text"
    sessions = data.get("sessions", [])
    if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
        return "sessions: not a list of sessions"
    for index, session in enumerate(sessions):
        overhead = session.get("overhead")
        if overhead is None:
            continue
        if not isinstance(overhead, dict):
            return f"sessions[{index}].overhead: not a table"
        for key in ("wall_s", "overhead_s", "measured_s", "cells"):
            if not _number(overhead.get(key)):
                return f"sessions[{index}].overhead.{key}: not a number"
        if overhead.get("calibrate_s") is not None and not _number(overhead["calibrate_s"]):
            return f"sessions[{index}].overhead.calibrate_s: not a number"
    if data.get("planned") is not None and not (isinstance(data["planned"], int)
                                                 and not isinstance(data["planned"], bool)):
        return "planned: not a whole number"
    skipped = data.get("skipped", [])
    if not isinstance(skipped, list) or not all(
            isinstance(s, dict) and isinstance(s.get("params", {}), dict) for s in skipped):
        return "skipped: not a list of skipped cells"
    for key in ("environment", "hosts", "overhead", "recovered_from"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key}: not a table"
    from wsblock.schema.record import check_environment

    try:
        check_environment(data.get("environment"), "environment")
    except ValueError as exc:
        return str(exc)
    if PLANNED_KEY in data or PLANNED_PARAMS_KEY in data:
        planned, keys = data.get(PLANNED_KEY), data.get(PLANNED_PARAMS_KEY)
        if not isinstance(planned, dict) or not all(isinstance(v, str) for v in planned.values()):
            return f"{PLANNED_KEY}: not a table of cell digests"
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return f"{PLANNED_PARAMS_KEY}: not a list of parameter names"
    return None


def read_manifest(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Read ``DIR/manifest.json``.

    Returns:
        ``(manifest, None)``; ``(None, None)`` when there is none;
        ``(None, reason)`` when it cannot be used (unreadable, not a regular
        file, too large or deep, or damaged: :func:`manifest_problem`).
    """
    from wsblock import inputs
    from wsblock.errors import UsageError

    path = directory / MANIFEST
    if not os.path.lexists(path):
        return None, None
    try:
        data = inputs.read_json(path, "manifest")
    except UsageError as exc:
        return None, _without_path(str(exc), path)
    problem = manifest_problem(data)
    if problem is not None:
        return None, problem
    return data, None


def _without_path(message: str, path: Path) -> str:
    # The warnings name the file already.
    for prefix in (f"manifest {path}: ", f"record {path}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message.replace(f" {path}", "")


def foreign(manifest: dict[str, Any] | None, path: Path, rec: dict[str, Any]) -> str | None:
    """Say why a record in ``cells/`` does not belong to the manifest's run, or ``None``.

    Args:
        manifest: The run's manifest (``None``, or one written before it
            listed its cells: nothing is decided).
        path: The record's file; its name is the cell id.
        rec: The record, as :func:`wsblock.schema.record.load` returns it.
    """
    if manifest is None or PLANNED_KEY not in manifest:
        return None
    planned: dict[str, str] = manifest[PLANNED_KEY]
    cell_id = path.stem
    if cell_id not in planned:
        return "not a cell of this run (the manifest does not list it)"
    tag = rec.get("matrix")
    if isinstance(tag, dict) and tag.get("cell_id") not in (None, cell_id):
        return f"recorded as cell {tag.get('cell_id')!r}, filed as {cell_id!r}"
    params = rec.get("params")
    if not isinstance(params, dict) or params_digest(params, manifest[PLANNED_PARAMS_KEY]) != planned[cell_id]:
        return "its parameters differ from the cell the manifest planned under that name"
    return None


@dataclass
class Loaded:
    """What :func:`load` found in a run directory.

    Attributes:
        records: ``(path, record)`` for every readable, valid record that
            belongs to the run, sorted by path.
        errors: ``(path, message)`` for every file that could not be used
            or does not belong (the manifest included).
        manifest: The run's ``manifest.json``, or ``None`` if there is none
            (or it is unusable; then it is listed in ``errors``).
    """

    records: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def read_record(path: Path) -> dict[str, Any]:
    """Read one record file: bounded, parsed, upgraded and checked by type.

    Raises:
        ValueError: Saying what is wrong (without the path).
    """
    from wsblock import inputs
    from wsblock.errors import UsageError
    from wsblock.schema import record

    try:
        data = inputs.read_json(path, "record")
    except UsageError as exc:
        raise ValueError(_without_path(str(exc), path)) from None
    return record.load(data)


def load(directory: str | Path) -> Loaded:
    """Read every record (and the manifest) of a run directory.

    A file that cannot be used does not stop the others: it goes to
    ``errors`` with a short reason, so a report can still render what is
    there.

    Raises:
        UsageError: If ``directory`` does not exist or is not a directory.
    """
    from wsblock.errors import UsageError

    root = Path(directory)
    if not root.exists():
        raise UsageError(f"no such directory: {root}")
    if not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    loaded = Loaded()
    manifest, problem = read_manifest(root)
    if problem is not None:
        loaded.errors.append((root / MANIFEST, f"damaged manifest, set aside: {problem}"))
    loaded.manifest = manifest
    try:
        files = record_files(root)
    except OSError as exc:
        raise UsageError(f"cannot list the records of {root}: {exc.strerror}") from None
    for path in files:
        try:
            rec = read_record(path)
        except ValueError as exc:
            loaded.errors.append((path, str(exc)))
            continue
        reason = foreign(manifest, path, rec) if path.parent.name == CELLS else None
        if reason is not None:
            loaded.errors.append((path, f"foreign record: {reason}"))
            continue
        loaded.records.append((path, rec))
    return loaded


def ok_records(directory: str | Path) -> list[dict[str, Any]]:
    """Every ``ok`` record of a run directory, in the current layout (:func:`load`, without the errors)."""
    from wsblock.schema import record

    return [rec for _, rec in load(directory).records if record.is_ok(rec)]


class Busy(Exception):
    """The run directory is locked by another writer (the message names it)."""


def _holder(handle: Any) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read(4096) or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    return (f"pid {info.get('pid', '?')}, started {info.get('started_utc', '?')}: "
            f"{info.get('command', 'an unknown command')}")


def holder(directory: Path) -> str | None:
    """Who holds the lock of ``directory`` (pid, start time, command), or ``None`` if nobody does.

    Takes the lock for a moment only to see whether it is free; writes nothing.
    """
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None  # no lock file (or not one: the writer refuses it)
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _holder(handle)
            return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
"""``flock`` errors of a file system that cannot lock (some network file systems)."""


@contextlib.contextmanager
def lock(directory: Path, *, command: str, started_utc: str) -> Iterator[bool]:
    """Hold the run directory's exclusive lock while the body runs.

    The lock is an ``flock`` on ``DIR/.lock``, released by the kernel when
    the process ends however it ends, so a killed writer never leaves a
    stale lock. The file says who holds it.

    Yields:
        ``True``; ``False`` on a file system that cannot lock, where the
        body runs unguarded (the caller says so).

    Raises:
        Busy: Another process holds it (naming it).
        UsageError: ``DIR/.lock`` is not a regular file (a symlink is
            never followed: the file is rewritten).
    """
    from wsblock.errors import UsageError

    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symbolic link, not the lock file; move it away") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file; move it away")
    handle = os.fdopen(fd, "r+", encoding="utf-8", errors="replace")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Busy(f"{directory} is being written by another wsblock process ({_holder(handle)})") from None
            if exc.errno in UNSUPPORTED:
                yield False
                return
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started_utc": started_utc, "command": command}) + "\n")
        handle.flush()
        yield True
    finally:
        handle.close()  # releases the lock
