"""Where wsblock keeps per-machine state (calibration, generated data)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import psutil


def cache_dir() -> Path:
    """Return the cache directory, creating it if needed.

    ``WSBLOCK_CACHE_DIR`` wins; otherwise ``$XDG_CACHE_HOME/wsblock`` or
    ``~/.cache/wsblock``.
    """
    env = os.environ.get("WSBLOCK_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "wsblock"
    # Absolute: the paths handed to a server must not depend on its working
    # directory, which a user's function may change.
    path = path.absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Return the directory for generated workload input data."""
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


OWNER_FILE = ".wsblock-owner"
"""Marker in every temporary directory of a run: the owning process."""

TEMP_PREFIXES = ("wsblock-cell-", "wsblock-matrix-")
"""Prefixes of the temporary directories runs create."""

PARTIAL_SUFFIX = ".partial"
"""Suffix of cache files being written: ``NAME.<pid>-<start>.partial``."""


def _process_start(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def owner_tag() -> str:
    """``<pid>-<start time>`` of this process: unique even if pids are reused."""
    start = _process_start(os.getpid()) or 0.0
    return f"{os.getpid()}-{int(start)}"


def _owner_alive(tag: str) -> bool:
    """Whether the process named by an :func:`owner_tag` still runs."""
    pid_text, _, start_text = tag.strip().partition("-")
    try:
        pid, start = int(pid_text), float(start_text)
    except ValueError:
        return True  # not our format: never touch it
    running = _process_start(pid)
    return running is not None and abs(running - start) < 2.0


@contextlib.contextmanager
def run_temp_dir(prefix: str) -> Iterator[str]:
    """A temporary directory owned by this process, removed on exit.

    It holds an owner marker, so that :func:`clean_stale` can remove it if
    this process is killed before it can clean up. Child processes that get
    ``TMPDIR`` pointed here (see :func:`wsblock.engine.proc.Child`) put their
    own temporary files (``pymp-*`` of multiprocessing) inside it too.

    Args:
        prefix: One of :data:`TEMP_PREFIXES`.

    Yields:
        The directory's path.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        with open(os.path.join(path, OWNER_FILE), "w", encoding="utf-8") as handle:
            handle.write(owner_tag())
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def temp_env(directory: str) -> dict[str, str]:
    """Environment that puts a child's temporary files inside ``directory``.

    Empty when the path is too long for the Unix sockets multiprocessing
    creates there (about 100 bytes with the names it adds).
    """
    return {"TMPDIR": directory} if len(os.fsencode(directory)) <= 60 else {}


def partial_name(path: str) -> str:
    """Name under which a cache file is written before it is renamed to ``path``."""
    return f"{path}.{owner_tag()}{PARTIAL_SUFFIX}"


def clean_stale(temp_root: str | None = None) -> list[str]:
    """Remove what killed runs left behind: temporary directories, partial files.

    Only a directory with an owner marker (see :func:`run_temp_dir`), and a
    cache file named by :func:`partial_name`, whose owner process is gone is
    removed; anything else, including the files of runs still going, is left
    alone.

    Args:
        temp_root: Where to look for temporary directories (default: the
            system's temporary directory, ``TMPDIR``).

    Returns:
        The paths removed.
    """
    removed: list[str] = []
    temp_root = temp_root or tempfile.gettempdir()
    try:
        entries = list(os.scandir(temp_root))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIXES):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            with open(os.path.join(entry.path, OWNER_FILE), encoding="utf-8") as handle:
                tag = handle.read()
        except OSError:
            continue  # no marker (yet, or not ours)
        if not _owner_alive(tag):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    try:
        cached = list(os.scandir(data_dir()))
    except OSError:
        cached = []
    for entry in cached:
        if not entry.name.endswith(PARTIAL_SUFFIX):
            continue
        tag = entry.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1]
        if not _owner_alive(tag):
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except OSError:
                pass
    return removed
