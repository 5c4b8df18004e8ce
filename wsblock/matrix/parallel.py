"""Run cells side by side, each pinned to its own cores.

Each cell still runs as its own process of :mod:`wsblock.engine.cell_main` (:func:`measure_one`
in :mod:`wsblock.matrix.measure`); here up to N of them run at once, each started
from a thread of its own with its own set of cores
(:func:`wsblock.matrix.cores.core_slots`). Records are handed back to the
calling thread as cells finish, so writing them, counting them and the
progress display stay where they are in a serial run.

Interrupted (Ctrl-C, SIGTERM), no further cell is started and the
exception goes up at once; the command's handler then stops every process the
run started (the cells' processes are registered with
:func:`wsblock.engine.proc.track`) and checks that none is left.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, Iterable

from wsblock.matrix.spec import PlannedCell

Measure = Callable[[PlannedCell, list[int]], dict[str, Any]]
Finish = Callable[[PlannedCell, dict[str, Any]], None]


def run_parallel(todo: Iterable[PlannedCell], slots: list[list[int]], measure: Measure, finish: Finish,
                 *, started: Callable[[PlannedCell], None] | None = None) -> None:
    """Measure every cell of ``todo``, ``len(slots)`` at a time, in order of start.

    Args:
        todo: Cells, started in this order as slots free up.
        slots: One set of cores per concurrent cell.
        measure: Runs one cell on the given cores and returns its record
            (called in a worker thread).
        finish: Receives each record, in the calling thread, as cells end.
        started: Called in the calling thread as each cell starts.
    """
    cells = iter(todo)
    free = list(slots)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="wsblock-cell")
    pending: dict[concurrent.futures.Future[dict[str, Any]], tuple[PlannedCell, list[int]]] = {}

    def start_next() -> None:
        planned = next(cells, None)
        if planned is None:
            return
        cores = free.pop(0)
        if started is not None:
            started(planned)
        pending[pool.submit(measure, planned, cores)] = (planned, cores)

    try:
        for _ in slots:
            start_next()
        while pending:
            # A short timeout keeps the calling thread responsive to signals.
            done, _ = concurrent.futures.wait(pending, timeout=0.5,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                planned, cores = pending.pop(future)
                free.append(cores)
                finish(planned, future.result())
                start_next()
    finally:
        # Never wait here for cells in flight: an interrupted run stops them
        # through the command's handler, which must not be kept waiting.
        pool.shutdown(wait=not pending, cancel_futures=True)
