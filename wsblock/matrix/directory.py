"""A matrix's run directory: what may be in it before a run, and whether it stays during one.

A directory holds one matrix: its manifest, its records under ``DIR/cells``
and their table. Any file in ``DIR/cells`` that is not a record of a
planned cell (another matrix's record, a damaged file) stops the run before
anything is written: it would otherwise be counted, tabulated and reported
as if it had been measured for this matrix (see :mod:`wsblock.matrix.reuse`).
A directory removed or replaced while the run writes into it stops the run
(:class:`Guard`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wsblock import atomic
from wsblock.errors import HarnessError, UsageError
from wsblock.matrix.estimate import Plan, plan_of
from wsblock.matrix.reuse import read_record
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.schema import rundir
from wsblock.schema.rundir import CELLS, CSV_NAME


def check_directory(matrix: Matrix, directory: Path, *, writing: bool = True) -> Plan:
    """Check that ``directory`` holds nothing but this matrix, and plan the run.

    Writes nothing.

    Args:
        matrix: The matrix.
        directory: The run directory (it may not exist yet).
        writing: The run will write there: refuse a directory another
            process is writing (``False``: only to say what is recorded).

    Raises:
        UsageError: If ``directory`` holds a different matrix, a file in
            ``DIR/cells`` that is not a record of a planned cell (naming
            it), something other than a file where the table goes, or is
            being written by another process.
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {directory} exists and is not a directory")
    if writing:
        held = rundir.holder(directory)
        if held is not None:
            raise UsageError(f"{directory} is being written by another wsblock process ({held}); "
                             f"wait for it to end or choose another --out")
    for name, kind in ((CELLS, "a directory"), (CSV_NAME, "a regular file"), (rundir.LOCK_NAME, "a regular file")):
        place = directory / name
        if name != CSV_NAME and place.is_symlink():
            # Records and the lock are written inside: never through a link to elsewhere.
            raise UsageError(f"{place} is a symbolic link; move it away or choose another --out")
        if os.path.lexists(place) and not (place.is_dir() if name == CELLS else place.is_file()):
            raise UsageError(f"{place} exists and is not {kind}; move it away or choose another --out")
    previous, _ = rundir.read_manifest(directory)
    if previous and _axes(previous.get("config") or {}) != _axes(matrix.definition):
        raise UsageError(f"{directory} holds a different matrix; choose another --out")
    cells_dir = directory / CELLS
    planned_by_name = {f"{p.cell_id}.json": p for p in matrix.cells}
    problems: list[str] = []
    todo: list[PlannedCell] = []
    if cells_dir.is_dir():
        for path in sorted(cells_dir.iterdir()):
            if path.name.startswith(".") or path.name in planned_by_name:
                continue  # hidden: an atomic write cut short, never read
            problems.append(f"{path}: not a cell of this matrix")
    for planned in matrix.cells:
        path = cells_dir / f"{planned.cell_id}.json"
        status, _ = read_record(path, planned)
        if status.startswith(("foreign", "damaged")):
            problems.append(f"{path}: {status}")
        elif status != "ok":
            todo.append(planned)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(
            f"{problems[0]}{more}; records that do not belong to this matrix are never counted: "
            f"move them away or choose another --out"
        )
    return plan_of(matrix, todo)


def _axes(definition: dict[str, Any]) -> dict[str, Any]:
    # Adding repeats to a finished matrix is a resume, not a new matrix.
    return {k: v for k, v in definition.items() if k != "repeats"}


def _identity(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


class Guard:
    """Detects an output directory removed or replaced during the run.

    Writes recreate missing parents (``atomic.write_json``), which would
    hide the loss of every record already written.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.watched = [directory, directory / CELLS]
        self.ids = [_identity(p) for p in self.watched]

    def intact(self) -> bool:
        """The directory and its ``cells`` are the ones the run started with."""
        return [_identity(p) for p in self.watched] == self.ids

    def check(self, what: str) -> None:
        """Raise :class:`HarnessError` (saying ``what`` was not done) if the directory is not intact."""
        if not self.intact():
            raise HarnessError(f"{self.directory} was removed or replaced during the run; {what}")


def remove_if_only_lock(directory: Path) -> None:
    """Remove ``directory`` if it holds nothing but the run's lock file."""
    try:
        entries = {entry.name for entry in directory.iterdir()}
        if entries <= {rundir.LOCK_NAME}:
            (directory / rundir.LOCK_NAME).unlink(missing_ok=True)
            directory.rmdir()
    except OSError:
        pass  # something else appeared or it cannot be removed: leave it as it is


def write_table(matrix: Matrix, directory: Path) -> None:
    """Write ``cells.csv`` from the records of the planned cells, and only those."""
    from wsblock.analysis import tidy

    cells_dir = directory / CELLS
    rows = []
    for planned in matrix.cells:
        path = cells_dir / f"{planned.cell_id}.json"
        status, data = read_record(path, planned)
        if data is not None:
            rows.append((path, data))
    if rows:
        atomic.write_text(directory / tidy.CSV_NAME, tidy.to_csv_text(tidy.frame(rows)))


def unfinished(matrix: Matrix, directory: Path) -> tuple[list[str], list[str]]:
    """The planned cells without an ``ok`` record: ``(not_ok, missing)``, as cell ids.

    ``not_ok``: the record says ``failed`` (or is not this cell's);
    ``missing``: no record (one that vanished, or a cell never run).
    """
    cells_dir = directory / CELLS
    not_ok: list[str] = []
    missing: list[str] = []
    for planned in matrix.cells:
        status, _ = read_record(cells_dir / f"{planned.cell_id}.json", planned)
        if status == "missing":
            missing.append(planned.cell_id)
        elif status != "ok":
            not_ok.append(planned.cell_id)
    return not_ok, missing
