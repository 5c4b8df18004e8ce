"""Run a matrix: every cell in fresh processes, resumable.

Each cell runs as its own process of :mod:`wsblock.engine.cell_main` (which starts its own server
and load processes), so no state leaks from one cell into the next; cells run
one at a time unless asked otherwise (``--parallel``, ``--dask``): on a small
machine they would measure each other. Records are written atomically to
``DIR/cells/<cell_id>.json`` as cells finish, so a killed matrix loses at most
the cell in flight; running the same command again skips every cell that
already has a good record (failed cells are tried again).

Repeats are interleaved, as asv interleaves its rounds: the matrix runs
every cell's first repeat, then every cell's second, and so on. The repeats
of a cell are then minutes apart and sample the machine in different states,
so a busy spell on a shared machine shows up as spread within a cell (which
the intervals and the change test see) rather than as a shift of every
repeat of a few cells (which they would take for a difference).

A run directory has one writer: the run holds an exclusive lock on
``DIR/.lock`` (:func:`wsblock.schema.rundir.lock`), and a second matrix on
the same directory is refused, naming the process that holds it.

This module only orchestrates; the pieces are the run directory
(:mod:`~wsblock.matrix.directory`), record reuse (:mod:`~wsblock.matrix.reuse`),
the manifest (:mod:`~wsblock.matrix.manifest`), time estimates
(:mod:`~wsblock.matrix.estimate`), measuring cells here
(:mod:`~wsblock.matrix.measure`), side by side (:mod:`~wsblock.matrix.parallel`)
or on a cluster (:mod:`~wsblock.matrix.cluster`), overhead accounting
(:mod:`~wsblock.matrix.overhead`) and progress (:mod:`~wsblock.matrix.progress`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wsblock import atomic
from wsblock.errors import UsageError
from wsblock.matrix import estimate, manifest, measure
from wsblock.matrix.cores import core_slots
from wsblock.matrix.directory import Guard, check_directory, remove_if_only_lock, unfinished, write_table
from wsblock.matrix.overhead import overhead_summary
from wsblock.matrix.parallel import run_parallel
from wsblock.matrix.progress import Progress
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.schema import rundir
from wsblock.schema.rundir import CELLS



@dataclass
class MatrixOutcome:
    """What a matrix run did.

    Attributes:
        ran: Cells measured in this run.
        reused: Cells that already had a record.
        failed: Cells that failed in this run.
        skipped: Unsupported pairs, not run.
        directory: The output directory.
        not_ok: Planned cells whose record says ``failed`` at the end.
        missing: Planned cells with no record at the end (a record that
            vanished, or a cell never run).
        overhead: This session's
            :func:`~wsblock.matrix.overhead.overhead_summary`.
    """

    ran: int
    reused: int
    failed: int
    skipped: int
    directory: Path
    not_ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    overhead: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every planned cell has an ``ok`` record."""
        return not self.not_ok and not self.missing


