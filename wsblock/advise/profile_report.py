"""What ``wsblock profile TARGET`` measures and prints: a call profiled in seconds, each strategy's stalls predicted.

The job a profile times (:func:`job_of`), the profile and the predictions in
plain words, and the JSON record (kind :data:`KIND`) that ``--out`` writes;
:mod:`wsblock.commands.profile` is the command. ``wsblock advise --fast``
prints the same lines (:mod:`wsblock.advise.fast_advice`).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, Callable

from wsblock.advise import profile as pf
from wsblock.advise import stallpred as sp

KIND = "wsblock.profile"
SCHEMA_VERSION = 1

FREE_SHOWN_MS = 1.0
"""Freeing a result is mentioned when it takes at least this long."""


def job_of(target: Any, progress: Callable[[str], None]) -> tuple[Any, Any]:
    """The target's first cell and one call's job: sized by the calibration, or one call of a plain function."""
    import workloads
    from wsblock import paths
    from wsblock.engine.runner import size_work
    from wsblock.matrix import spec as matrix_spec

    cell = matrix_spec.expand(target.definition, source=f"profile {target.name}").cells[0].cell
    workload = target.workload
    params = workload.resolve_params(dict(cell.workload_params))
    data_dir = str(paths.data_dir())
    if isinstance(workload, workloads.FunctionWorkload) and not workload.calibrated:
        return cell, workloads.Job(cell.workload, 1, chunk_units=1, params=params, data_dir=data_dir)
    work = size_work(cell, progress)
    workload.prepare(work["units"], params, data_dir)
    return cell, workloads.Job(cell.workload, work["units"], chunk_units=work["chunk_units"], params=params,
                               data_dir=data_dir)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.2g} ms"


def _bytes(n: int) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def behaviour_lines(p: pf.Profile) -> list[str]:
    """The profile in plain words."""
    c = p.calls
    p95 = "" if c.p95 is None else f", p95 {_ms(c.p95)}"
    few = "" if c.n >= pf.CALLS else f"; fewer than {pf.CALLS}: each call is long"
    out = [f"one call takes p50 {_ms(c.p50)}{p95}, max {_ms(c.max)} ({c.n} calls timed{few}; the first call "
           f"took {_ms(p.first_call_ms)})"]
    if p.steps > 1:
        out.append(f"  it yields between steps: {p.steps} steps per call, p99 {_ms(p.step_p99_ms)}, the longest "
                   f"{_ms(p.step_max_ms)}")
    hold, share, loop = p.hold_ms, p.hold_share, p.loop_stall_ms
    held = hold > p.threshold_ms
    out.append(f"it holds the GIL for up to {_ms(hold)} at once ({share * 100:.0f} % of the call)"
               + (": a thread pool cannot keep the loop free" if held else ""))
    out.append(f"  ({len(p.holds)} calls run in a thread, p50 {_ms(p.probed_call_p50_ms)}, max "
               f"{_ms(p.probed_max_ms)}, beside a probe thread that wants the GIL every "
               f"{pf.holdprobe.PERIOD_S * 1000:g} ms; the hold seen in at least two calls, the single longest "
               f"{_ms(p.hold_max_ms)})")
    if p.loop_stalls:  # only for a call whose holds are short (profile.loop_probe_needed)
        if loop > p.threshold_ms:
            why = ("it waits for the GIL after each of its system calls and the waits add up (the convoy "
                   "effect): a thread pool cannot keep the loop free")
        else:
            why = f"a thread pool can keep the loop free of stalls over {p.threshold_ms:g} ms" + (
                ", though the loop waits for the GIL behind it" if share >= 0.5 else "")
        out.append(f"an event loop beside the call in a thread stalls for up to {_ms(loop)} at once: {why}")
        out.append(f"  ({len(p.loop_stalls)} calls run in a thread pool beside an event loop with a "
                   f"{pf.loopprobe.PERIOD_S * 1000:g} ms timer and an echo over a socket pair every "
                   f"{pf.loopprobe.ECHO_EVERY_S * 1000:g} ms, as a server's loop polls, sends and receives; the "
                   f"stall seen in at least two calls, the single longest {_ms(p.loop_stall_max_ms)})")
    elif p.loop_skipped:
        out.append(f"an event loop beside the call in a thread: not measured ({p.loop_skipped})")
    out.append(f"switch interval: {p.switch_interval_s * 1000:g} ms (sys.setswitchinterval): a call that holds the "
               f"GIL in Python code hands it over this often when another thread asks")
    t = p.transfer
    if t is None:
        out.append("process: not measured (no process pool can run it)")
    else:
        out.append(f"under process: the job pickles to {_bytes(t.job_bytes)} in {_ms(t.job_pickle_ms)}; the result "
                   f"({t.result_type}) to {_bytes(t.result_bytes)} in {_ms(t.result_pickle_ms)} (in the worker), "
                   f"and unpickling it in the server takes p50 {_ms(t.unpickle_p50_ms)}, max "
                   f"{_ms(t.unpickle_max_ms)}, holding the GIL ({t.results} results)")
    if p.free_max_ms >= FREE_SHOWN_MS:
        out.append(f"dropping a result takes up to {_ms(p.free_max_ms)}: the handler does it on the loop")
    out += [f"note: {n}" for n in p.notes]
    return out


def call_figures(p: pf.Profile) -> sp.Call:
    """The profile's figures the stall prediction rests on."""
    t = p.transfer
    return sp.Call(p.calls.p50, p.calls.max, p.step_p99_ms, p.hold_ms, p.over_share, p.over_per_call,
                   None if t is None else t.unpickle_p50_ms, None if t is None else t.unpickle_max_ms,
                   0.0 if t is None else t.job_pickle_ms, 0.0 if t is None else t.result_pickle_ms,
                   p.free_max_ms, p.loop_stall_ms if p.loop_stalls else None, p.loop_over_share,
                   p.loop_over_per_call)


