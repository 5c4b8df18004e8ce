"""The run of ``wsblock advise TARGET``: run the strategies that apply, print a verdict table and one recommendation."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from wsblock.advise import behaviour, predict, saved, target as tg
from wsblock.advise import choose as ch
from wsblock.advise import concurrency as conc
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.engine import user_workloads
from wsblock.errors import UsageError
from wsblock.report import markdown as md
from wsblock.schema import rundir


def _say(message: str) -> None:
    print(f"wsblock: {message}", file=sys.stderr, flush=True)


def _run(definition: dict[str, Any], out: Path, *, quiet: bool) -> list[str]:
    """Run a matrix into ``out``; return the ids of cells without a good record."""
    from wsblock import paths
    from wsblock.matrix import spec as matrix_spec
    from wsblock.durations import format_duration
    from wsblock.matrix.directory import check_directory
    from wsblock.matrix.manifest import command_line
    from wsblock.matrix.run import run_matrix

    matrix = matrix_spec.expand(definition, source=definition["description"])
    plan = check_directory(matrix, out)
    paths.clean_stale()
    _say(f"{len(matrix.cells)} cells, {plan.reused} already recorded, about {format_duration(plan.estimate_s)}")
    outcome = run_matrix(matrix, out, command=command_line(), show_progress=not quiet)
    bad = outcome.not_ok + outcome.missing
    if bad:
        _say(f"warning: {len(bad)} of {len(matrix.cells)} cells have no good record ({', '.join(bad[:3])}"
             f"{', ...' if len(bad) > 3 else ''}); the verdict counts them as failed repeats")
    return bad


def _cells(out: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    from wsblock.analysis import tidy
    from wsblock.analysis import cells as cellmod
    from wsblock.report.document import read_run

    loaded, warnings = read_run(out)
    for warning in warnings:
        print(f"warning: left out {warning}", file=sys.stderr)
    records = [r for _, r in loaded.records]
    return cellmod.aggregate(tidy.frame(loaded.records)), records


def _advice(cells: pd.DataFrame) -> dict[str, rec.Advice]:
    from wsblock.report.recommendation import recommendation

    result = recommendation(cells)
    return {a.strategy: a for w in result.workloads for a in result.of(w)}


def _ok(records: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "ok" and r.get("params", {}).get("strategy") == strategy]


def _measured_keep(a: rec.Advice | None, basis: str, forecast: predict.Forecast | None = None) -> ch.Keep:
    if a is None or a.verdict == rec.NO_DATA:
        return ch.Keep("unknown", basis, None, forecast)
    outcome = "lost" if a.verdict == rec.DROPS else (
        "kept" if a.kept and not a.undecided and not a.lost else "unknown")
    return ch.Keep(outcome, basis, a.connections, forecast)


def _kept(p: Any) -> str:
    """``6 of 6 [0.61, 1.00]``: connections kept, with the Wilson interval of the kept share."""
    if p is None or not p.n:
        return "none at risk"
    kept = iv.wilson(p.n - p.k, p.n)
    return f"{kept.k} of {kept.n} [{kept.low:.2f}, {kept.high:.2f}]"


def _q(q: rec.Quantity | None, fmt: Any = md.ms) -> str:
    return fmt(q.value) if q is not None and q.known else "–"


def _row_value(cells: pd.DataFrame, strategy: str, column: str) -> float:
    rows = cells[cells["strategy"] == strategy]
    if rows.empty or column not in rows:
        return math.nan
    value = rows.iloc[0][column]
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


CPU_COVERAGE = 0.5
"""The server's CPU is shown only when sampled over at least this share of the window."""


def cpu_unsampled(records: list[dict[str, Any]], strategy: str) -> float | None:
    """The shortest span (s) the server's CPU was sampled over, when under :data:`CPU_COVERAGE` of the window.

    Records from before the runner read the server's CPU from outside were
    measured by a thread inside the server, which took its first snapshot
    when the window opened and its last when the loop stopped it; work that
    held the GIL or the loop at those moments shrank the span, and the CPU
    then read near 0. Newer records carry no figure over a partial span.
    """
    spans = []
    for r in _ok(records, strategy):
        window = float((r.get("window") or {}).get("duration_s") or 0.0)
        span = (((r.get("resources") or {}).get("server") or {}).get("interval_s"))
        if window > 0 and isinstance(span, (int, float)) and span < CPU_COVERAGE * window:
            spans.append(float(span))
    return min(spans) if spans else None


