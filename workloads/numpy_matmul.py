"""NumPy matrix products: BLAS releases the GIL for each product.

The host process pins BLAS to one thread (see ``wsblock.engine.blas``); otherwise a
multi-threaded BLAS would oversubscribe the machine and the run would measure
that instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from workloads.base import Job, Workload

SIZE = 256


@lru_cache(maxsize=1)
def _operands() -> tuple:
    import numpy as np

    rng = np.random.default_rng(12345)
    a = rng.random((SIZE, SIZE))
    b = rng.random((SIZE, SIZE))
    return a, b, np.empty((SIZE, SIZE))


class NumpyMatmul(Workload):
    name = "numpy"
    order = 20
    description = f"{SIZE}x{SIZE} float64 matrix products (BLAS, 1 thread); releases the GIL"
    gil = "released inside each BLAS call"
    unit = f"{SIZE}x{SIZE} matrix products"
    max_units = 10_000_000
    calibration_start = 4

    def steps(self, job: Job) -> Iterator[None]:
        import numpy as np

        a, b, out = _operands()
        remaining = job.units
        while remaining > 0:
            n = min(remaining, job.chunk_units)
            for _ in range(n):
                np.matmul(a, b, out=out)
            remaining -= n
            yield


WORKLOAD = NumpyMatmul()
