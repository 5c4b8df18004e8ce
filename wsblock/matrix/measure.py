"""Measuring cells on this machine: each in a fresh cell process.

Each cell runs as its own process (which starts its own server and load
processes), so no state leaks from one cell into the next. Run one after
another (:func:`run_serial`), the next cell's process is started ahead, in
standby, while the cell before it tears down (:mod:`wsblock.matrix.cellproc`).
Cells side by side are run by :mod:`wsblock.matrix.parallel`, cells on a Dask
cluster by :mod:`wsblock.matrix.cluster`; both measure each cell with
:func:`measure_one`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from wsblock import atomic
from wsblock.engine import meta
from wsblock.matrix.cellproc import CellProcess
from wsblock.matrix.overhead import measured_s
from wsblock.matrix.spec import PlannedCell
from wsblock.schema import record


def cell_timeout(planned: PlannedCell) -> float:
    """Hard limit for one cell's process, in seconds.

    Generous: the first cell of a workload also calibrates it and may generate
    input data.
    """
    c = planned.cell
    job_ms = c.work_ms if c.work_ms is not None else UNMEASURED_JOB_BOUND_MS
    return 240.0 + 3 * (c.warmup + _window_bound(c)) + 8 * job_ms / 1000.0


UNMEASURED_JOB_BOUND_MS = 60_000.0
"""A job of a function called once per job is not known before its cell
measures it: its cell's time limit assumes at most this long."""


def _window_bound(cell: Any) -> float:
    # A cell without a duration gets a window sized at run time, at most this.
    return cell.max_window if cell.duration is None else cell.duration


def measure_one(planned: PlannedCell, cores: list[int] | None = None, *, parallel: int = 1,
                process: CellProcess | None = None,
                on_measured: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one cell in a fresh cell process (``wsblock.engine.cell_main``) and return its record.

    Args:
        planned: The cell.
        cores: Cores to pin the cell's processes to (``None``: not pinned).
        parallel: Cells of the run at once, recorded with the record.
        process: The cell's process, started ahead in standby
            (:class:`~wsblock.matrix.cellproc.CellProcess`); given its turn
            here. ``None``: started here.
        on_measured: Called (in this thread) once the cell's measurements
            are in hand, while its processes are still being ended.

    Returns:
        The record (``status`` ``ok`` or ``failed``), tagged with the cell id,
        repeat, wall time (from its turn) and overhead, cores, parallelism,
        and whether its process was started ahead.
    """
    began = time.monotonic()
    prestarted = process is not None
    if process is None:
        process = CellProcess(planned, cores)
    else:
        process.go()
    try:
        code = process.wait(cell_timeout(planned), on_measured)
        if code is None:
            process.terminate(60.0)  # the cell stops its own processes
            error: str | None = f"timed out after {cell_timeout(planned):.0f} s"
        else:
            error = None if code == 0 else _error_line(process.stderr_text())
        rec = None
        if error is None or code == 1:
            # A cell that ran but measured nothing writes a whole record with
            # status "failed" and exits 1: keep it, it says what happened.
            rec = process.record()
            if rec is None and error is None:
                error = "the cell wrote no record"
            elif rec is not None and error is not None and rec.get("status") == "failed":
                error = None
        if error is not None:
            rec = record.failed(params=planned.cell.to_dict(), error=error, exit_code=process.proc.returncode,
                                stderr_tail=process.stderr_text().strip().splitlines()[-20:],
                                meta=meta.environment())
    except BaseException:
        # Interrupted: the cell stops its own processes quickly; the
        # command's handler then checks that they are gone.
        process.terminate(10.0)
        raise
    finally:
        process.close()
    assert rec is not None
    wall = time.monotonic() - began
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat, "wall_s": round(wall, 3),
                     "overhead_s": round(wall - measured_s(rec), 3), "parallel": parallel, "cores": cores,
                     "prestarted": prestarted}
    return rec


def run_serial(todo: list[PlannedCell], finish: Callable[[PlannedCell, dict[str, Any]], None], *,
               started: Callable[[PlannedCell], None] | None = None) -> None:
    """Run cells one after another, each one's process started ahead during the teardown of the one before.

    The next cell's process is started once the running cell
    has its measurements in hand, and waits (importing, then idle) until the
    running cell's processes have ended and its record is written; see
    :mod:`wsblock.matrix.cellproc`.

    Args:
        todo: The cells, in order.
        finish: Called with each cell and its record, before the next one's turn.
        started: Called with each cell when its turn comes.
    """
    ahead: list[CellProcess] = []
    try:
        for index, planned in enumerate(todo):
            following = todo[index + 1] if index + 1 < len(todo) else None

            def start_next(following: PlannedCell | None = following) -> None:
                if following is not None:
                    ahead.append(CellProcess(following, standby=True))

            process = ahead.pop() if ahead else None
            if started is not None:
                started(planned)
            finish(planned, measure_one(planned, process=process, on_measured=start_next))
    finally:
        for process in ahead:
            process.cancel()


def run_one(planned: PlannedCell, out: Path) -> dict[str, Any]:
    """Run one cell (see :func:`measure_one`) and write its record to ``out``."""
    rec = measure_one(planned)
    atomic.write_json(out, rec)
    return rec


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    for line in lines:
        if line.startswith("error: "):
            return line
    return lines[-1] if lines else "no message"
