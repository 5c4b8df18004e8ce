"""Per-machine calibration: how many units of work take a target time.

Each workload is timed on this machine, single-threaded, at three sizes: a
short probe (at least 40 ms), four times that, and one near the largest target
asked for (at most :data:`LARGE_CAP_MS`, so calibrating stays cheap). A line
``ms = overhead + per_unit * units`` is fitted through them: through the
origin when the work has no measurable fixed cost (the fitted intercept is
negative or below 2 % of the largest point), else with an intercept. Each
point's residual from the line is stored, and so are the date and the
machine's load while measuring (load average, busy cores): a calibration made
on a busy machine is slower than the cells it sizes. The line is stored in the
cache directory and reused until the machine, the Python or library versions,
or the workload change (they are part of the key), a target lies far beyond
its largest point, or it was measured on a busy machine (load average at or
above the core count) that is quiet now. ``wsblock calibrate --check`` measures again and says
whether the stored line still holds. Records carry both the target and the
time each job really took in the cell.
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
from wsblock.engine.meta import cpu_model

FILE_NAME = "calibration.json"
_FIRST_MS = 40.0  # the smaller probe lasts at least this long
_REPEATS = 3

LARGE_CAP_MS = 2000.0
"""Longest calibration point: targets beyond it are extrapolated from here."""

DEFAULT_UP_TO_MS = 1000.0
"""Where the largest point goes when no target is given."""

HOLDS_WITHIN = 0.15
"""A re-measured slope within this share of the stored one: the cache holds."""


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
        fit: ``"origin"`` (no fixed cost) or ``"intercept"``.
        residuals_pct: Each point's deviation from the line, in percent.
        loadavg: The machine's 1-minute load average before measuring.
        busy_cores: Cores busy machine-wide while measuring (this process
            included, so about 1 on an idle machine).
        cpus: Cores of the machine.
    """

    workload: str
    params: dict[str, int]
    overhead_ms: float
    ms_per_unit: float
    points: list[list[float]]
    measured_at: str
    key: str
    fit: str
    residuals_pct: list[float]
    loadavg: float | None
    busy_cores: float | None
    cpus: int

    @property
    def largest_ms(self) -> float:
        """Duration of the largest calibration point."""
        return max((p[1] for p in self.points), default=0.0)

    def predict_ms(self, units: int) -> float:
        """The line's prediction for ``units``."""
        return self.overhead_ms + self.ms_per_unit * units

    def units_for(self, work_ms: float) -> int:
        """Return the units of work expected to take ``work_ms`` ms (at least 1)."""
        return max(1, int(round((work_ms - self.overhead_ms) / self.ms_per_unit)))


def _fingerprint(workload: Workload, params: Mapping[str, int]) -> dict[str, object]:
    # The installed versions, read without importing the libraries: a cell of
    # a workload that needs neither must not pay for loading them.
    from importlib import metadata

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
        "numpy": metadata.version("numpy"),
        "pandas": metadata.version("pandas"),
    }


