"""``wsblock profile TARGET``: profile a call in seconds and predict each strategy's stalls, without a server.

The target is checked as ``wsblock advise`` checks it
(:mod:`wsblock.advise.target`: the name, the parameters, a trial call, and
that a process pool can load it), then measured in this process
(:mod:`wsblock.advise.profile`), and each strategy's stall pattern and
keepalive outcome at the given settings predicted from it
(:mod:`wsblock.advise.stallpred`). The result is printed in plain words and,
with ``--out``, written as a JSON record (kind :data:`KIND`), atomically.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from wsblock.advise import profile as pf
from wsblock.advise import stallpred as sp
from wsblock.errors import UsageError

KIND = "wsblock.profile"
SCHEMA_VERSION = 1

FREE_SHOWN_MS = 1.0
"""Freeing a result is mentioned when it takes at least this long."""


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"wsblock: {message}", file=sys.stderr, flush=True)

    return say


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
    hold, share = p.hold_ms, p.hold_share
    verdict = ("a thread pool cannot keep the loop free" if hold > p.threshold_ms
               else "a thread pool can keep the loop free of stalls over "
                    f"{p.threshold_ms:g} ms" + (", though the loop waits for the GIL behind it"
                                                 if share >= 0.5 else ""))
    out.append(f"it holds the GIL for up to {_ms(hold)} at once ({share * 100:.0f} % of the call): {verdict}")
    out.append(f"  ({len(p.holds)} calls run in a thread, p50 {_ms(p.probed_call_p50_ms)}, max "
               f"{_ms(p.probed_max_ms)}, beside a probe thread that wants the GIL every "
               f"{pf.holdprobe.PERIOD_S * 1000:g} ms; the hold seen in at least two calls, the single longest "
               f"{_ms(p.hold_max_ms)})")
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
                   p.free_max_ms)


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


def _record(args: argparse.Namespace, target: Any, cell: Any, profile: pf.Profile, predicted: list[sp.Predicted],
            checked: Any, *, started: datetime, interval: float | None, timeout: float | None, concurrency: int,
            printed: str) -> dict[str, Any]:
    """The JSON record: inputs, the profile, the predictions, the environment, the printed text."""
    from wsblock import meta
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
                    "hold_share": profile.hold_share, "over_share": profile.over_share},
        "predictions": {"horizon_s": predict.horizon_s(interval, timeout), "checked_range": checked,
                        "by_strategy": {p.stalls.strategy: {"stalls": p.stalls, "forecast": p.forecast}
                                        for p in predicted}},
        "environment": meta.environment(),
        "printed": printed,
    })


def cmd_profile(args: argparse.Namespace) -> int:
    """Profile a workload and print each strategy's predicted stalls; write the record with ``--out``.

    Returns:
        0 once measured.
    """
    import workloads
    from wsblock import atomic
    from wsblock.advise import predict
    from wsblock.advise import target as tg
    from wsblock.engine.blas import pin_blas_threads
    from wsblock.engine.config import CellConfig
    from wsblock.cli import check_out_file

    say = _say(args.quiet)
    d = CellConfig("", 1, "")
    interval = getattr(args, "ping_interval", d.ping_interval)
    timeout = getattr(args, "ping_timeout", None if interval is None else d.ping_timeout)
    concurrency = args.job_connections if args.job_connections is not None else tg.DEFAULT_JOB_CONNECTIONS
    out = check_out_file(args.out) if args.out else None
    try:
        workload = workloads.lookup(args.target)
        if isinstance(workload, workloads.FunctionWorkload):
            workload.resolve_params(dict(args.param))  # its own words, before the matrix's
    except workloads.WorkloadError as exc:
        raise UsageError(str(exc)) from None
    started = datetime.now(timezone.utc)
    target = tg.resolve(args.target, work_ms=args.work_ms, params=args.param, ping_interval=interval,
                        ping_timeout=timeout, job_connections=concurrency, repeats=1)
    for note in target.notes:
        say(f"note: {note}")
    pin_blas_threads(1)  # as the server and its workers do
    switch_before = sys.getswitchinterval()
    tg.check(target, say)
    cell, job = job_of(target, say)
    process = "process" in target.strategies
    profile = pf.measure(target.name, job, threshold_ms=cell.stall_ms, out_of_process=process, progress=say)
    if profile.switch_interval_s != switch_before:
        profile.notes.append(f"the function changed the switch interval (sys.setswitchinterval) from "
                             f"{switch_before * 1000:g} ms to {profile.switch_interval_s * 1000:g} ms")
    checked = predict.checked_range()
    predicted = sp.predict_all(call_figures(profile), target.strategies, concurrency=concurrency,
                               threshold_ms=cell.stall_ms, ping_interval=interval, ping_timeout=timeout,
                               checked=checked)
    keepalive = (f"ping_interval {'none' if interval is None else f'{interval:g} s'} / "
                 f"ping_timeout {'none' if timeout is None else f'{timeout:g} s'}")
    given = ", ".join(f"{k}={v}" for k, v in args.param)
    size = f"{job.units:,} {target.workload.unit}" if job.units > 1 or target.workload.calibrated else "one call"
    lines = [f"profile {target.name}" + (f" ({given})" if given else "") + f": {size} per job, measured in "
             f"{profile.took_s:,.1f} s without a server", ""]
    lines += behaviour_lines(profile) + [""]
    lines += prediction_lines(predicted, concurrency=concurrency, keepalive=keepalive, checked=checked)
    if out is not None:
        lines.append(f"record: {out}")
    printed = "\n".join(lines) + "\n"
    if out is not None:
        atomic.write_json(out, _record(args, target, cell, profile, predicted, checked, started=started,
                                       interval=interval, timeout=timeout, concurrency=concurrency,
                                       printed=printed))
    print(printed, end="")
    return 0


def add_parsers(subparsers: Any) -> None:
    """Add ``profile`` to the ``wsblock`` command.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    from wsblock.advise import target as tg
    from wsblock.cli import _workload_param
    from wsblock.engine.config import CellConfig
    from wsblock.schema.axis import seconds_or_none_text

    d = CellConfig("", 1, "")
    p = subparsers.add_parser(
        "profile", help="profile a call in seconds and predict each strategy's loop stalls (no server)",
        description=textwrap.fill(
            "TARGET is a workload (a built-in name such as c_holds_gil, or a function as "
            "package.module:function), checked as advise checks it. Without a server, in a few seconds: time "
            "the call, measure how long it holds the GIL at once (a probe thread that wants the GIL every "
            "millisecond, beside the call run in a thread), and what a process pool would pickle and unpickle; "
            "then predict each strategy's longest loop stall, stalled share and the chance of losing a "
            "connection at your keepalive settings (the boundary model).", 79),
        epilog="examples:\n  wsblock profile c_holds_gil --work-ms 300\n"
               "  wsblock profile mymod:work --param rows=10000 --ping-interval 1 --ping-timeout 1\n"
               "  wsblock profile mymod:work --concurrency 4 --out profile.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="TARGET", help="a workload or package.module:function")
    p.add_argument("--param", type=_workload_param, action="append", default=[], metavar="KEY=VALUE",
                   help="workload parameter, or keyword argument of the function (repeatable)")
    p.add_argument("--work-ms", type=float, metavar="MS",
                   help=f"job length of a built-in or calibrated workload (default {tg.DEFAULT_WORK_MS:g}; "
                        f"ignored for a function without a units parameter)")
    p.add_argument("--concurrency", "--job-connections", dest="job_connections", type=int, metavar="N",
                   help=f"calls your server runs at once (default {tg.DEFAULT_JOB_CONNECTIONS})")
    p.add_argument("--ping-interval", type=seconds_or_none_text, default=argparse.SUPPRESS, metavar="S|none",
                   help=f"keepalive ping interval the prediction is for (default {d.ping_interval:g})")
    p.add_argument("--ping-timeout", type=seconds_or_none_text, default=argparse.SUPPRESS, metavar="S|none",
                   help=f"keepalive pong timeout the prediction is for (default {d.ping_timeout:g})")
    p.add_argument("--out", metavar="FILE.json", help="write the profile and predictions here (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=cmd_profile)


__all__ = ["KIND", "SCHEMA_VERSION", "add_parsers", "behaviour_lines", "call_figures", "cmd_profile", "job_of",
           "prediction_lines"]