def table(judged: list[ch.Judged], cells: pd.DataFrame, records: list[dict[str, Any]] = ()) -> list[str]:
    """The verdict table, one line per strategy (CPU left out where the server could not sample it)."""
    header = ["strategy", "connections kept", "loop lag p50 / p99 ms", "stalled", "longest stall ms",
              "echo p99 ms", "jobs/s", "CPU cores", "loop free", "n"]
    rows = []
    for j in judged:
        a = j.advice
        f = j.keep.forecast
        if j.keep.basis == ch.PREDICTED and f is not None:
            kept = f"predicted P(loss) {f.p:.2f}" + (", inconclusive" if j.keep.outcome == "unknown" else "")
        else:
            kept = _kept(j.keep.connections) + (" (confirmed)" if j.keep.basis == ch.CONFIRMED else "")
        share = a.stalled_share.value if a.stalled_share is not None and a.stalled_share.known else math.nan
        echo = _row_value(cells, j.strategy, "echo_p99_ms")
        bound = cells[cells["strategy"] == j.strategy]["echo_lower_bound"].astype(str).str.lower().eq("true").any() \
            if "echo_lower_bound" in cells else False
        cpu = _row_value(cells, j.strategy, "server_cpu_util")
        workers = _row_value(cells, j.strategy, "workers_cpu_util")
        cpu_total = cpu + (workers if math.isfinite(workers) else 0.0)
        if cpu_unsampled(list(records), j.strategy) is not None:
            cpu_total = math.nan
        p99 = _q(a.lag_p99) if a.lag_p99 is not None and a.lag_p99.known else "withheld"
        rows.append([j.strategy, kept, f"{_q(j.lag_p50)} / {p99}",
                     "–" if math.isnan(share) else f"{share * 100:.0f} %",
                     "none" if a.stall is not None and a.stall.known and a.stall.value == 0 else _q(a.stall),
                     "–" if math.isnan(echo) else (">=" if bound else "") + md.ms(echo),
                     _q(a.jobs_per_s, md.number), "–" if math.isnan(cpu_total) else f"{cpu_total:.2f}",
                     "yes" if j.loop_free else "no", str(a.repeats[1])])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


@dataclass
class _Settings:
    """What every step of one ``advise`` run shares."""

    target: tg.Target
    out: Path
    interval: float | None
    timeout: float | None
    quiet: bool
    failed: list[str] = field(default_factory=list)

    @property
    def keepalive(self) -> str:
        return f"ping_interval {_seconds(self.interval)} / ping_timeout {_seconds(self.timeout)}"


def _judge(s: _Settings, cells: pd.DataFrame, records: list[dict[str, Any]], *, direct: bool,
           stall_ms: float, checked: predict.CheckedRange | None) -> list[ch.Judged]:
    """One :class:`Judged` per strategy: measured keepalive outcome, or the boundary model's forecast.

    The forecast is made either way (it is printed); it decides the
    keepalive outcome only when the windows could not show a timeout.
    """
    releases = s.target.workload.gil.startswith("released")
    advice = _advice(cells)
    judged = []
    for strategy in s.target.strategies:
        a = advice.get(strategy) or rec.Advice(s.target.name, strategy, rec.NO_DATA)
        f = predict.forecast(_ok(records, strategy), ping_interval=s.interval, ping_timeout=s.timeout,
                             checked=checked)
        if direct:
            keep = _measured_keep(a, ch.MEASURED, f)
        else:
            keep = ch.Keep("unknown" if f is None else f.outcome, ch.PREDICTED, None, f)
        judged.append(ch.Judged(strategy, a, keep, stall_ms, releases, _quantity(cells, strategy, "lag_p50_ms")))
    return judged


