"""How many cores a cell keeps busy, and which cores each of N parallel cells gets.

Cells run side by side only if each can have cores of its own: a cell that
shares a core with another measures the other as much as itself. A cell
needs one core for its server's event loop and its load process together
(both are light when the work runs elsewhere), plus one per job that keeps a
core busy at the same time:

* work that waits (a workload with ``uses_cpu`` false) keeps none busy;
* ``inline`` and ``chunked`` run one job at a time, on the loop: one;
* ``thread`` runs up to its pool size at once, but work that holds the GIL
  advances one job at a time: one, or the jobs in flight when the work
  releases the GIL;
* ``process`` runs the jobs in flight (at most the pool size) at once.

Each of the N cells of a parallel run is pinned (``sched_setaffinity``, which
its server, load and pool workers inherit) to its own slice of the cores
this process may use, as large as the largest need of the matrix.
"""

from __future__ import annotations

import os
from typing import Iterable

from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError


def cores_needed(cell: CellConfig) -> int:
    """Cores ``cell`` keeps busy at once (see the module's docstring)."""
    import workloads
    from wsblock.engine import strategies

    workload = workloads.get(cell.workload)
    in_flight = cell.job_connections
    if not workload.uses_cpu or in_flight == 0:
        work = 0
    elif not strategies.has(cell.strategy, "uses_pool"):
        work = 1
    elif not strategies.has(cell.strategy, "out_of_process"):
        work = min(in_flight, cell.pool_size) if workload.gil.startswith("released") else 1
    else:
        work = min(in_flight, cell.pool_size)
    return work + 1


def available_cores() -> list[int]:
    """The cores this process may run on, in order."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def core_slots(parallel: int, cells: Iterable[CellConfig], cores: list[int] | None = None) -> list[list[int]]:
    """Split the cores into ``parallel`` disjoint sets, one per concurrent cell.

    Args:
        parallel: Cells at once.
        cells: The cells to run (their largest need sizes every set).
        cores: The cores to split (default: :func:`available_cores`).

    Returns:
        ``parallel`` lists of cores, each as large as the largest need.

    Raises:
        UsageError: If the cores cannot give each of ``parallel`` cells as
            many as the neediest cell uses, naming how many that would take.
    """
    cores = available_cores() if cores is None else cores
    needs = [(cores_needed(c), c) for c in cells]
    need, neediest = max(needs, key=lambda x: x[0], default=(1, None))
    if parallel * need > len(cores):
        what = f" ({neediest.workload} x {neediest.strategy} needs {need})" if neediest is not None else ""
        raise UsageError(
            f"--parallel {parallel} needs {parallel * need} cores, {need} for each cell{what}, "
            f"and this process may use {len(cores)}; at most --parallel {max(1, len(cores) // need)} here"
        )
    return [cores[i * need:(i + 1) * need] for i in range(parallel)]
