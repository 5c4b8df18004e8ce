"""``wsblock profile TARGET``: profile a call in seconds and predict each strategy's stalls, without a server.

The target is checked as ``wsblock advise`` checks it
(:mod:`wsblock.advise.target`), measured in this process
(:mod:`wsblock.advise.profile`), and each strategy's stall pattern and
keepalive outcome at the given settings predicted from it
(:mod:`wsblock.advise.stallpred`); :mod:`wsblock.advise.profile_report` holds
the printed lines and the record (written with ``--out``, atomically).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from datetime import datetime, timezone
from typing import Any

from wsblock.advise import profile as pf
from wsblock.advise import profile_report as pr
from wsblock.advise import stallpred as sp
from wsblock.commands import options
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``profile`` to the ``wsblock`` command.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    from wsblock.advise import target as tg
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
    p.add_argument("--param", type=options.workload_param, action="append", default=[], metavar="KEY=VALUE",
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


def run(args: argparse.Namespace) -> int:
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

    say = options.progress(args.quiet)
    d = CellConfig("", 1, "")
    interval = getattr(args, "ping_interval", d.ping_interval)
    timeout = getattr(args, "ping_timeout", None if interval is None else d.ping_timeout)
    concurrency = args.job_connections if args.job_connections is not None else tg.DEFAULT_JOB_CONNECTIONS
    out = options.check_out_file(args.out) if args.out else None
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
    cell, job = pr.job_of(target, say)
    process = "process" in target.strategies
    profile = pf.measure(target.name, job, threshold_ms=cell.stall_ms, out_of_process=process, progress=say)
    if profile.switch_interval_s != switch_before:
        profile.notes.append(f"the function changed the switch interval (sys.setswitchinterval) from "
                             f"{switch_before * 1000:g} ms to {profile.switch_interval_s * 1000:g} ms")
    checked = predict.checked_range()
    predicted = sp.predict_all(pr.call_figures(profile), target.strategies, concurrency=concurrency,
                               threshold_ms=cell.stall_ms, ping_interval=interval, ping_timeout=timeout,
                               checked=checked)
    keepalive = (f"ping_interval {'none' if interval is None else f'{interval:g} s'} / "
                 f"ping_timeout {'none' if timeout is None else f'{timeout:g} s'}")
    given = ", ".join(f"{k}={v}" for k, v in args.param)
    size = f"{job.units:,} {target.workload.unit}" if job.units > 1 or target.workload.calibrated else "one call"
    lines = [f"profile {target.name}" + (f" ({given})" if given else "") + f": {size} per job, measured in "
             f"{profile.took_s:,.1f} s without a server", ""]
    lines += pr.behaviour_lines(profile) + [""]
    lines += pr.prediction_lines(predicted, concurrency=concurrency, keepalive=keepalive, checked=checked)
    if out is not None:
        lines.append(f"record: {out}")
    printed = "\n".join(lines) + "\n"
    if out is not None:
        atomic.write_json(out, pr.record(args, target, cell, profile, predicted, checked, started=started,
                                       interval=interval, timeout=timeout, concurrency=concurrency,
                                       printed=printed))
    print(printed, end="")
    return 0
