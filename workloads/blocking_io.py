"""A blocking syscall, the stand-in for a synchronous database or HTTP call.

The work is waiting: each unit is one millisecond spent blocked in the kernel
(``time.sleep``, which releases the GIL). Unlike the CPU workloads, its length
is a wait by nature; it consumes no CPU.
"""

from __future__ import annotations

import time
from typing import Iterator

from workloads.base import Job, Workload


class BlockingIO(Workload):
    name = "blocking_io"
    order = 30
    description = "blocking syscall (sleep in the kernel); releases the GIL, uses no CPU"
    gil = "released for the whole wait"
    unit = "milliseconds blocked in a syscall"
    uses_cpu = False
    max_units = 600_000
    calibration_start = 5

    def steps(self, job: Job) -> Iterator[None]:
        remaining = job.units
        while remaining > 0:
            n = min(remaining, job.chunk_units)
            time.sleep(n / 1000.0)
            remaining -= n
            yield


WORKLOAD = BlockingIO()