def _quantity(cells: pd.DataFrame, strategy: str, column: str) -> rec.Quantity:
    """A metric of the strategy's cell: median over repeats, its interval and repeats."""
    n = _row_value(cells, strategy, f"{column}_n")
    return rec.Quantity(_row_value(cells, strategy, column), _row_value(cells, strategy, f"{column}_low"),
                        _row_value(cells, strategy, f"{column}_high"), 0 if math.isnan(n) else int(n))


def _confirm(s: _Settings, judged: list[ch.Judged]) -> tuple[list[ch.Judged], str]:
    """Measure the strategies predicted near the boundary at the user's settings; say what was done."""
    near = [j.strategy for j in judged if j.keep.outcome == "near"]
    if not near:
        return judged, "no prediction was near the boundary: no confirmation needed"
    cycles = tg.CONFIRM_CYCLES
    confirm = tg.confirm_definition(s.target, near)
    if confirm is None:
        keeps = {n: ch.Keep("unknown", ch.PREDICTED, None, j.keep.forecast) for j in judged
                 if (n := j.strategy) in near}
        said = (f"predicted near the boundary: {', '.join(near)}; inconclusive: no window the engine allows "
                f"can observe {_plural(cycles, 'keepalive cycle')} at {s.keepalive} (a verdict of kept needs "
                f"that many), so they stay unconfirmed")
    else:
        where = s.out / "confirm"
        _say(f"predicted near the boundary: {', '.join(near)}; confirming with cells at {s.keepalive}, windows "
             f"sized to observe {_plural(cycles, 'keepalive cycle')}, in {where}")
        s.failed += _run(confirm, where, quiet=s.quiet)
        measured = _advice(_cells(where)[0])
        keeps = {j.strategy: _measured_keep(measured.get(j.strategy), ch.CONFIRMED, j.keep.forecast)
                 for j in judged if j.strategy in near}
        said = (f"confirmed with real cells at your settings, each observing {_plural(cycles, 'keepalive cycle')}: "
                f"{', '.join(near)} (records in {where})")
    return [replace(j, keep=keeps[j.strategy]) if j.strategy in keeps else j for j in judged], said


def _searched() -> str:
    """Where the reference study's searches measured the boundary: ``1-2 calls at once, ping_timeout 0.5-2 s and 20 s``."""
    checked = predict.checked_range(runs=("boundary/*", "defaults/*"))
    if checked is None:
        return ""
    lo, hi = checked.job_connections
    calls = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{calls} calls at once, ping_timeout {checked.timeouts_text()}"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "any time (no keepalive timeout can fail)"
    return "one hour" if seconds == 3600 else f"{seconds:g} s"


def prediction_lines(judged: list[ch.Judged], *, keepalive: str, checked: predict.CheckedRange | None,
                     direct: bool, skill: tuple[predict.Skill, ...] = ()) -> list[str]:
    """The boundary model's predictions over the horizon, each labelled inside or outside its checked range."""
    forecasts = [(j.strategy, j.keep.forecast) for j in judged if j.keep.forecast is not None]
    finite = [(n, f) for n, f in forecasts if math.isfinite(f.horizon_s)]
    if not finite:
        return [f"predictions: none (no keepalive timeout can drop a connection at {keepalive})"]
    horizon = finite[0][1].horizon_s
    used = ("they decide connections kept" if not direct else
            "connections kept above were measured over the windows; these predictions look further ahead")
    out = [f"predictions: P(a connection is lost in {_hours(horizon)} of this load) at {keepalive}, "
           f"from the measured stalls by the boundary model [range over its readings and the repeats]; {used}"]
    width = max(len(n) for n, _ in finite)
    for name, f in finite:
        where = "extrapolated (outside the checked range)" if f.extrapolated else "inside the checked range"
        out.append(f"  {name.ljust(width)}  {f.p:.2f} [{f.low:.2f}, {f.high:.2f}]  {where}")
    if direct:
        # Windows of a few keepalive cycles can keep every connection of a
        # load that would lose some within the hour: say so where it shows.
        for j in judged:
            f = j.keep.forecast
            if j.keep.outcome == "kept" and f is not None and math.isfinite(f.horizon_s) and f.p >= predict.NEAR[0]:
                out.append(f"note: {j.strategy} kept every connection in its windows, but the model predicts "
                           f"P(loss in {_hours(f.horizon_s)}) {f.p:.2f}: over longer runs expect losses")
    out.append(f"horizon: {horizon:,.0f} s ({_hours(horizon)})"
               + (f"; the model walks {finite[0][1].segment_s:g} s ping by ping and compounds the rest as "
                  f"independent stretches (this errs towards loss)" if math.isfinite(finite[0][1].segment_s)
                  else ""))
    if checked is None:
        out.append("checked range: unknown (the reference records the model was checked on were not found): "
                   "every prediction counts as extrapolated")
    else:
        inside = all(not f.extrapolated for _, f in finite)
        out.append(f"checked range: the model was checked against measured cells at {checked.text()}; "
                   + ("these settings are inside it" if inside else
                      "these settings are outside it, so its predictions are extrapolated"))
    if skill:
        groups = skill[0].groups
        out.append(f"out of sample (leaving each of {groups} reference runs out in turn): "
                   + "; ".join(k.text() for k in skill))
    else:
        out.append("out of sample: not scored (the reference records could not be scored)")
    return out


