"""Run a boundary search: measure cells, write records and the summary.

Cells run one at a time through the matrix machinery
(:func:`wsblock.matrix.measure.run_one`: a fresh process of :mod:`wsblock.engine.cell_main` per
cell, the record written atomically to ``DIR/cells/<cell_id>.json``). A
record already in the directory for the same cell and repeat is reused, so
a search that was interrupted resumes. The summary ``DIR/boundary.json``
(written atomically after every cell) holds every observation and the
estimate of each level.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from wsblock import atomic
from wsblock.boundary import model as bm
from wsblock.boundary import fit as fitmod
from wsblock.boundary import search
from wsblock.engine.config import CellConfig
from wsblock.matrix.spec import PlannedCell
from wsblock.schema import record as recmod
from wsblock.schema.keepalive import Keepalive
from wsblock.schema.rundir import record_path

SUMMARY = "boundary.json"
SUMMARY_KIND = "wsblock.boundary"
SUMMARY_VERSION = 2
LEVELS = (0.5, 0.05, 0.95)
"""Levels searched, in order: the 50 % boundary first, then the tails if budget remains."""


@dataclass
class Target:
    """One search: a cell template whose ``work_ms`` the search varies.

    Attributes:
        template: The cell; its ``work_ms`` is replaced.
        low_ms: Shortest length tried.
        high_ms: Longest length tried.
        observations: Cells measured so far.
        records: Their records (same order).
    """

    template: CellConfig
    low_ms: float
    high_ms: float
    observations: list[search.Observation] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0


def default_range(cell: CellConfig) -> tuple[float, float]:
    """Lengths the model says bound the boundary, widened by 2 either side.

    Below ``ping_timeout / job_connections`` no block reaching the timeout
    can form even if every job connection's job runs in one loop iteration;
    above ``ping_interval + ping_timeout`` every client ping train dies.
    """
    keepalive = Keepalive.of(cell.to_dict())
    first = bm.first_loss_job_s(keepalive)
    certain = bm.certain_loss_job_s(keepalive)
    n = max(1, cell.job_connections)
    low = (first or 1.0) / n / 2.0
    high = 2.0 * (certain if certain is not None else 4.0 * (first or 1.0))
    return low * 1000.0, high * 1000.0


def cell_at(template: CellConfig, work_ms: float) -> CellConfig:
    """The template with ``work_ms`` (rounded to 0.1 ms, so ids are stable)."""
    return dataclasses.replace(template, work_ms=round(float(work_ms), 1))


def observe(work_ms: float, record: Mapping[str, Any]) -> search.Observation | None:
    """The observation a record gives, or ``None`` for a failed cell."""
    if not recmod.is_ok(record):
        return None
    lost, total = bm.measured_loss([record])
    return search.Observation(work_ms, lost, total, measured_job_ms(record)) if total else None


STOP_WIDTH = 1.25
"""A search stops early when the 50 % interval (in measured job length) is this narrow..."""
STOP_MIN_CELLS = 16
"""...and rests on at least this many cells."""

INTERVAL_METHOD = (
    "logistic curve of the share of original connections lost against ln(job length), each CELL one "
    "trial (its connections share its stalls and are lost together, so they are not independent); "
    "point: middle of the lengths of highest likelihood; interval: 95 % profile likelihood of the "
    "crossing (chi-squared, 1 degree of freedom), slope capped at 50 per ln ms; an end that reaches a "
    "factor of 2 beyond the measured lengths is open (null). value/low/high are in the job length the "
    "cells measured (median job_ms of each cell); work_ms holds the same in the target lengths asked for")


def crossings(observations: Sequence[search.Observation], level: float) -> tuple[Any, Any]:
    """The crossing of ``level`` in measured job length and in ``work_ms``, cells as trials.

    A cell whose jobs were not measured (none completed) counts at its
    target length in the first.
    """
    measured = [(o.job_ms or o.work_ms, o.lost / o.connections) for o in observations if o.connections]
    asked = [(o.work_ms, o.lost / o.connections) for o in observations if o.connections]
    return fitmod.crossing(measured, level), fitmod.crossing(asked, level)


def estimates(target: Target) -> dict[str, Any]:
    """The summary entry of one target: crossings, fit and the model's view."""
    params = target.template.to_dict()
    entry: dict[str, Any] = {
        "workload": params["workload"], "strategy": params["strategy"],
        "ping_interval": params["ping_interval"], "ping_timeout": params["ping_timeout"],
        "job_connections": params["job_connections"], "client_pings": params["client_pings"],
        "handler_ping_timeout": params["handler_ping_timeout"],
        "observers": params.get("observers"), "duration": params.get("duration"),
        "warmup": params.get("warmup"),
        "range_ms": [target.low_ms, target.high_ms],
        "cells": len(target.observations), "failed_cells": target.failed,
        "reversals": search.reversals(target.observations, 0.5),
        "observations": [{"work_ms": o.work_ms, "lost": o.lost, "connections": o.connections,
                          "job_ms_p50": o.job_ms, "max_stall_ms": _max_stall(r),
                          "closed_by": _closed_by(r), "warnings": _codes(r)}
                         for o, r in zip(target.observations, target.records)],
        "reported_in": "measured_job_ms",
        "interval_method": INTERVAL_METHOD,
    }
    warnings: dict[str, int] = {}
    for rec in target.records:
        for code in _codes(rec):
            warnings[code] = warnings.get(code, 0) + 1
    entry["warnings"] = warnings
    ratios = [o.job_ms / o.work_ms for o in target.observations if o.job_ms]
    entry["job_ratio_p50"] = _median(ratios)
    curve = fitmod.fit(target.observations)
    entry["logistic"] = None if curve is None else {"a": curve.a, "b": curve.b}
    for level in LEVELS:
        b = search.bracket(target.observations, level)
        in_jobs, in_work = crossings(target.observations, level)
        key = f"p{round(level * 100):02d}"
        fitted = curve.length_at(level) if curve is not None else None
        entry[key] = {"level": level, "value": in_jobs.value, "low": in_jobs.low, "high": in_jobs.high,
                      "width": in_jobs.width, "lowest": in_jobs.lowest, "highest": in_jobs.highest,
                      "work_ms": in_work.to_dict(),
                      "bracket": [b.low, b.high], "bracketed": b.bracketed, "logistic_ms": fitted,
                      "measured_job_ms": [_median_job(target, b.low), _median_job(target, b.high)]}
    # The model on the measured stall patterns: its predicted loss at each
    # measured cell, and where that crosses 50 % (in measured job length,
    # each cell one trial, as for the measurement).
    predicted = []
    for obs, rec in zip(target.observations, target.records):
        predicted.append((obs, bm.predict_record(rec, phases=100).p))
    model = fitmod.crossing([(o.job_ms or o.work_ms, p) for o, p in predicted], 0.5)
    entry["model_p50_ms"] = model.value
    entry["model_p50_interval"] = [model.low, model.high]
    model_bracket = search.bracket([search.Observation(o.work_ms, round(p * 1000), 1000) for o, p in predicted],
                                   0.5)
    entry["model_p50_bracket"] = [model_bracket.low, model_bracket.high]
    entry["model_predicted"] = [{"work_ms": o.work_ms, "job_ms": o.job_ms, "p": round(p, 3)}
                                for o, p in predicted]
    return entry


