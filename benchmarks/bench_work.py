"""The work itself: what a job costs inside a cell, and on its own.

``JobTime.track_job_ms`` is the median wall time of one job inside its cell,
measured where it ran (loop, thread or worker process). Under contention it
grows past the target; that growth is the effect being measured.

``ExecuteJob.time_execute`` is the one benchmark where wall time is the
honest metric: a job of *fixed* units, run directly in the benchmark
process, with no server and no calibration, so it is the same work on every
commit and every machine. As in pandas' ``gil.py``, the undivided job (one
step) and the same job cut into steps (what the ``chunked`` strategy runs)
sit in one class, so the price of cutting is visible next to its baseline.
"""

from __future__ import annotations

import math
from typing import Any

import workloads
from workloads import Job, execute
from wsblock import paths
from wsblock.engine.blas import pin_blas_threads

from .common import GRID, tracking_classes

FIXED_UNITS = {
    "pure_python": 1_000_000,  # loop iterations
    "numpy": 80,  # 256x256 matrix products
    "blocking_io": 50,  # milliseconds blocked in a syscall
    "pandas": 250_000,  # CSV rows read and aggregated
    "c_holds_gil": 3_000_000,  # integers summed in one C call
}
"""Units per job, about 50 ms each on a 2-core development machine.

Never derived from the calibration: the calibration adapts to the code
being measured, which would hide a regression.
"""

STEPS = [1, 25]
"""Steps a job is cut into: 1 (undivided) and a ``chunked``-like split."""


# JobTime and its track_ methods come from the metric declarations
# (``asv=...`` in wsblock/schema/metrics.py).
globals().update(tracking_classes(__name__))


class ExecuteJob:
    """One job of fixed units, executed in the calling thread."""

    params = [GRID.params[0], STEPS]
    param_names = ["workload", "steps"]

    def setup(self, workload: str, steps: int) -> None:
        """Build the job and its input data; skip what cannot be cut."""
        units = FIXED_UNITS.get(workload)
        if units is None:
            raise NotImplementedError(f"no fixed job size for workload {workload!r}")
        spec = workloads.get(workload)
        if steps > 1 and not spec.chunkable:
            raise NotImplementedError(f"{workload} is a single call that cannot be cut into steps")
        chunk = math.ceil(units / steps)
        # A workload with a natural chunk (pandas' chunksize) is cut by it.
        given = {"chunksize": chunk} if any(p.name == "chunksize" for p in spec.params) else {}
        params = spec.resolve_params(given)
        # As in the server: one BLAS thread, or the matmuls would
        # oversubscribe the machine and measure that.
        pin_blas_threads(1)
        data_dir = str(paths.data_dir())
        spec.prepare(units, params, data_dir)
        self.job = Job(workload, units, chunk_units=chunk, params=params, data_dir=data_dir)
        # Pay imports and cached operands here, not in the first timed call
        # (asv --quick times a single call without warm-up).
        execute(Job(workload, 1, chunk_units=1, params=params, data_dir=data_dir))

    def time_execute(self, workload: str, steps: int) -> None:
        """Execute the job to completion."""
        execute(self.job)
