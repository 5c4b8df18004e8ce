"""One C call that holds the GIL from start to end.

``sum(range(n))`` runs entirely in C (no Python frames, so the interpreter
never reaches a point where it would hand the GIL to another thread). It
behaves like a database driver or regex engine that does not release the GIL:
no thread in the same process runs until it returns.
"""

from __future__ import annotations

from typing import Iterator

from workloads.base import Job, Workload


class CHoldsGil(Workload):
    name = "c_holds_gil"
    order = 50
    description = "one C call (sum over a range) that never releases the GIL"
    gil = "held for the whole call; no thread switch is possible"
    unit = "integers summed in one C call"
    chunkable = False
    max_units = 4_000_000_000
    calibration_start = 100_000

    def steps(self, job: Job) -> Iterator[None]:
        sum(range(job.units))
        yield


WORKLOAD = CHoldsGil()
