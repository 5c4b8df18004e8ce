"""A pure-Python arithmetic loop: holds the GIL, but the interpreter forces a
switch to other threads every ``sys.getswitchinterval()`` (5 ms by default)."""

from __future__ import annotations

from typing import Iterator

from workloads.base import Job, Workload


class PurePython(Workload):
    name = "pure_python"
    order = 10
    description = "Python arithmetic loop; holds the GIL between forced 5 ms switches"
    gil = "held (interpreter switches threads every switch interval)"
    unit = "loop iterations"
    max_units = 5_000_000_000
    calibration_start = 20_000

    def steps(self, job: Job) -> Iterator[None]:
        x = 0
        remaining = job.units
        while remaining > 0:
            n = min(remaining, job.chunk_units)
            for i in range(n):
                x = (x * 31 + i) % 1_000_003
            remaining -= n
            yield


WORKLOAD = PurePython()
