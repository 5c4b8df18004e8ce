"""Checks of the paths and files a command is given, made before it starts.

Every file the suite reads on a user's behalf (a cell, a matrix file, a
findings document, a manifest, a record) goes through :func:`read_text` or
:func:`read_json`: only a regular file is opened, never a device, a FIFO or
anything under ``/proc``, ``/sys`` or ``/dev``; it is opened without blocking
(a FIFO swapped in after the check cannot hang the command), read up to a
size limit, decoded as UTF-8, and JSON is refused beyond a nesting depth
(deep nesting would exhaust the interpreter's recursion further on).

Every place the suite writes (a record, a run directory, a report) is
checked by :func:`check_out_file` or :func:`check_out_dir` before any work:
not a system directory, no name longer than the file system allows, and
writable, which only a real attempt shows (a read-only mount or an immutable
directory passes ``os.access`` for root).

Each check raises :class:`~wsblock.errors.UsageError` with one line that
names the path: the command exits 2 and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from wsblock.errors import UsageError

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
"""Directories that hold no file a user means to give the suite, nor to be written by it."""

MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Largest text file read (a matrix file, a findings document)."""

MAX_JSON_BYTES = 64 * 1024 * 1024
"""Largest JSON file read (a cell, a record, a manifest)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of a JSON document read (a record nests about 5 levels)."""

NAME_MAX = 255
"""Longest file name (one path component) in bytes, as on ext4, xfs, btrfs, tmpfs."""


def _under_system_root(path: Path) -> str | None:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    for root in SYSTEM_ROOTS:
        if resolved == Path(root) or resolved.is_relative_to(root):
            return root
    return None


def _long_component(path: Path) -> str | None:
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            return part
    return None


def _short(part: str) -> str:
    return part if len(part) <= 40 else f"{part[:20]}...{part[-10:]} ({len(part)} characters)"