def prediction_lines(predicted: list[sp.Predicted], *, concurrency: int, keepalive: str,
                     checked: Any) -> list[str]:
    """The predicted stall table and what it rests on."""
    from wsblock.advise import predict

    calls = f"{concurrency} call{'' if concurrency == 1 else 's'} at once"
    out = [f"predicted per strategy ({calls}, {keepalive}, stall threshold {predicted[0].stalls.threshold_ms:g} ms):"]
    out += ["  " + line for line in sp.table(predicted)]
    out.append(f"P(loss): the boundary model's probability that a connection is lost in one hour "
               f"({predict.HORIZON_S:,.0f} s) of this load [range over its readings]")
    if checked is None:
        out.append("checked range: unknown (the reference records were not found): every prediction is extrapolated")
    else:
        out.append(f"checked range: the model was checked against cells at {checked.text()}")
    out.append("the profile predicts; 'wsblock advise' measures")
    return out


def record(args: argparse.Namespace, target: Any, cell: Any, profile: pf.Profile, predicted: list[sp.Predicted],
            checked: Any, *, started: datetime, interval: float | None, timeout: float | None, concurrency: int,
            printed: str) -> dict[str, Any]:
    """The JSON record: inputs, the profile, the predictions, the environment, the printed text."""
    from wsblock.engine import meta
    from wsblock.advise import predict, saved

    return saved.jsonable({
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "started_utc": started.isoformat(timespec="seconds"),
        "inputs": {"target": target.name, "params": dict(args.param), "work_ms": args.work_ms,
                   "concurrency": concurrency, "ping_interval": interval, "ping_timeout": timeout,
                   "strategies": target.strategies, "stall_ms": cell.stall_ms},
        "job": profile.job,
        "profile": {**saved.jsonable(profile), "hold_ms": profile.hold_ms, "hold_max_ms": profile.hold_max_ms,
                    "hold_share": profile.hold_share, "over_share": profile.over_share,
                    "loop_stall_ms": profile.loop_stall_ms, "loop_stall_max_ms": profile.loop_stall_max_ms,
                    "loop_over_share": profile.loop_over_share},
        "predictions": {"horizon_s": predict.horizon_s(interval, timeout), "checked_range": checked,
                        "by_strategy": {p.stalls.strategy: {"stalls": p.stalls, "forecast": p.forecast}
                                        for p in predicted}},
        "environment": meta.environment(),
        "printed": printed,
    })


__all__ = ["KIND", "SCHEMA_VERSION", "behaviour_lines", "call_figures", "job_of", "prediction_lines", "record"]
