"""What ``wsblock advise`` measures: the target checked, the cells and their windows planned.

A target is a built-in workload (``c_holds_gil``) or a user's function
(``package.module:function``, importable from the current directory or the
environment). Everything is checked here, before any server starts: the
name, the parameters, the function's trial call, and that a process pool
can load it.

Two ways to measure, chosen per run:

* **direct**: when windows sized to observe a keepalive timeout at the
  user's settings are short (at most :data:`DIRECT_MAX_S`), the cells run
  with those windows and their verdicts are measured;
* **stall pattern**: otherwise the cells run with windows long enough for
  stable stall statistics (:data:`STALL_JOBS` jobs per connection, at least
  :data:`STALL_MIN_S`), and the keepalive outcome is predicted from the
  stalls (:mod:`wsblock.advise.predict`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil

import workloads
from wsblock.engine import exposure, sizing, strategies, user_workloads
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import settings

DEFAULT_WORK_MS = 1000.0
"""Job length of a built-in (or calibrated) workload when ``--work-ms`` is not given."""

DEFAULT_JOB_CONNECTIONS = 1
"""Calls the server runs at once (``--concurrency``; one job connection per
call) when not given: one, so a process pool never takes every core of a
small machine from the server it is measured against. A server that runs
several calls at once should say how many: N calls of length L lose
connections near N x L = ping_timeout (``results/reference/FINDINGS.md``,
section 8)."""

DEFAULT_REPEATS = 3
"""Repeats per strategy: the fewest for which a verdict can be ``safe``."""

DIRECT_MAX_S = 30.0
"""Longest sized window for which the keepalive outcome is measured directly."""

STALL_JOBS = 4
"""Jobs per job connection in a stall-pattern window."""

STALL_MIN_S = 8.0
"""Shortest stall-pattern window (enough probe samples for a lag p99)."""

CONFIRM_CYCLES = exposure.DEFAULT_MIN_CYCLES
"""Keepalive cycles a confirmation cell must observe: as many as a verdict of ``kept`` needs anywhere else."""


@dataclass
class Target:
    """A checked target and the matrix that measures it.

    Attributes:
        name: The workload name or ``package.module:function``.
        workload: The workload.
        strategies: Strategies that apply, cheapest first.
        definition: The matrix definition (without ``duration``).
        job_ms: Expected job length: the target, or the function's trial call.
        notes: Lines to print before running (ignored options, ...).
    """

    name: str
    workload: workloads.Workload
    strategies: list[str]
    definition: dict[str, Any]
    job_ms: float
    notes: list[str]


def looks_like_directory(text: str) -> bool:
    """Whether a target names a directory rather than a workload."""
    return Path(text).is_dir() or (":" not in text and (os.sep in text or text.startswith(".")))


def applicable(workload: workloads.Workload, only: list[str] | None = None) -> list[str]:
    """The strategies that can run ``workload``, cheapest first (``only``: a subset)."""
    from wsblock.advise.choose import cost_key

    names = sorted(strategies.names(), key=cost_key)
    if only:
        unknown = [s for s in only if s not in names]
        if unknown:
            raise UsageError(f"unknown strategy {unknown[0]!r} (choose from {', '.join(names)})")
        names = [s for s in names if s in only]
    out = [s for s in names if strategies.get(s).unsupported_reason(workload) is None]
    if not out:
        raise UsageError(f"no strategy among {', '.join(names)} can run {workload.name}")
    return out


def resolve(name: str, *, work_ms: float | None, params: list[tuple[str, Any]], ping_interval: float | None,
            ping_timeout: float | None, job_connections: int, repeats: int,
            only: list[str] | None = None) -> Target:
    """Check a target and plan its matrix; nothing runs yet.

    Raises:
        UsageError: One line: an unknown workload, a bad parameter or setting.
    """
    try:
        workload = workloads.lookup(name)
    except workloads.WorkloadError as exc:
        raise UsageError(f"{exc}, or give a run directory") from None
    # The rules of a cell (wsblock.schema.settings), said in the options' words before the matrix says them.
    given = CellConfig(name, work_ms, "", ping_interval=ping_interval, ping_timeout=ping_timeout,
                       job_connections=job_connections)
    refused = settings.refusal(vars(given), stated=("ping_interval", "ping_timeout"), spell=settings.option)
    if refused:
        raise UsageError(refused)
    if not 1 <= job_connections <= 256:
        raise UsageError(f"--concurrency must be 1 to 256 (advice needs jobs), got {job_connections}")
    if not 1 <= repeats <= 100:
        raise UsageError(f"--repeats must be 1 to 100, got {repeats}")
    notes: list[str] = []
    definition: dict[str, Any] = {
        "description": f"wsblock advise {name}",
        "workloads": [name],
        "strategies": applicable(workload, only),
        "ping_interval": "none" if ping_interval is None else ping_interval,
        "ping_timeout": "none" if ping_timeout is None else ping_timeout,
        "job_connections": job_connections,
        "repeats": repeats,
    }
    function = isinstance(workload, workloads.FunctionWorkload)
    if function and not workload.calibrated:
        if work_ms is not None:
            notes.append(f"--work-ms {work_ms:g} ignored: {name} takes no units, so each job is one call")
    else:
        definition["work_ms"] = [work_ms if work_ms is not None else DEFAULT_WORK_MS]
    if params:
        if function:
            definition["params"] = dict(params)
        else:
            known = {p.name for p in workload.params}
            for key, value in params:
                if key not in known:
                    raise UsageError(f"--param {key}: {name} takes "
                                     f"{', '.join(sorted(known)) if known else 'no parameters'}")
                definition[f"{name}_{key}"] = value
    matrix = matrix_spec.expand(definition, source=f"advise {name}")  # validates every value
    assert matrix.cells
    job_ms = float(matrix.cells[0].cell.work_ms or 0.0)
    return Target(name, workload, list(definition["strategies"]), definition, job_ms, notes)


def check(target: Target, progress: Callable[[str], None]) -> None:
    """Call a user's function and load it where its strategies will, before any server starts.

    Sets ``target.job_ms`` from the trial call of a function without ``units``.

    Raises:
        UsageError: One line naming the function and the cause.
    """
    workload = target.workload
    if not isinstance(workload, workloads.FunctionWorkload):
        return
    cells = _distinct(matrix_spec.expand(target.definition, source=f"advise {target.name}"))
    if not workload.calibrated:
        target.job_ms = user_workloads.trial(cells[0], progress)
    for cell in cells:
        user_workloads.check_for_strategy(cell)


def time_calls(target: Target, progress: Callable[[str], None]) -> list[float]:
    """Time calls of a user's function without ``units`` in a child process, before any server starts.

    The second trial call (:func:`check`) counts as the first timed call;
    :func:`wsblock.advise.behaviour.calls_to_time` says how many follow.
    Built-in and calibrated workloads are not timed here: their jobs are
    sized to a target, and the cells' jobs give their call times.

    Returns:
        Call times in ms, or ``[]`` when nothing was timed.

    Raises:
        UsageError: If a call raises.
    """
    from wsblock.advise import behaviour

    workload = target.workload
    if not isinstance(workload, workloads.FunctionWorkload) or workload.calibrated or target.job_ms <= 0:
        return []
    cell = _distinct(matrix_spec.expand(target.definition, source=f"advise {target.name}"))[0]
    count = behaviour.calls_to_time(target.job_ms)
    progress(f"timing {count} calls of {target.name} (about {count * target.job_ms / 1000:,.0f} s)")
    if count <= 1:
        return [target.job_ms]
    # In a process of its own; the limit grows with the calls asked for.
    from wsblock.engine import contained

    limit = contained.limit_s() + 3.0 * (count - 1) * target.job_ms / 1000.0
    return [target.job_ms] + user_workloads.calls(cell, 1, ["on a timed call"], count=count - 1, limit=limit)


def _distinct(matrix: matrix_spec.Matrix) -> list[CellConfig]:
    return [p.cell for p in matrix.cells if p.repeat == 0]


def _plan(cell: CellConfig, job_ms: float, **changes: Any) -> sizing.WindowPlan:
    from wsblock.engine.runner import plan_window

    return plan_window(replace(cell, **changes), {"expected_ms": job_ms})


def sized_window_s(target: Target) -> tuple[float, bool]:
    """The longest window sized to observe the keepalive at the user's settings, and whether it can.

    Returns:
        ``(seconds, observable)``: the engine's sized window of the slowest
        strategy, and whether every window covers the keepalive cycles a
        verdict needs (windows are capped at the cells' ``max_window``, by default
        :data:`wsblock.engine.sizing.MAX_WINDOW_S`).
    """
    plans = [_plan(c, target.job_ms) for c in _distinct(matrix_spec.expand(target.definition, source="advise"))]
    return max(p.needed_s for p in plans), all(p.keepalive_observable for p in plans)


def direct(target: Target) -> bool:
    """Whether to measure the keepalive outcome directly: sized windows are at most :data:`DIRECT_MAX_S`."""
    needed, observable = sized_window_s(target)
    return observable and needed <= DIRECT_MAX_S


def stall_window_s(target: Target) -> float:
    """A window with :data:`STALL_JOBS` jobs per job connection under the slowest strategy."""
    workload = target.workload
    periods = [sizing.job_period_s(strategy=c.strategy, job_s=target.job_ms / 1000.0,
                                   job_connections=c.job_connections, workers=c.pool_size,
                                   cpus=psutil.cpu_count() or 1, releases_gil=workload.gil.startswith("released"))
               for c in _distinct(matrix_spec.expand(target.definition, source="advise"))]
    return float(max(STALL_MIN_S, math.ceil(STALL_JOBS * max(periods))))


def confirm_definition(target: Target, strategies_: list[str]) -> dict[str, Any] | None:
    """The matrix that confirms a prediction near the boundary with windows sized to observe a timeout.

    Its cells must observe :data:`CONFIRM_CYCLES` keepalive cycles, as many
    as ``kept`` needs elsewhere; ``None`` when the engine's longest window
    cannot hold them (the prediction then stays inconclusive).
    """
    base = {**target.definition, "strategies": strategies_}
    cells = _distinct(matrix_spec.expand(base, source="advise"))
    if all(_plan(c, target.job_ms, min_cycles=CONFIRM_CYCLES).keepalive_observable for c in cells):
        return {**base, "min_cycles": CONFIRM_CYCLES, "description": f"{base['description']} (confirmation)"}
    return None


def default_out(name: str) -> Path:
    """``results/runs/advise-<target>-<UTC time>``."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", workloads.functions.slug(name))
    return Path("results") / "runs" / f"advise-{safe}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


__all__ = ["CONFIRM_CYCLES", "DEFAULT_JOB_CONNECTIONS", "DEFAULT_REPEATS", "DEFAULT_WORK_MS", "DIRECT_MAX_S",
           "STALL_JOBS", "STALL_MIN_S", "Target", "applicable", "check", "confirm_definition", "default_out",
           "direct", "looks_like_directory", "resolve", "sized_window_s", "stall_window_s", "time_calls"]