def _codes(record: Mapping[str, Any]) -> list[str]:
    return sorted({str(w.get("code")) for w in record.get("warnings") or [] if isinstance(w, Mapping)})


def _max_stall(record: Mapping[str, Any]) -> float | None:
    value = (record.get("stalls") or {}).get("max_whole_ms")
    return float(value) if isinstance(value, (int, float)) else None


def _closed_by(record: Mapping[str, Any]) -> dict[str, int]:
    return dict((record.get("disconnects") or {}).get("by_initiator") or {})


@dataclass(frozen=True)
class _Job:
    work_ms: float
    job_ms_p50: float | None


def _jobs(target: Target) -> list[_Job]:
    return [_Job(o.work_ms, measured_job_ms(r)) for o, r in zip(target.observations, target.records)]


def measured_job_ms(record: Mapping[str, Any]) -> float | None:
    """The job length a cell measured (ms): the median of its completed jobs once some were censored."""
    job = record.get("job_ms") or {}
    # The measured job length: of completed jobs once some were censored
    # (a job cut at the window's end says only that it ran at least so long).
    value = job.get("completed_p50") if job.get("n_censored") else None
    if value is None:
        value = job.get("p50", job.get("completed_p50"))
    return float(value) if isinstance(value, (int, float)) else None


def _median(values: Sequence[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def _median_job(target: Target, work_ms: float | None) -> float | None:
    # What jobs asked to last work_ms really took in the cells (a loaded
    # machine stretches them): the median over its repeats.
    if work_ms is None:
        return None
    return _median([v for o, r in zip(target.observations, target.records)
                    if o.work_ms == work_ms and (v := measured_job_ms(r)) is not None])


def summary(targets: Sequence[Target], *, budget: int, command: str) -> dict[str, Any]:
    """The whole summary document."""
    return {"kind": SUMMARY_KIND, "version": SUMMARY_VERSION, "command": command, "budget_per_target": budget,
            "estimates": [estimates(t) for t in targets]}


def run_target(target: Target, directory: Path, *, budget: int, max_repeats: int = 3,
               levels: Sequence[float] = LEVELS, on_cell: Callable[[str], None] | None = None,
               measure: Callable[[PlannedCell, Path], dict[str, Any]] | None = None,
               after: Callable[[], None] | None = None) -> None:
    """Measure cells for one target until its first level is resolved or the budget is spent.

    The cells follow :func:`wsblock.boundary.search.staircase_next` around
    the first level; the other levels are estimated from the same cells.

    Args:
        target: The search; its observations grow.
        directory: Run directory.
        budget: Most cells for this target (reused records count).
        max_repeats: Most cells at one length.
        levels: Levels to resolve, in order.
        on_cell: Called with a line of progress per cell.
        measure: Runs one cell and writes its record (default
            :func:`wsblock.matrix.measure.run_one`; tests pass their own).
        after: Called after every cell (writes the summary).
    """
    from wsblock.matrix.measure import run_one
    from wsblock.matrix.reuse import existing_record

    measure = measure or run_one
    repeats: dict[float, int] = {}
    level = levels[0]
    while len(target.observations) + target.failed < budget:
        if _resolved(target, level):
            break
        ms = search.staircase_next(target.observations, level=level, low_ms=target.low_ms,
                                   high_ms=target.high_ms)
        if ms is None:
            break
        ms = round(ms, 1)
        planned = PlannedCell(cell=cell_at(target.template, ms), repeat=repeats.get(ms, 0))
        repeats[ms] = planned.repeat + 1
        path = record_path(directory, planned.cell_id)
        rec = existing_record(path, planned)
        reused = rec is not None
        if rec is None:
            rec = measure(planned, path)
        rec = recmod.upgrade(rec)
        obs = observe(ms, rec)
        if obs is None:
            target.failed += 1
            line = f"{planned.cell_id}: failed ({rec.get('error', 'no connection counted')})"
        else:
            target.observations.append(obs)
            target.records.append(rec)
            took = f", jobs took {obs.job_ms:,.0f} ms" if obs.job_ms else ""
            line = (f"{planned.cell_id}: {obs.lost}/{obs.connections} lost{took}"
                    f"{' (recorded before)' if reused else ''}")
        if on_cell:
            on_cell(line)
        if after:
            after()
        if target.failed >= 3 and not target.observations:
            return


def _resolved(target: Target, level: float) -> bool:
    # Enough cells, and the interval in measured job length is narrow.
    if len(target.observations) < STOP_MIN_CELLS:
        return False
    in_jobs, _ = crossings(target.observations, level)
    return in_jobs.width is not None and in_jobs.width <= STOP_WIDTH


def run_search(templates: Sequence[CellConfig], directory: Path, *, budget: int, command: str,
               low_ms: float | None = None, high_ms: float | None = None, max_repeats: int = 3,
               quiet: bool = False,
               measure: Callable[[PlannedCell, Path], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Search the boundary of every template, writing records and the summary.

    Returns:
        The summary (also in ``DIR/boundary.json``).
    """
    targets = []
    for t in templates:
        lo, hi = default_range(t)
        targets.append(Target(t, low_ms if low_ms is not None else lo, high_ms if high_ms is not None else hi))
    (directory / "cells").mkdir(parents=True, exist_ok=True)

    def write() -> None:
        atomic.write_json(directory / SUMMARY, summary(targets, budget=budget, command=command))

    def say(line: str) -> None:
        if not quiet:
            print(f"wsblock: {line}", file=sys.stderr, flush=True)

    for target in targets:
        run_target(target, directory, budget=budget, max_repeats=max_repeats, on_cell=say, measure=measure,
                   after=write)
    write()
    return summary(targets, budget=budget, command=command)


def _ms(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:,.0f} ms"


def _interval(e: Mapping[str, Any]) -> str:
    low, high = e.get("low"), e.get("high")
    lowest, highest = e.get("lowest"), e.get("highest")
    if e.get("value") is None:
        if low is None and high is not None:
            return f"below {high:,.0f} ms (open below the shortest measured, {_ms(lowest, '?')})"
        if high is None and low is not None:
            return f"above {low:,.0f} ms (open above the longest measured, {_ms(highest, '?')})"
        return "not estimated"
    width = f", width x{high / low:.2f}" if low and high else ""
    return (f"{e['value']:,.0f} ms (95 % interval {_ms(low, 'open')} to {_ms(high, 'open')}{width})")


def format_estimate(entry: Mapping[str, Any]) -> list[str]:
    """Lines for people: the setting, each level in measured job length and in work_ms, the model."""
    pt = entry.get("ping_timeout")
    failed = f", {entry['failed_cells']} failed" if entry.get("failed_cells") else ""
    window = f", {entry['duration']:g} s windows" if entry.get("duration") else ""
    head = (f"{entry['workload']} x {entry['strategy']}, ping_interval={entry['ping_interval']} "
            f"ping_timeout={'none' if pt is None else pt}, {entry['job_connections']} job connections"
            f"{'' if entry.get('client_pings', True) else ', no client pings'}: "
            f"{entry['cells']} cells{failed}{window}")
    lines = [head]
    for level in LEVELS:
        e = entry[f"p{round(level * 100):02d}"]
        name = f"{level * 100:g} % loss"
        asked = e.get("work_ms") or {}
        lines.append(f"  {name:9} at jobs that took {_interval(e)}")
        if asked:
            lines.append(f"  {'':9} asked work_ms {_interval(asked)}")
    lines.append(f"  method    each cell one trial ({entry['cells']} cells), logistic in ln(job length), "
                 "95 % profile likelihood")
    ratio = entry.get("job_ratio_p50")
    if ratio is not None and not 0.85 <= ratio <= 1.15:
        lines.append(f"  warning   jobs ran {ratio:.2f} x their target length (median over the cells): "
                     "the boundary in work_ms is not the boundary in job length")
    noisy = {code: n for code, n in (entry.get("warnings") or {}).items()
             if code in ("oversubscribed", "load_saturated", "calibration_drift")}
    if noisy:
        lines.append("  warning   " + ", ".join(f"{code} in {n} of {entry['cells']} cells"
                                               for code, n in sorted(noisy.items())))
    model = entry.get("model_p50_ms")
    if model is not None:
        lines.append(f"  model     50 % at jobs of {model:,.0f} ms on the measured stall patterns")
    return lines


__all__ = ["LEVELS", "SUMMARY", "Target", "cell_at", "default_range", "estimates", "format_estimate",
           "crossings", "observe", "run_search", "run_target", "summary"]