def run_matrix(
    matrix: Matrix,
    directory: Path,
    *,
    command: str,
    show_progress: bool = True,
    after_cell: Callable[[PlannedCell, dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
    parallel: int = 1,
    dask: str | None = None,
) -> MatrixOutcome:
    """Run every cell of ``matrix`` that has no good record in ``directory``.

    Args:
        matrix: The validated matrix.
        directory: Output directory (created if missing).
        command: The command line, stored in the manifest.
        show_progress: Show progress on stderr: a bar on a terminal, else one
            line per finished cell (see :class:`~wsblock.matrix.progress.Progress`).
        after_cell: Called after each cell that ran, with its record.
        say: Receives one-line notices (a damaged manifest kept aside);
            default: stderr.
        parallel: Cells at once, each pinned to cores of its own
            (:mod:`wsblock.matrix.parallel`); 1 runs them one after another.
        dask: Address of a Dask scheduler whose workers measure the cells
            (:mod:`wsblock.matrix.cluster`); records still go to ``directory``.

    Returns:
        Counts of what happened, and the planned cells without an ``ok``
        record at the end.

    Raises:
        UsageError: If ``directory`` holds a different matrix or a record
            that does not belong to this one, or if the cores cannot give
            ``parallel`` cells as many as each needs (nothing is written then).
        HarnessError: If ``directory`` is removed or replaced mid-run.
    """
    say = say or (lambda message: print(f"wsblock: {message}", file=sys.stderr, flush=True))
    check_directory(matrix, directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with rundir.lock(directory, command=command, started_utc=manifest.now_utc()) as locked:
            if not locked:
                say(f"warning: {directory} is on a file system that cannot lock files: a second matrix on it "
                    f"would not be refused")
            return _session(matrix, directory, command=command, show_progress=show_progress,
                            after_cell=after_cell, say=say, parallel=parallel, dask=dask)
    except rundir.Busy as exc:
        raise UsageError(f"{exc}; wait for it to end or choose another --out") from None
    except UsageError:
        # Refused before anything was measured (cores, a Dask cluster without
        # cell slots): a directory made only for this run is not left behind.
        if created:
            remove_if_only_lock(directory)
        raise


def _session(matrix: Matrix, directory: Path, *, command: str, show_progress: bool,
             after_cell: Callable[[PlannedCell, dict[str, Any]], None] | None, say: Callable[[str], None],
             parallel: int, dask: str | None) -> MatrixOutcome:
    """The body of :func:`run_matrix`, under the run directory's lock."""
    # Planned again under the lock: what another writer left is seen.
    plan = check_directory(matrix, directory, writing=False)
    slots = core_slots(parallel, [p.cell for p in plan.todo]) if parallel > 1 and dask is None else []
    client = None
    if dask is not None:
        from wsblock.matrix import cluster

        client = cluster.connect(dask)
    cells_dir = directory / CELLS
    cells_dir.mkdir(exist_ok=True)
    session = manifest.begin(matrix, directory, command=command, parallel=parallel, slots=slots, dask=dask, say=say)
    guard = Guard(directory)

    # Repeats interleaved: every cell's first repeat, then every cell's
    # second, ... (a stable sort keeps the matrix order within a repeat).
    todo = sorted(plan.todo, key=lambda p: p.repeat)
    history = estimate.History()
    progress = Progress(total=len(matrix.cells), done=plan.reused,
                        per_cell=[estimate.cell_estimate_s(c, history) for c in todo],
                        stream=sys.stderr if show_progress else None)
    started = time.monotonic()
    records: list[dict[str, Any]] = []

    def finish(planned: PlannedCell, rec: dict[str, Any]) -> None:
        guard.check(f"the record of {planned.cell_id} was not written")
        atomic.write_json(cells_dir / f"{planned.cell_id}.json", rec)
        records.append(rec)
        manifest.note_host(session, planned.cell_id, rec)
        progress.finished(planned, rec)
        if after_cell:
            after_cell(planned, rec)

    def started_one(planned: PlannedCell) -> None:
        guard.check(f"stopped before {planned.cell_id}")
        progress.starting(planned)

    try:
        if client is not None:
            cluster.run_on_cluster(client, todo, finish, started=started_one)
        elif slots:
            run_parallel(todo, slots, lambda planned, cores: measure.measure_one(planned, cores, parallel=parallel),
                         finish, started=started_one)
        else:
            measure.run_serial(todo, finish, started=started_one)
    finally:
        progress.close()
        if client is not None:
            client.close()
        if guard.intact():
            write_table(matrix, directory)
    guard.check("the manifest was not updated")
    not_ok, missing = unfinished(matrix, directory)
    overhead = overhead_summary(time.monotonic() - started, records, at_once=len(slots) or 1)
    if client is None:
        estimate.remember_overheads(history, records)
    manifest.finish(directory, session, complete=not not_ok and not missing, overhead=overhead)
    failed = sum(rec["status"] != "ok" for rec in records)
    return MatrixOutcome(ran=len(records), reused=plan.reused, failed=failed, skipped=len(matrix.skipped),
                         directory=directory, not_ok=not_ok, missing=missing, overhead=overhead)


__all__ = ["MatrixOutcome", "run_matrix"]