def advise(args: argparse.Namespace) -> int:
    """Measure a workload under every strategy that applies and recommend one.

    Prints the advice on stdout (and keeps it as ``advice.json`` and
    ``advice.md`` in the run directory); progress goes to stderr.

    Returns:
        0; 1 when a cell failed (the verdict is printed all the same, with
        the failed repeats counted).
    """
    from wsblock.engine.config import CellConfig

    started = time.monotonic()
    budget = getattr(args, "call_budget_ms", None)
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise UsageError(f"--call-budget-ms must be a positive number of ms, got {budget:g}")
    target = tg.resolve(args.target, work_ms=args.work_ms, params=args.param, ping_interval=args.ping_interval,
                        ping_timeout=args.ping_timeout, job_connections=args.job_connections,
                        repeats=args.repeats, only=args.strategy or None)
    out = Path(args.out) if args.out else tg.default_out(target.name)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out is not a directory: {out}")
    s = _Settings(target, out, args.ping_interval, args.ping_timeout, args.quiet)
    for note in target.notes:
        _say(f"note: {note}")
    tg.check(target, _say)
    timed = tg.time_calls(target, _say)
    user_workloads.end_leftovers()
    before = behaviour.from_calls(timed) if timed else None
    if before is not None:
        # Windows are sized on the longest call: rare long calls must fit them.
        target.job_ms = max(target.job_ms, before.max)
        _say(f"{target.name}: p50 {before.p50:,.0f} ms, max {before.max:,.0f} ms over {before.n} calls; "
             f"windows sized on the longest call")
    direct = tg.direct(target)
    sized, _ = tg.sized_window_s(target)
    horizon = predict.horizon_s(s.interval, s.timeout)
    if direct:
        mode = f"windows sized to observe a keepalive timeout at {s.keepalive}: connections kept are measured"
        definition = target.definition
    else:
        window = tg.stall_window_s(target)
        mode = (f"{window:g} s windows to measure the loop's stall pattern ({tg.STALL_JOBS} jobs per connection); "
                f"observing a timeout at {s.keepalive} needs about {sized:,.0f} s per cell, so connections kept are "
                f"predicted from the measured stalls by the boundary model over {_hours(horizon)} of "
                f"this load")
        definition = {**target.definition, "duration": window}
    concurrency = args.job_connections
    job = "one call per job" if "work_ms" not in target.definition else f"{target.job_ms:g} ms jobs"
    load = f"{job}, {_plural(concurrency, 'call')} at once (--concurrency {concurrency})"
    _say(f"advise {target.name} ({load}): {', '.join(target.strategies)}, "
         f"{_plural(args.repeats, 'repeat')} each; {mode}")
    s.failed += _run(definition, out, quiet=args.quiet)
    cells, records = _cells(out)
    stall_ms = CellConfig("", 1, "").stall_ms
    checked = predict.checked_range()
    judged = _judge(s, cells, records, direct=direct, stall_ms=stall_ms, checked=checked)
    judged, confirmed = (judged, "") if direct else _confirm(s, judged)
    choice = ch.choose(judged)
    measured_calls = behaviour.from_records(records)
    # At least CALLS timed calls, else every job the cells measured (the other source's longest still shows).
    calls = before if before is not None and before.n >= behaviour.CALLS else (measured_calls or before)
    other = measured_calls if calls is before else before
    hold = behaviour.gil_hold(records, stall_ms)
    reached = choice.strategy or choice.closest
    reach = (None if reached is None else
             conc.reach(reached, records, measured=concurrency, ping_timeout=s.timeout, stall_ms=stall_ms))

    lines = [f"advise {target.name}: {load}, {s.keepalive}, {_plural(args.repeats, 'repeat')} per strategy", ""]
    lines += behaviour.lines(calls, hold, ping_timeout=s.timeout, budget_ms=budget, params=args.param,
                             other=other,
                             releases_gil=target.workload.gil.startswith("released"))
    lines.append("")
    lines += table(judged, cells, records)
    unsampled = {j.strategy: span for j in judged if (span := cpu_unsampled(records, j.strategy)) is not None}
    if unsampled:
        lines.append("CPU not shown for " + ", ".join(f"{k} (its sampler covered {v:.3g} s of the window)"
                                                      for k, v in unsampled.items())
                     + ": the server's CPU sampler was held up by the work when the window opened")
    lines.append("")
    if direct:
        lines.append(f"connections kept: measured in windows sized to observe a timeout at {s.keepalive}")
    else:
        lines.append(f"connections kept: predicted from the measured stalls by the boundary model, "
                     f"P(a connection is lost in {_hours(horizon)} of this load); a prediction between "
                     f"{predict.NEAR[0]:.0%} and {predict.NEAR[1]:.0%} is confirmed by real cells")
        lines.append(confirmed)
    lines.append(f"loop free: no stall over {stall_ms:g} ms in every repeat, loop-lag p99 under {stall_ms:g} ms "
                 f"and p50 under {ch.BUSY_LAG_MS:g} ms (the loop waits for the work rather than running it), "
                 f"each at the upper end of its interval over the repeats; connection intervals are Wilson 95 %")
    skill = predict.skill() if any(j.keep.forecast is not None and math.isfinite(j.keep.forecast.horizon_s)
                                   for j in judged) else ()
    lines += [""] + prediction_lines(judged, keepalive=s.keepalive, checked=checked, direct=direct, skill=skill)
    margin = conc.margin_line(records, target.strategies, ping_timeout=s.timeout, stall_ms=stall_ms)
    lines += [margin] if margin else []
    lines += [""] + recommendation_lines(choice) + conc.lines(reach, concurrency, recommended=choice.strategy is not None,
                                                            searched=_searched()) + [""]
    lines.append(f"records: {out / 'cells'}")
    lines.append(f"report: {out / 'report' / 'report.md'}")
    printed = "\n".join(lines) + "\n"

    return finish(out, _advice_record(
        s, args, target, direct=direct, stall_ms=stall_ms, checked=checked, judged=judged, choice=choice,
        calls=calls, measured_calls=measured_calls, timed=timed, hold=hold, reach=reach, budget=budget,
        skill=skill, printed=printed), printed, started=started, failed=s.failed)


