"""Run a boundary search: measure cells, write records and the summary.

Cells run one at a time through the matrix machinery
(:func:`wsblock.matrix.run.run_one`: a fresh ``wsblock run`` process per
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
from wsblock.analysis import boundary_model as bm
from wsblock.boundary import fit as fitmod
from wsblock.boundary import search
from wsblock.engine.config import CellConfig
from wsblock.matrix.spec import PlannedCell
from wsblock.schema import record as recmod
from wsblock.schema.rundir import record_path

SUMMARY = "boundary.json"
SUMMARY_KIND = "wsblock.boundary"
SUMMARY_VERSION = 1
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
    keepalive = bm.keepalive_of(cell.to_dict())
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
    return search.Observation(work_ms, lost, total) if total else None


def estimates(target: Target) -> dict[str, Any]:
    """The summary entry of one target: brackets, fit and the model's view."""
    params = target.template.to_dict()
    entry: dict[str, Any] = {
        "workload": params["workload"], "strategy": params["strategy"],
        "ping_interval": params["ping_interval"], "ping_timeout": params["ping_timeout"],
        "job_connections": params["job_connections"], "client_pings": params["client_pings"],
        "handler_ping_timeout": params["handler_ping_timeout"],
        "range_ms": [target.low_ms, target.high_ms],
        "cells": len(target.observations), "failed_cells": target.failed,
        "observations": [{**dataclasses.asdict(o), "job_ms_p50": _job_p50(r)}
                         for o, r in zip(target.observations, target.records)],
        "interval_method": "point: geometric middle of the bracket (largest measured job length whose "
                           "pooled share of original connections lost was at or below the level, smallest "
                           "above it); interval (low, high): largest length whose share's Wilson 95 % "
                           "interval lies at or below the level, smallest whose interval lies above it "
                           "(connections counted as independent trials)",
    }
    warnings: dict[str, int] = {}
    for rec in target.records:
        for code in sorted({w.get("code") for w in rec.get("warnings") or [] if isinstance(w, Mapping)}):
            warnings[str(code)] = warnings.get(str(code), 0) + 1
    entry["warnings"] = warnings
    ratios = [o.job_ms_p50 / o.work_ms for o in _jobs(target) if o.job_ms_p50]
    entry["job_ratio_p50"] = _median(ratios)
    curve = fitmod.fit(target.observations)
    entry["logistic"] = None if curve is None else {"a": curve.a, "b": curve.b}
    for level in LEVELS:
        b = search.bracket(target.observations, level)
        c = search.confident_bracket(target.observations, level)
        key = f"p{round(level * 100):02d}"
        fitted = curve.length_at(level) if curve is not None else None
        entry[key] = {"level": level, "value": b.value, "low": c.low, "high": c.high,
                      "bracket": [b.low, b.high], "bracketed": b.bracketed, "logistic_ms": fitted,
                      "measured_job_ms": [_median_job(target, c.low), _median_job(target, c.high)]}
    # The model on the measured stall patterns: its predicted loss at each
    # measured length, and where that crosses 50 %.
    predicted = []
    for obs, rec in zip(target.observations, target.records):
        predicted.append(search.Observation(obs.work_ms, round(bm.predict_record(rec, phases=100).p * 1000), 1000))
    model = search.bracket(predicted, 0.5)
    entry["model_p50_ms"] = model.value
    entry["model_p50_bracket"] = [model.low, model.high]
    entry["model_predicted"] = [{"work_ms": o.work_ms, "p": o.lost / 1000} for o in predicted]
    return entry


@dataclass(frozen=True)
class _Job:
    work_ms: float
    job_ms_p50: float | None


def _jobs(target: Target) -> list[_Job]:
    return [_Job(o.work_ms, _job_p50(r)) for o, r in zip(target.observations, target.records)]


def _job_p50(record: Mapping[str, Any]) -> float | None:
    job = record.get("job_ms") or {}
    value = job.get("completed_p50", job.get("p50"))
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
                    if o.work_ms == work_ms and (v := _job_p50(r)) is not None])


def summary(targets: Sequence[Target], *, budget: int, command: str) -> dict[str, Any]:
    """The whole summary document."""
    return {"kind": SUMMARY_KIND, "version": SUMMARY_VERSION, "command": command, "budget_per_target": budget,
            "estimates": [estimates(t) for t in targets]}


