"""Pin BLAS thread pools so the numpy workload does not oversubscribe cores."""

from __future__ import annotations

from typing import Any

_LIMITER: Any = None


def pin_blas_threads(threads: int = 1) -> list[dict[str, Any]]:
    """Limit every BLAS/OpenMP pool in this process to ``threads`` threads.

    The limit stays in force for the life of the process.

    Args:
        threads: Threads per pool.

    Returns:
        ``threadpoolctl.threadpool_info()`` after the limit, for the record.
    """
    global _LIMITER
    from threadpoolctl import threadpool_info, threadpool_limits

    import numpy  # noqa: F401  (loads the BLAS so that the limit applies to it)

    _LIMITER = threadpool_limits(limits=threads)
    return [
        {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "architecture")}
        for info in threadpool_info()
    ]