def finish(out: Path, record: dict[str, Any], printed: str, *, started: float, failed: list[str]) -> int:
    """Keep the advice and the report in ``out``, print the answer; 1 when a cell failed, else 0."""
    from wsblock.report.document import build_report

    saved.write(out, record)
    build_report(out, out / "report")
    print(printed, end="")
    _say(f"took {time.monotonic() - started:,.0f} s; advice kept in {out / saved.ADVICE_JSON}")
    if failed:
        print(f"error: {len(failed)} cell{'s' if len(failed) != 1 else ''} failed; "
              f"{_first_cause(out, failed)}", file=sys.stderr)
        return 1
    return 0


def _first_cause(out: Path, failed: list[str]) -> str:
    # The first failed cell and its record's error (the work may have
    # exited or hung), so that the one error line says why.
    for cell_id in failed:
        try:
            error = rundir.read_record(rundir.record_path(out, cell_id)).get("error")
        except ValueError:
            continue
        if isinstance(error, str) and error:
            return f"{cell_id}: {error.splitlines()[0]}"
    return f"the first: {failed[0]}"


def _rule_modules() -> list[Any]:
    """The modules that hold the rule's thresholds (the optional ones where present)."""
    import importlib

    modules: list[Any] = [ch, rec]
    try:
        modules.append(importlib.import_module("wsblock.analysis.rules"))
    except ImportError:
        pass
    return modules


