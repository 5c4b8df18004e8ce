"""The run of ``wsblock advise TARGET --fast``: profile, predict, pick by the rule, confirm two strategies with real cells.

The steps (:mod:`wsblock.advise.fast` holds the logic, this module the run):

1. the target is checked as ``advise`` checks it, then profiled in this
   process (:mod:`wsblock.advise.profile`) and each strategy's stalls and
   keepalive outcome predicted (:mod:`wsblock.advise.stallpred`);
2. the recommendation rule (:func:`wsblock.advise.choose.choose`) picks the
   predicted recommendation;
3. real cells confirm it (windows sized as the full ``advise`` sizes them)
   and the strategy just cheaper (a short window), one repeat each by
   default; the rule is applied again with their measurements in place of
   the prediction, and, where they contradict it, one more round confirms
   what the rule picks then;
4. the answer is printed and kept (``advice.json``, ``advice.md``, the
   report), marked as coming from ``--fast``, with where the prediction and
   the cells disagree.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from wsblock.advise import behaviour, predict, saved
from wsblock.advise import choose as ch
from wsblock.advise import advice as full
from wsblock.advise import fast
from wsblock.advise import profile as pf
from wsblock.advise import profile_report as pc
from wsblock.advise import stallpred as sp
from wsblock.advise import target as tg
from wsblock.engine import user_workloads
from wsblock.errors import UsageError

MODE = "fast"
"""``inputs.mode`` of an ``advice.json`` written by ``--fast``."""


def _say(message: str) -> None:
    print(f"wsblock: {message}", file=sys.stderr, flush=True)


@dataclass
class Confirmation:
    """The cells run so far and what they measured.

    Attributes:
        measured: Each confirmed strategy's evidence (its "fewer than 3 repeats" excused).
        sized: Strategies confirmed in windows sized to observe a keepalive timeout.
        cells: Cells run (repeats counted).
        frames: Aggregated cells of every confirming run.
        records: Records of every confirming run.
        directories: Where each confirming run's records are.
        rounds: What each round confirmed, in words.
        repeats: Repeats run in each confirming run's directory.
        replaced: Evidence a later round replaced (a rejection's short cell confirmed again).
    """

    measured: dict[str, ch.Judged] = field(default_factory=dict)
    sized: set[str] = field(default_factory=set)
    cells: int = 0
    frames: list[pd.DataFrame] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    repeats: dict[str, int] = field(default_factory=dict)
    replaced: list[dict[str, Any]] = field(default_factory=list)


def reject_window_s(target: tg.Target, call_ms: float, lag_ms: float = math.nan) -> float:
    """The window that confirms a rejection: long enough to read the loop's figures, and no longer.

    :data:`~wsblock.advise.fast.REJECT_JOBS` typical calls per job
    connection, at least :data:`~wsblock.advise.fast.REJECT_MIN_S`, and
    long enough for the probe's percentiles: a loop busy with steps wakes
    the probe once per step, and under
    :data:`wsblock.engine.probe.FEW_PROBE_SAMPLES` samples the stall
    figures lead, which read a loop busy with short steps as free.

    Args:
        target: The target.
        call_ms: A typical call (the profile's median).
        lag_ms: The rejected strategy's predicted loop-lag p50 (NaN: none predicted).
    """
    import psutil

    from wsblock.engine import sizing
    from wsblock.engine.probe import FEW_PROBE_SAMPLES

    periods = [sizing.job_period_s(strategy=s, job_s=call_ms / 1000.0,
                                   job_connections=int(target.definition["job_connections"]), workers=1,
                                   cpus=psutil.cpu_count() or 1,
                                   releases_gil=target.workload.gil.startswith("released"))
               for s in target.strategies]
    # A wake-up waits up to a whole step: twice the median lateness, with a margin.
    wake_ms = 2.0 * lag_ms if math.isfinite(lag_ms) and lag_ms > 0 else 1.0
    samples_s = fast.PROBE_MARGIN * FEW_PROBE_SAMPLES * wake_ms / 1000.0
    return float(max(fast.REJECT_MIN_S, math.ceil(fast.REJECT_JOBS * max(periods)), math.ceil(samples_s)))


def _measure(s: full._Settings, c: Confirmation, strategies: list[str], where: Path, *, repeats: int,
             direct: bool, sized: bool, stall_ms: float, checked: predict.CheckedRange | None,
             short_s: float = fast.REJECT_MIN_S) -> None:
    """Run ``strategies`` in one matrix into ``where``; put their measured evidence into ``c``.

    In sized windows, a strategy whose loop failed only by stalling in
    every repeat gets one more repeat at a time, up to the full matrix's
    :data:`~wsblock.advise.target.DEFAULT_REPEATS` (:func:`~wsblock.advise.fast.another_repeat_decides`).
    """
    definition: dict[str, Any] = {**s.target.definition, "strategies": strategies,
                                  "description": f"wsblock advise --fast {s.target.name}"}
    if not sized:
        definition.update(duration=short_s, warmup=fast.REJECT_WARMUP_S)
    elif not direct:
        definition["duration"] = tg.stall_window_s(s.target)
    n = repeats
    while True:
        failed = full._run({**definition, "repeats": n}, where, quiet=s.quiet)
        cells, records = full._cells(where)
        judged = [fast.excused(j) for j in full._judge(s, cells, records, direct=direct, stall_ms=stall_ms,
                                                       checked=checked) if j.strategy in strategies]
        again = [j.strategy for j in judged if fast.another_repeat_decides(j)]
        if not (sized and again and n < tg.DEFAULT_REPEATS):
            break
        n += 1
        _say(f"{', '.join(again)}: the loop stalled in every repeat so far and was free otherwise; one more "
             f"repeat can tell the machine from the strategy (repeat {n} of at most {tg.DEFAULT_REPEATS})")
    s.failed += failed
    for j in judged:
        if j.strategy in c.measured:
            c.replaced.append({"strategy": j.strategy, "window": "short", "judged": c.measured[j.strategy]})
        c.measured[j.strategy] = j
        if sized:
            c.sized.add(j.strategy)
    c.cells += n * len(strategies)
    c.frames.append(cells)
    c.records += records
    c.directories.append(where)
    c.repeats[str(where)] = n


def _measured_keep(m: ch.Judged, sized: bool) -> str:
    if not sized:
        return "not observed"
    return m.keep.outcome + (" (model, from its stalls)" if m.keep.basis == ch.PREDICTED else "")


def _comparison(predicted: list[ch.Judged], c: Confirmation) -> list[str]:
    """One line per confirmed strategy: predicted against measured."""
    header = ["strategy", "window", "cells", "longest stall: predicted / measured",
              "stalled: predicted / measured", "loop free: predicted / measured",
              "connections: predicted / measured"]
    rows = []
    by_name = {j.strategy: j for j in predicted}
    for name in sorted(c.measured, key=ch.cost_key):
        p, m = by_name[name], c.measured[name]

        def stall(j: ch.Judged) -> str:
            q = j.advice.stall
            return "–" if q is None or not q.known else ("none" if q.value <= j.stall_ms else f"{q.value:,.0f} ms")

        def share(j: ch.Judged) -> str:
            q = j.advice.stalled_share
            return "–" if q is None or not q.known else f"{q.value * 100:.0f} %"

        def free(j: ch.Judged) -> str:
            return {True: "yes", False: "no"}.get(j.check.free, "unknown")

        sized = name in c.sized
        rows.append([name, "sized" if sized else "short", str(m.advice.repeats[1]),
                     f"{stall(p)} / {stall(m)}", f"{share(p)} / {share(m)}", f"{free(p)} / {free(m)}",
                     f"{p.keep.outcome} / {_measured_keep(m, sized)}"])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in [header] + rows]


def labelled(choice: ch.Choice, c: Confirmation) -> ch.Choice:
    """The rule's reasons, those about a strategy no cell confirmed marked as predicted."""
    def mark(reason: str) -> str:
        name = reason.split(" ", 1)[0].rstrip(":").removesuffix("'s")
        if name in ch.COST_ORDER and name not in c.measured:
            return f"(predicted, not confirmed) {reason}"
        return reason

    return replace(choice, reasons=[mark(r) for r in choice.reasons])


def _final(choice: ch.Choice, c: Confirmation, target: str) -> ch.Choice:
    """The answer: the rule's pick where the cells confirmed it; otherwise none, and the full advise to run."""
    if choice.strategy is None or choice.strategy in c.sized:
        return choice
    return ch.Choice(None, closest=choice.strategy,
                     reasons=[f"--fast could not confirm {choice.strategy} with real cells in its rounds: "
                              f"run the full 'wsblock advise {target}' (every strategy, 3 repeats each)"]
                     + choice.reasons)


def advise(args: argparse.Namespace) -> int:
    """Predict each strategy from a profile, pick by the rule, confirm with the fewest real cells; print the answer.

    Returns:
        0; 1 when a confirming cell failed (the answer is printed all the same).
    """
    from wsblock.engine.blas import pin_blas_threads
    from wsblock.engine.config import CellConfig

    started = time.monotonic()
    budget = getattr(args, "call_budget_ms", None)
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise UsageError(f"--call-budget-ms must be a positive number of ms, got {budget:g}")
    repeats = args.repeats if args.repeats is not None else fast.FAST_REPEATS
    target = tg.resolve(args.target, work_ms=args.work_ms, params=args.param, ping_interval=args.ping_interval,
                        ping_timeout=args.ping_timeout, job_connections=args.job_connections,
                        repeats=repeats, only=args.strategy or None)
    out = Path(args.out) if args.out else tg.default_out(target.name)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out is not a directory: {out}")
    s = full._Settings(target, out, args.ping_interval, args.ping_timeout, args.quiet)
    for note in target.notes:
        _say(f"note: {note}")
    pin_blas_threads(1)  # as the server and its workers do
    tg.check(target, _say)
    cell, job = pc.job_of(target, _say)
    profile = pf.measure(target.name, job, threshold_ms=cell.stall_ms, out_of_process="process" in target.strategies,
                         progress=_say)
    user_workloads.end_leftovers()
    workload = target.workload
    if "work_ms" not in target.definition:
        # Windows are sized on the longest call, as the full advise sizes them.
        target.job_ms = max(target.job_ms, profile.calls.max)
    stall_ms = CellConfig("", 1, "").stall_ms
    concurrency = args.job_connections
    checked = predict.checked_range()
    predicted = sp.predict_all(pc.call_figures(profile), target.strategies, concurrency=concurrency,
                               threshold_ms=stall_ms, ping_interval=s.interval, ping_timeout=s.timeout,
                               checked=checked)
    releases = workload.gil.startswith("released")
    shape = fast.Shape(profile.hold_share, profile.step_p99_ms, profile.switch_interval_s * 1000.0, releases)
    guessed = fast.predicted_judged(predicted, shape, name=target.name, concurrency=concurrency,
                                    stall_ms=stall_ms, ping_timeout=s.timeout)
    first = ch.choose(guessed)
    picked, below = first.strategy or first.closest, fast.rejected(first, target.strategies)
    direct = tg.direct(target)
    lag = next((j.lag_p50.value for j in guessed if j.strategy == below and j.lag_p50 is not None), math.nan)
    short = reject_window_s(target, profile.calls.p50, lag)
    _say(f"predicted: {first.strategy or f'none (closest {first.closest})'}; confirming "
         f"{picked} in sized windows" + (f" and {below} in a {short:g} s window" if below else ""))

    c = Confirmation()
    if picked is not None:
        _measure(s, c, [picked], out, repeats=repeats, direct=direct, sized=True, stall_ms=stall_ms, checked=checked)
        done = c.repeats[str(out)]
        c.rounds.append(f"round 1: {picked} (the predicted {'recommendation' if first.strategy else 'closest'}), "
                        f"{done} repeat{'s' if done != 1 else ''} in windows sized as the full advise sizes "
                        f"them, records in {out / 'cells'}")
    if below is not None:
        where = out / "rejected"
        _measure(s, c, [below], where, repeats=1, direct=direct, sized=False, stall_ms=stall_ms, checked=checked,
                 short_s=short)
        c.rounds.append(f"round 1: {below} (the strategy just cheaper, rejected by the prediction), 1 repeat in a "
                        f"{short:g} s window (enough to show a stalled loop; its keepalive is not "
                        f"observed), records in {where / 'cells'}")
    choice = ch.choose(fast.mix(guessed, c.measured))
    said: list[str] = []
    contradicted = ""
    if first.strategy is not None and first.strategy in c.measured:
        contradicted = fast.contradiction(guessed[[j.strategy for j in guessed].index(first.strategy)],
                                          c.measured[first.strategy])
    reopened = [n for n, j in c.measured.items() if n not in c.sized and fast.keeps_loop_free_unconfirmed(j)]
    pending = list(dict.fromkeys(([choice.strategy] if choice.strategy and choice.strategy not in c.sized else [])
                                 + reopened))
    if contradicted:
        said.append(f"the confirmation contradicts the prediction: {contradicted}")
    for name in reopened:
        said.append(f"the short cell of {name} saw too few probe wake-ups to show its loop busy or free (the stall "
                    f"figures, which cannot show a loop busy with short steps, read it free): it is confirmed in a "
                    f"sized window" if fast.thin_probe(c.measured[name]) else
                    f"the confirmation contradicts the rejection of {name}: its short cell kept the loop free")
    if pending:
        where = out / "round-2"
        said.append(f"falling back: confirming {', '.join(pending)} with real cells in sized windows "
                    f"(records in {where / 'cells'})")
        _say(said[-1])
        _measure(s, c, pending, where, repeats=repeats, direct=direct, sized=True, stall_ms=stall_ms,
                 checked=checked)
        done = c.repeats[str(where)]
        c.rounds.append(f"round 2: {', '.join(pending)}, {done} repeat{'s' if done != 1 else ''} in sized "
                        f"windows, records in {where / 'cells'}")
        choice = ch.choose(fast.mix(guessed, c.measured))
    elif contradicted:
        said.append(f"nothing to fall back on (no other strategy is predicted to keep connections and the loop "
                    f"free): run the full 'wsblock advise {target.name}' for a measured answer")
    answer = _final(labelled(choice, c), c, target.name)
    by_name = {j.strategy: j for j in guessed}
    diffs = [d for name, m in c.measured.items()
             for d in fast.differences(by_name[name], m, stall_ms=stall_ms, sized=name in c.sized)]

    keepalive = s.keepalive
    load = (f"{'one call per job' if 'work_ms' not in target.definition else f'{target.job_ms:g} ms jobs'}, "
            f"{concurrency} call{'s' if concurrency != 1 else ''} at once (--concurrency {concurrency})")
    mark = f"--fast: a prediction from a profile + {c.cells} confirmed cell{'s' if c.cells != 1 else ''}"
    lines = [f"advise {target.name} ({mark}, not the full matrix): {load}, {keepalive}", ""]
    lines += pc.behaviour_lines(profile)
    if budget is not None:
        longest = profile.calls.max
        lines.append(f"call-time budget {budget:,.0f} ms: " + (
            f"exceeded by the longest call ({longest:,.0f} ms)" if longest > budget else
            f"met; the advice covers calls up to the longest timed ({longest:,.0f} ms) only"))
    lines.append("")
    lines += pc.prediction_lines(predicted, concurrency=concurrency, keepalive=keepalive, checked=checked)[:-1]
    lines.append("")
    lines.append(f"predicted recommendation (the advise rule on the prediction): "
                 f"{first.strategy or f'none (closest: {first.closest})'}")
    lines.append("")
    lines.append(f"confirmed with real cells at {keepalive}:")
    lines += [f"  {r}" for r in c.rounds]
    if c.measured:
        frame = pd.concat(c.frames, ignore_index=True) if c.frames else pd.DataFrame()
        if "strategy" in frame:
            frame = frame.drop_duplicates("strategy", keep="last")  # a rejection confirmed again: its sized cell
        mixed = [c.measured[n] for n in sorted(c.measured, key=ch.cost_key)]
        lines += ["  " + line for line in full.table(mixed, frame, c.records)]
        lines.append("prediction against confirmation:")
        lines += ["  " + line for line in _comparison(guessed, c)]
    lines.append("disagreements: " + ("none on what was compared (the loop, connections, stalls over the stall "
                                      "threshold, eligibility)" if not diffs else f"{len(diffs)}"))
    lines += [f"  - {d.text()}" for d in diffs]
    lines += said
    lines.append(f"not confirmed (the prediction stands for them): "
                 f"{', '.join(n for n in target.strategies if n not in c.measured) or 'none'}; a strategy's "
                 f"fewer than {ch.rec.MIN_REPEATS} repeats are excused under --fast")
    lines.append("")
    head = full.recommendation_lines(answer)
    head[0] += f" ({mark})"
    lines += head
    lines.append("")
    lines.append(f"for the full matrix (every strategy, {tg.DEFAULT_REPEATS} repeats each): wsblock advise "
                 f"{target.name} without --fast")
    lines.append(f"records: {out / 'cells'}")
    lines.append(f"report: {out / 'report' / 'report.md'}")
    printed = "\n".join(lines) + "\n"

    record = _advice_record(s, args, target, repeats=repeats, direct=direct, stall_ms=stall_ms, checked=checked,
                            profile=profile, predicted=predicted, guessed=guessed, first=first, c=c, answer=answer,
                            diffs=diffs, said=said, contradicted=contradicted, budget=budget,
                            took_s=time.monotonic() - started, printed=printed)
    return full.finish(out, record, printed, started=started, failed=s.failed)


def _advice_record(s: full._Settings, args: argparse.Namespace, target: tg.Target, *, repeats: int, direct: bool,
                   stall_ms: float, checked: predict.CheckedRange | None, profile: pf.Profile,
                   predicted: list[sp.Predicted], guessed: list[ch.Judged], first: ch.Choice, c: Confirmation,
                   answer: ch.Choice, diffs: list[fast.Difference], said: list[str], contradicted: str,
                   budget: float | None, took_s: float, printed: str) -> dict[str, Any]:
    """``advice.json`` of a ``--fast`` run: the rule, the inputs, the profile, prediction and confirmation."""
    props = ("eligible", "loop_free", "responsive", "idle", "strong", "weak")
    summary = [f"--fast: predicted from a profile, then {c.cells} real cell{'s' if c.cells != 1 else ''} "
               f"confirmed {', '.join(sorted(c.measured, key=ch.cost_key)) or 'nothing'} (not the full matrix)"]
    summary += answer.reasons[:1] + ([f"the confirmation contradicted the prediction: {contradicted}"]
                                     if contradicted else [])
    return {
        "target": target.name,
        "summary": summary,
        "rule": {"text": (ch.__doc__ or "").strip(),
                 "thresholds": {**saved.thresholds(*full._rule_modules(), predict, behaviour, fast),
                                "stall_ms": stall_ms}},
        "inputs": {"target": target.name, "ping_interval": s.interval, "ping_timeout": s.timeout,
                   "concurrency": args.job_connections, "repeats": repeats, "params": dict(args.param),
                   "work_ms": args.work_ms, "strategies": target.strategies, "call_budget_ms": budget,
                   "out": str(s.out), "job_ms_sized": target.job_ms, "mode": MODE,
                   "windows": "direct" if direct else "stall pattern"},
        "function": {"profile": profile, "hold_ms": profile.hold_ms, "hold_share": profile.hold_share},
        "fast": {"confirmed_cells": c.cells, "confirmed": sorted(c.measured, key=ch.cost_key),
                 "sized": sorted(c.sized, key=ch.cost_key), "rounds": c.rounds,
                 "directories": [str(d) for d in c.directories],
                 "predicted_recommendation": first, "contradicted": contradicted, "fallback": said,
                 "disagreements": [d.__dict__ | {"text": d.text()} for d in diffs], "took_s": took_s,
                 "replaced": c.replaced},
        "strategies": [{"strategy": j.strategy, "basis": "confirmed" if j.strategy in c.measured else "predicted",
                        "predicted": {"judged": j, **saved.properties(j, props)},
                        **({"measured": {"judged": c.measured[j.strategy],
                                         **saved.properties(c.measured[j.strategy], props)}}
                           if j.strategy in c.measured else {})}
                       for j in guessed],
        "predictions": {"horizon_s": predict.horizon_s(s.interval, s.timeout), "checked_range": checked,
                        "by_strategy": {p.stalls.strategy: {"stalls": p.stalls, "forecast": p.forecast}
                                        for p in predicted}},
        "recommendation": answer,
        "printed": printed,
    }


__all__ = ["Confirmation", "MODE", "advise", "labelled", "reject_window_s"]
