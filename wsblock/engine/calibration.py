"""Per-machine calibration: how many units of work take a target time.

Each workload is timed on this machine, single-threaded and uncontended, at
two sizes; a straight line ``ms = overhead + per_unit * units`` through them
gives the units for a target duration. The line is stored in the cache
directory and reused until the machine, the Python or library versions, or
the workload change (they are part of the key). Records carry both the target
and the time each job really took in the cell.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import workloads
from workloads import Job, Workload, execute
from wsblock import atomic, paths
from wsblock.meta import cpu_model

FILE_NAME = "calibration.json"
_FIRST_MS = 40.0  # the smaller probe lasts at least this long
_REPEATS = 3


@dataclass(frozen=True)
class Calibration:
    """A fitted cost line for one workload and parameter set.

    Attributes:
        workload: Workload name.
        params: Workload parameters the line holds for.
        overhead_ms: Fixed cost of a job, in ms (intercept, >= 0).
        ms_per_unit: Cost of one unit, in ms (slope).
        points: ``[units, median ms]`` measurements the line rests on.
        measured_at: UTC timestamp of the measurement.
        key: Hash of everything the line depends on.
    """

    workload: str
    params: dict[str, int]
    overhead_ms: float
    ms_per_unit: float
    points: list[list[float]]
    measured_at: str
    key: str

    def units_for(self, work_ms: float) -> int:
        """Return the units of work expected to take ``work_ms`` ms (at least 1)."""
        return max(1, int(round((work_ms - self.overhead_ms) / self.ms_per_unit)))


def _fingerprint(workload: Workload, params: Mapping[str, int]) -> dict[str, object]:
    import numpy
    import pandas

    return {
        "workload": workload.name,
        "workload_version": workload.version,
        "params": dict(sorted(params.items())),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }


def _key(fingerprint: Mapping[str, object]) -> str:
    blob = json.dumps(fingerprint, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _median_ms(job: Job) -> float:
    return statistics.median(execute(job).wall_ms for _ in range(_REPEATS))


def measure(workload: Workload, params: Mapping[str, int], data_dir: str) -> Calibration:
    """Time ``workload`` on this machine and fit its cost line.

    Args:
        workload: The workload.
        params: Validated workload parameters.
        data_dir: Directory for generated input data.

    Returns:
        The fitted calibration (not stored).
    """
    from wsblock.engine.blas import pin_blas_threads

    pin_blas_threads(1)

    def job(units: int) -> Job:
        workload.prepare(units, params, data_dir)
        return Job(workload.name, units, chunk_units=units, params=dict(params), data_dir=data_dir)

    units = workload.calibration_start
    execute(job(units))  # first call pays imports and caches
    while True:
        ms = execute(job(units)).wall_ms
        if ms >= _FIRST_MS or units >= workload.max_units:
            break
        growth = _FIRST_MS / max(ms, 0.01)
        units = min(workload.max_units, int(units * min(10.0, max(2.0, growth * 1.2))))
    small = units
    large = min(workload.max_units, small * 4)
    small_ms = _median_ms(job(small))
    large_ms = _median_ms(job(large))
    slope = (large_ms - small_ms) / (large - small) if large > small else 0.0
    if slope <= 0:
        # Noise swamped the difference; fall back to a line through zero.
        slope = large_ms / large
    overhead = max(0.0, small_ms - slope * small)
    fingerprint = _fingerprint(workload, params)
    return Calibration(
        workload=workload.name,
        params=dict(params),
        overhead_ms=overhead,
        ms_per_unit=slope,
        points=[[small, small_ms], [large, large_ms]],
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        key=_key(fingerprint),
    )


def _store_path() -> Path:
    return paths.cache_dir() / FILE_NAME


def _load_store() -> dict[str, dict]:
    try:
        with open(_store_path(), encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def get(
    name: str,
    params: Mapping[str, int],
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Return the stored calibration for a workload, measuring it if needed.

    Args:
        name: Workload name.
        params: Validated workload parameters.
        force: Measure again even if a stored line exists.
        progress: Called with a message before a measurement.

    Returns:
        The calibration.
    """
    workload = workloads.get(name)
    key = _key(_fingerprint(workload, params))
    store = _load_store()
    if not force and key in store:
        entry = store[key]
        try:
            return Calibration(**entry)
        except TypeError:
            pass  # stored by an older layout; measure again
    if progress:
        progress(f"calibrating {name} on this machine (once; stored in {_store_path()})")
    started = time.perf_counter()
    calibration = measure(workload, params, str(paths.data_dir()))
    if progress:
        progress(f"calibrated {name} in {time.perf_counter() - started:.1f} s")
    store = _load_store()  # re-read: another process may have written meanwhile
    store[key] = asdict(calibration)
    atomic.write_json(_store_path(), store)
    return calibration


def chunk_units(calibration: Calibration, chunk_ms: float, units: int) -> int:
    """Units per step so that one step takes about ``chunk_ms``.

    Args:
        calibration: The workload's calibration.
        chunk_ms: Target step length in ms.
        units: Units of the whole job (a step never exceeds it).
    """
    per_step = max(1, int(math.floor(chunk_ms / calibration.ms_per_unit)))
    return min(units, per_step)