def _advice_record(s: _Settings, args: argparse.Namespace, target: tg.Target, *, direct: bool, stall_ms: float,
                   checked: predict.CheckedRange | None, judged: list[ch.Judged], choice: ch.Choice,
                   calls: behaviour.CallTimes | None, measured_calls: behaviour.CallTimes | None,
                   timed: list[float], hold: behaviour.GilHold, reach: conc.Reach | None, budget: float | None,
                   skill: tuple[predict.Skill, ...], printed: str) -> dict[str, Any]:
    """Everything ``advice.json`` keeps: the rule, its thresholds, the inputs, the evidence, the answer."""
    from wsblock.engine.config import CellConfig

    d = CellConfig("", 1, "")
    judged_props = ("eligible", "loop_free", "responsive", "idle", "strong", "weak")
    summary = list(choice.reasons[:1])
    releases = target.workload.gil.startswith("released")
    summary += [line for line in behaviour.lines(calls, hold, ping_timeout=s.timeout, budget_ms=budget,
                                                 params=args.param, releases_gil=releases)
                if not line.startswith(("input:", "  "))][:3]
    return {
        "target": target.name,
        "summary": summary,
        "rule": {"text": (ch.__doc__ or "").strip(),
                 "thresholds": {**saved.thresholds(*_rule_modules(), predict, behaviour, conc),
                                "stall_ms": stall_ms, "confirm_cycles": tg.CONFIRM_CYCLES}},
        "inputs": {"target": target.name, "ping_interval": s.interval, "ping_timeout": s.timeout,
                   "concurrency": args.job_connections, "repeats": args.repeats, "params": dict(args.param),
                   "work_ms": args.work_ms, "strategies": target.strategies, "call_budget_ms": budget,
                   "out": str(s.out), "job_ms_sized": target.job_ms, "mode": "direct" if direct else "stall pattern",
                   "defaults": {"ping_interval": d.ping_interval, "ping_timeout": d.ping_timeout,
                                "concurrency": tg.DEFAULT_JOB_CONNECTIONS, "repeats": tg.DEFAULT_REPEATS}},
        "function": {"calls": calls, "calls_timed_ms": timed, "jobs_measured": measured_calls,
                     "uneven": None if calls is None else calls.uneven, "gil_hold": hold},
        "strategies": [{"strategy": j.strategy, "judged": j, **saved.properties(j, judged_props)} for j in judged],
        "predictions": {"horizon_s": predict.horizon_s(s.interval, s.timeout), "checked_range": checked,
                        "out_of_sample": skill,
                        "by_strategy": {j.strategy: j.keep.forecast for j in judged}},
        "concurrency": {"measured": args.job_connections, "reach": reach,
                        "reach_of": "recommendation" if choice.strategy else "closest"},
        "recommendation": choice,
        "printed": printed,
    }


def recommendation_lines(choice: ch.Choice) -> list[str]:
    """The recommendation and its reasons, as printed."""
    import textwrap

    head = (f"recommendation: {choice.strategy}" if choice.strategy is not None
            else f"recommendation: none (closest: {choice.closest})")
    return [head] + [textwrap.fill(reason, 100, initial_indent="  - ", subsequent_indent="    ",
                                   break_on_hyphens=False, break_long_words=False) for reason in choice.reasons]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g} s"


__all__ = ["advise", "prediction_lines", "recommendation_lines", "reprint", "table"]


def reprint(directory: Path) -> str | None:
    """What the advise run that wrote ``directory`` printed (from ``advice.json``), or ``None`` without one."""
    advice = saved.read(directory)
    return None if advice is None else advice["printed"]