def check_file(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> None:
    """Check, without opening it, that ``path`` is a regular file the suite may read.

    Args:
        path: The file.
        what: What it is, for the error (``"cell file"``, ``"record"``).
        limit: Largest size accepted.

    Raises:
        UsageError: Missing, unreadable, not a regular file, under a system
            directory, a name too long, or larger than ``limit``.
    """
    p = Path(path)
    root = _under_system_root(p)
    if root is not None:
        raise UsageError(f"{what} {path} is under {root}, not a file to read")
    long = _long_component(p)
    if long is not None:
        raise UsageError(f"{what}: the name {_short(long)} is longer than {NAME_MAX} bytes")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {path} is not a regular file (a device, FIFO or socket)")
    if st.st_size > limit:
        raise UsageError(f"{what} {path} is {st.st_size:,} bytes, more than the {limit:,} accepted")


def read_bytes(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """Read a regular file of at most ``limit`` bytes, without ever blocking.

    Args:
        path: The file.
        what: What it is, for the error (``"cell file"``, ``"record"``).
        limit: Largest size accepted.

    Raises:
        UsageError: As :func:`check_file`, or when it cannot be read.
    """
    p = Path(path)
    check_file(p, what, limit)
    try:
        # Non-blocking: a FIFO put in its place after the check returns at
        # once, and the check below refuses it.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{what} {path} is not a regular file (a device, FIFO or socket)")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UsageError(f"{what} {path} is larger than the {limit:,} bytes accepted")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file through :func:`read_bytes`.

    Raises:
        UsageError: As :func:`read_bytes`, or when it is not UTF-8 text.
    """
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, strings skipped.

    Counted on the text, without parsing it (a parser recurses once per level).
    """
    depth = deepest = 0
    for match in _JSON_MARKS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


_JSON_MARKS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
"""A JSON string (skipped whole) or a bracket."""


def _depth_over(data: Any, limit: int) -> bool:
    # Iterative: a parsed document may be deeper than a recursive walk allows.
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text, refusing nesting beyond ``max_depth``.

    Deeper documents would exhaust the interpreter's recursion further on
    (a copy, a walk of the record): they are refused here, whole.

    Raises:
        ValueError: Not JSON (with where), or nested too deeply.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if _depth_over(data, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return data


def read_json(path: str | os.PathLike[str], what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """Read and parse a JSON file with every check of :func:`read_text` and :func:`parse_json`.

    Raises:
        UsageError: Naming the file and what is wrong with it.
    """
    text = read_text(path, what, limit)
    try:
        return parse_json(text)
    except ValueError as exc:
        raise UsageError(f"{what} {path}: {exc}") from None


def _nearest_existing(path: Path) -> Path:
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_place(text: str, option: str, path: Path) -> None:
    if not text.strip():
        raise UsageError(f"{option} must name a path, got an empty one")
    root = _under_system_root(path)
    if root is not None:
        raise UsageError(f"{option} {text} is under {root}, not a place for results")
    long = _long_component(path)
    if long is not None:
        raise UsageError(f"{option}: the name {_short(long)} is longer than {NAME_MAX} bytes")


def _try_write(directory: Path, option: str, text: str) -> None:
    try:
        # Writing is the only honest test: a read-only file system or an
        # immutable directory passes os.access for root.
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {text}: cannot write in {directory}: {exc.strerror}") from None


def check_out_file(text: str, option: str = "--out") -> Path:
    """Check, before any work, that a file can be written at ``text``.

    Args:
        text: The option's argument.
        option: The option's name, for the error.

    Returns:
        The path.

    Raises:
        UsageError: An empty path, a directory, a special file, a path
            under ``/proc``, ``/sys`` or ``/dev``, a name too long, or a
            place that cannot be written.
    """
    path = Path(text)
    _check_place(text, option, path)
    if path.is_dir():
        raise UsageError(f"{option} {text} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise UsageError(f"{option} {text} exists and is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {text} is not writable")
    parent = _nearest_existing(path.resolve().parent)
    if not parent.is_dir():
        raise UsageError(f"{option} {text}: {parent} is not a directory")
    _try_write(parent, option, text)
    return path


def check_out_dir(text: str, option: str = "--out", subdirs: tuple[str, ...] = ()) -> Path:
    """Check, before any work, that a directory can be created (or written) at ``text``.

    Nothing is created: a refused command leaves no trace.

    Args:
        text: The option's argument.
        option: The option's name, for the error.
        subdirs: Directories inside it that are written too (``cells``),
            checked when they exist.

    Returns:
        The path.

    Raises:
        UsageError: An empty path, an existing file, a path under
            ``/proc``, ``/sys`` or ``/dev``, a name too long, or a place
            that cannot be written.
    """
    path = Path(text)
    _check_place(text, option, path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {text} exists and is not a directory")
    existing = _nearest_existing(path.resolve())
    if not existing.is_dir():
        raise UsageError(f"{option} {text}: {existing} is not a directory")
    _try_write(existing, option, text)
    for name in subdirs:
        inner = path / name
        if inner.exists():
            if not inner.is_dir():
                raise UsageError(f"{option} {text}: {inner} exists and is not a directory")
            _try_write(inner, option, text)
    return path


def check_in_dir(text: str, what: str = "directory") -> Path:
    """Check that ``text`` is an existing directory outside the system ones.

    Raises:
        UsageError: Missing, not a directory, or under a system directory.
    """
    path = Path(text)
    if not text.strip():
        raise UsageError(f"{what} must name a path, got an empty one")
    root = _under_system_root(path)
    if root is not None:
        raise UsageError(f"{what} {text} is under {root}, not a run directory")
    long = _long_component(path)
    if long is not None:
        raise UsageError(f"{what}: the name {_short(long)} is longer than {NAME_MAX} bytes")
    if not path.exists():
        raise UsageError(f"no such directory: {text}")
    if not path.is_dir():
        raise UsageError(f"not a directory: {text}")
    return path


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError`` that reached the command: what failed, and on which file."""
    reason = exc.strerror or type(exc).__name__
    name = exc.filename if exc.filename is not None else None
    return f"{reason}: {name}" if name is not None else reason
