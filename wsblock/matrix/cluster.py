"""Run a matrix's cells on a Dask cluster (the optional ``distributed`` package).

Each cell is one Dask task that runs :func:`wsblock.matrix.measure.measure_one` on
a worker, so it is measured there exactly as a local cell is (its own
cell process of :mod:`wsblock.engine.cell_main`, server and load) and its record comes back to the
command, which writes it into the local output directory as it arrives.

A worker takes cells only if it advertises cell slots as a worker resource
(``dask worker ADDRESS --resources cells=1``): each cell asks for one slot,
so a worker runs at most as many cells at once as it has slots, whatever its
thread count. Only a worker started for the purpose measures cells: a
cluster whose workers advertise no slot is refused before any cell runs.

Dask re-runs a task whose worker died (up to the scheduler's
``allowed-failures``), so a worker that dies costs only its cell in flight,
which runs again elsewhere. Every record names the host and worker that
measured it (``matrix.host``, ``matrix.worker``); cells measured on
different machines should be compared only with each other's machine in
mind.
"""

from __future__ import annotations

import platform
from typing import Any, Callable, Iterable

from wsblock.errors import UsageError
from wsblock.matrix.measure import measure_one
from wsblock.matrix.spec import PlannedCell

SLOT = "cells"
"""Name of the worker resource that counts cell slots."""

Finish = Callable[[PlannedCell, dict[str, Any]], None]


def connect(address: str, *, timeout_s: float = 20.0) -> Any:
    """Connect to the scheduler at ``address`` and check that some worker has cell slots.

    Returns:
        A ``distributed.Client``.

    Raises:
        UsageError: ``distributed`` is not installed, the scheduler cannot
            be reached, or no worker advertises a cell slot.
    """
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask needs the distributed package: pip install 'wsblock[dask]'") from None
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    workers = client.scheduler_info().get("workers", {})
    slots = sum(int((w.get("resources") or {}).get(SLOT, 0)) for w in workers.values())
    if not slots:
        client.close()
        raise UsageError(f"no worker of {address} advertises a cell slot ({len(workers)} workers); start "
                         f"workers with: dask worker {address} --resources {SLOT}=1")
    return client


def _measure_on_worker(planned: PlannedCell) -> dict[str, Any]:
    # Runs on the worker: the cell is measured on that machine.
    from distributed import get_worker

    rec = measure_one(planned)
    rec["matrix"]["host"] = platform.node()
    rec["matrix"]["worker"] = get_worker().address
    return rec


def run_on_cluster(client: Any, todo: Iterable[PlannedCell], finish: Finish,
                   *, started: Callable[[PlannedCell], None] | None = None) -> None:
    """Send every cell to the cluster; hand each record to ``finish`` as it arrives.

    Args:
        client: From :func:`connect`.
        todo: The cells to run.
        finish: Receives each record, in the calling thread.
        started: Called for each cell as it is submitted.

    Interrupted, the cells not yet started are cancelled; cells already
    running on a worker finish there and their records are dropped (the
    matrix resumes without them).
    """
    from distributed import as_completed

    futures = {}
    for planned in todo:
        if started is not None:
            started(planned)
        # pure=False: a repeat is a new measurement, never a cached result.
        future = client.submit(_measure_on_worker, planned, resources={SLOT: 1}, pure=False)
        futures[future] = planned
    try:
        for future in as_completed(futures):
            planned = futures[future]
            try:
                rec = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the cell is recorded as failed
                rec = _failed(planned, f"the cluster could not measure the cell: {type(exc).__name__}: {exc}")
            finish(planned, rec)
    finally:
        client.cancel(list(futures))


def _failed(planned: PlannedCell, error: str) -> dict[str, Any]:
    # A failed record, tried again when the matrix resumes.
    from wsblock.engine import meta
    from wsblock.schema import record

    rec = record.failed(params=planned.cell.to_dict(), error=error, exit_code=None, stderr_tail=[],
                        meta=meta.environment())
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat, "host": None, "worker": None}
    return rec