def _key(fingerprint: Mapping[str, object]) -> str:
    blob = json.dumps(fingerprint, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _median_ms(job: Job) -> float:
    return statistics.median(execute(job).wall_ms for _ in range(_REPEATS))


def fit_line(points: list[list[float]]) -> tuple[float, float, str]:
    """Fit ``ms = overhead + slope * units``; through the origin if no fixed cost.

    Args:
        points: ``[units, ms]`` pairs (at least two distinct sizes).

    Returns:
        ``(overhead_ms, slope, fit)``, ``fit`` being ``"origin"`` or ``"intercept"``.
    """
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    origin_slope = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    mean_x = statistics.fmean(xs)
    mean_y = statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx <= 0:
        return 0.0, origin_slope, "origin"
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    if slope <= 0 or intercept <= 0.02 * max(ys):
        return 0.0, origin_slope, "origin"
    return intercept, slope, "intercept"


class _MachineLoad:
    """Load average before, and busy cores during, a measurement."""

    def __enter__(self) -> "_MachineLoad":
        import psutil

        try:
            self.loadavg: float | None = round(os.getloadavg()[0], 2)
        except OSError:
            self.loadavg = None
        self._before = psutil.cpu_times()
        self.busy_cores: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        from wsblock.engine.resources import machine_busy

        self.busy_cores = round(machine_busy(self._before, psutil.cpu_times())[1], 2)


def measure(
    workload: Workload, params: Mapping[str, int], data_dir: str, *, up_to_ms: float = DEFAULT_UP_TO_MS
) -> Calibration:
    """Time ``workload`` on this machine and fit its cost line.

    Args:
        workload: The workload.
        params: Validated workload parameters.
        data_dir: Directory for generated input data.
        up_to_ms: The largest target the line must serve; the largest point
            is placed near it (at most :data:`LARGE_CAP_MS`).

    Returns:
        The fitted calibration (not stored).
    """
    from wsblock.engine.blas import pin_blas_threads

    pin_blas_threads(1)

    def job(units: int) -> Job:
        workload.prepare(units, params, data_dir)
        return Job(workload.name, units, chunk_units=units, params=dict(params), data_dir=data_dir)

    with _MachineLoad() as load:
        units = workload.calibration_start
        execute(job(units))  # first call pays imports and caches
        while True:
            ms = execute(job(units)).wall_ms
            if ms >= _FIRST_MS or units >= workload.max_units:
                break
            growth = _FIRST_MS / max(ms, 0.01)
            units = min(workload.max_units, int(units * min(10.0, max(2.0, growth * 1.2))))
        small = units
        medium = min(workload.max_units, small * 4)
        points = [[small, _median_ms(job(small))], [medium, _median_ms(job(medium))]]
        overhead, slope, _ = fit_line(points) if medium > small else (0.0, points[0][1] / small, "origin")
        goal = min(max(up_to_ms, 2 * points[-1][1]), LARGE_CAP_MS)
        large = min(workload.max_units, max(medium + 1, int(round((goal - overhead) / slope))))
        if large > medium:
            # One run: it is long enough that its own noise is small.
            points.append([large, execute(job(large)).wall_ms])
    overhead, slope, fit = fit_line(points)
    residuals = [round((ms - (overhead + slope * u)) / (overhead + slope * u) * 100.0, 2) for u, ms in points]
    fingerprint = _fingerprint(workload, params)
    return Calibration(
        workload=workload.name,
        params=dict(params),
        overhead_ms=overhead,
        ms_per_unit=slope,
        points=[[int(u), round(ms, 3)] for u, ms in points],
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        key=_key(fingerprint),
        fit=fit,
        residuals_pct=residuals,
        loadavg=load.loadavg,
        busy_cores=load.busy_cores,
        cpus=os.cpu_count() or 1,
    )


def _store_path() -> Path:
    return paths.cache_dir() / FILE_NAME


def _load_store() -> dict[str, dict]:
    from wsblock import inputs
    from wsblock.errors import UsageError

    try:
        # Bounded and never blocking: the cache directory is the user's to break.
        data = inputs.read_json(_store_path(), "calibration store")
        return data if isinstance(data, dict) else {}
    except (OSError, UsageError):
        return {}


def _quieter_now(stored: Calibration) -> bool:
    """Whether a line measured on a busy machine can now be measured better.

    A calibration times work by the wall clock, so one measured while more
    processes wanted the CPU than the machine has cores (1-minute load
    average at or above the core count) is too slow by the share of the CPU
    it did not get. Such a line is kept while the machine stays busy (every
    cell would otherwise calibrate again, no better), and replaced once the
    load average is below the core count and below half of what it was.
    """
    cpus = os.cpu_count() or 1
    if stored.loadavg is None or stored.loadavg < cpus:
        return False
    try:
        now = os.getloadavg()[0]
    except OSError:
        return False
    return now < cpus and now < stored.loadavg / 2


def get(
    name: str,
    params: Mapping[str, int],
    *,
    force: bool = False,
    up_to_ms: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Return the stored calibration for a workload, measuring it if needed.

    A stored line is measured again when its largest point lies below half
    of ``min(up_to_ms, LARGE_CAP_MS)``: it would be extrapolated too far; and
    when it was measured on a busy machine that is quiet now (see
    :func:`_quieter_now`).

    Args:
        name: Workload name.
        params: Validated workload parameters.
        force: Measure again even if a stored line exists.
        up_to_ms: The largest target the line must serve.
        progress: Called with a message before a measurement.

    Returns:
        The calibration.
    """
    workload = workloads.get(name)
    key = _key(_fingerprint(workload, params))
    store = _load_store()
    wanted = min(up_to_ms or DEFAULT_UP_TO_MS, LARGE_CAP_MS)
    if not force and key in store:
        try:
            stored = Calibration(**store[key])
        except TypeError:
            stored = None  # stored by an older layout; measure again
        if stored is not None and stored.largest_ms >= 0.5 * wanted and not _quieter_now(stored):
            return stored
    if progress:
        progress(f"calibrating {name} on this machine (stored in {_store_path()})")
    started = time.perf_counter()
    calibration = measure(workload, params, str(paths.data_dir()), up_to_ms=wanted)
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


@dataclass(frozen=True)
class CheckResult:
    """A stored calibration compared with a fresh measurement.

    Attributes:
        stored: The cached line (``None`` if there was none).
        fresh: The new measurement.
        drift: Fresh over stored prediction at the largest fresh point, minus 1.
        holds: Whether ``|drift|`` is within :data:`HOLDS_WITHIN`.
    """

    stored: Calibration | None
    fresh: Calibration
    drift: float | None
    holds: bool


def check(name: str, params: Mapping[str, int], *, up_to_ms: float | None = None) -> CheckResult:
    """Measure a workload again and compare with its stored line (nothing is written).

    Args:
        name: Workload name.
        params: Validated workload parameters.
        up_to_ms: Where the largest point goes.
    """
    workload = workloads.get(name)
    key = _key(_fingerprint(workload, params))
    try:
        stored: Calibration | None = Calibration(**_load_store()[key])
    except (KeyError, TypeError):
        stored = None
    fresh = measure(workload, params, str(paths.data_dir()),
                    up_to_ms=min(up_to_ms or (stored.largest_ms if stored else DEFAULT_UP_TO_MS), LARGE_CAP_MS))
    if stored is None:
        return CheckResult(None, fresh, None, False)
    units = int(fresh.points[-1][0])
    drift = fresh.predict_ms(units) / stored.predict_ms(units) - 1.0
    return CheckResult(stored, fresh, drift, abs(drift) <= HOLDS_WITHIN)