def run_target(target: Target, directory: Path, *, budget: int, max_repeats: int = 3,
               levels: Sequence[float] = LEVELS, on_cell: Callable[[str], None] | None = None,
               measure: Callable[[PlannedCell, Path], dict[str, Any]] | None = None,
               after: Callable[[], None] | None = None) -> None:
    """Measure cells for one target until its levels are resolved or the budget is spent.

    Args:
        target: The search; its observations grow.
        directory: Run directory.
        budget: Most cells for this target (reused records count).
        max_repeats: Most cells at one length.
        levels: Levels to resolve, in order.
        on_cell: Called with a line of progress per cell.
        measure: Runs one cell and writes its record (default
            :func:`wsblock.matrix.run.run_one`; tests pass their own).
        after: Called after every cell (writes the summary).
    """
    from wsblock.matrix.run import existing_record, run_one

    measure = measure or run_one
    repeats: dict[float, int] = {}
    for level in levels:
        while len(target.observations) + target.failed < budget:
            ms = search.next_length(target.observations, level=level, low_ms=target.low_ms,
                                    high_ms=target.high_ms, max_repeats=max_repeats)
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
                line = (f"{planned.cell_id}: {obs.lost}/{obs.connections} lost"
                        f"{' (recorded before)' if reused else ''}")
            if on_cell:
                on_cell(line)
            if after:
                after()
            if target.failed >= 3 and not target.observations:
                return


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


def _took(pair: Sequence[float | None] | None) -> str:
    # What the jobs at the interval's ends really took: on a loaded machine
    # a job asked to last work_ms runs longer.
    if not pair or all(v is None for v in pair):
        return ""
    if len(pair) == 1:
        return f"; those jobs took {_ms(pair[0], '?')}"
    return "; those jobs took " + " and ".join(_ms(v, "?") for v in pair)


def _median_job_of(entry: Mapping[str, Any], work_ms: float) -> float | None:
    return _median([o["job_ms_p50"] for o in entry.get("observations", [])
                    if o["work_ms"] == work_ms and o.get("job_ms_p50") is not None])


def format_estimate(entry: Mapping[str, Any]) -> list[str]:
    """Lines for people: the setting, each level with its bracket, the model."""
    pt = entry.get("ping_timeout")
    failed = f", {entry['failed_cells']} failed" if entry.get("failed_cells") else ""
    head = (f"{entry['workload']} x {entry['strategy']}, ping_interval={entry['ping_interval']} "
            f"ping_timeout={'none' if pt is None else pt}, {entry['job_connections']} job connections"
            f"{'' if entry.get('client_pings', True) else ', no client pings'}: "
            f"{entry['cells']} cells{failed}")
    lines = [head]
    for level in LEVELS:
        e = entry[f"p{round(level * 100):02d}"]
        name = f"{level * 100:g} % loss"
        low, high = e["bracket"]
        if e["bracketed"]:
            interval = (f"interval {_ms(e['low'], 'open')} to {_ms(e['high'], 'open')}"
                        f"{_took(e.get('measured_job_ms'))}")
            fitted = f"; logistic fit {e['logistic_ms']:,.0f} ms" if e.get("logistic_ms") else ""
            lines.append(f"  {name:9} at {e['value']:,.0f} ms (bracket {low:,.0f} to {high:,.0f} ms; "
                         f"{interval}{fitted})")
        elif low is None and high is not None:
            lines.append(f"  {name:9} below {high:,.0f} ms (every length measured was above it"
                         f"{_took([_median_job_of(entry, high)])})")
        elif high is None and low is not None:
            lines.append(f"  {name:9} above {low:,.0f} ms (no length measured reached it"
                         f"{_took([_median_job_of(entry, low)])})")
        else:
            lines.append(f"  {name:9} not estimated (no cell measured)")
    ratio = entry.get("job_ratio_p50")
    if ratio is not None and not 0.85 <= ratio <= 1.15:
        lines.append(f"  warning   jobs ran {ratio:.2f} x their target length (median over the cells): "
                     "read the boundary in the lengths the jobs took, not in work_ms")
    noisy = {code: n for code, n in (entry.get("warnings") or {}).items()
             if code in ("oversubscribed", "load_saturated", "calibration_drift")}
    if noisy:
        lines.append("  warning   " + ", ".join(f"{code} in {n} of {entry['cells']} cells"
                                               for code, n in sorted(noisy.items())))
    model = entry.get("model_p50_ms")
    if model is not None:
        lines.append(f"  model     50 % at {model:,.0f} ms on the measured stall patterns")
    return lines


__all__ = ["LEVELS", "SUMMARY", "Target", "cell_at", "default_range", "estimates", "format_estimate",
           "observe", "run_search", "run_target", "summary"]
