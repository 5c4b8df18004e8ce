"""``wsblock advise TARGET``: recommend a strategy for a workload, or print what a run directory says.

The measuring and judging is :mod:`wsblock.advise` (:mod:`~wsblock.advise.advice`,
:mod:`~wsblock.advise.fast_advice`); this module reads the options and
chooses between a workload and a run directory.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from wsblock import inputs
from wsblock.commands import options
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``advise`` to the ``wsblock`` command."""
    from wsblock.advise import target as tg
    from wsblock.engine.config import CellConfig
    from wsblock.schema.axis import seconds_or_none_text

    d = CellConfig("", 1, "")
    advise = subparsers.add_parser(
        "advise", help="recommend a strategy for a workload (measured now), or print the verdict of a run directory",
        description=textwrap.fill(
                    "TARGET is a workload (a built-in name such as c_holds_gil, or a function as "
                    "package.module:function): run every strategy that applies at your keepalive settings, "
                    "print a verdict table per strategy and one recommendation with its reason, and write "
                    "the records and report as a run directory. TARGET may also be a run directory: print, "
                    "per workload and strategy, what its records say (drops connections, inconclusive, cannot "
                    "tell, slow loop or safe, each with its counts, intervals, repeats and cell); a directory "
                    "written by advise reprints what that run printed (from its advice.json).", 79),
        epilog="examples:\n  wsblock advise c_holds_gil\n  wsblock advise mymod:work --param rows=10000\n"
               "  wsblock advise mymod:work --ping-interval 1 --ping-timeout 1 --concurrency 4\n"
               "  wsblock advise mymod:work --fast --ping-interval 1 --ping-timeout 1   # predict, confirm 2\n"
               "  wsblock advise results/runs/quick", formatter_class=argparse.RawDescriptionHelpFormatter)
    advise.add_argument("dir", metavar="TARGET",
                        help="a workload or package.module:function, or a run directory")
    advise.add_argument("--ping-interval", type=seconds_or_none_text, default=argparse.SUPPRESS, metavar="S|none",
                        help=f"keepalive ping interval of server and client (default {d.ping_interval:g}, "
                             f"websockets' default)")
    advise.add_argument("--ping-timeout", type=seconds_or_none_text, default=argparse.SUPPRESS, metavar="S|none",
                        help=f"keepalive pong timeout (default {d.ping_timeout:g}, websockets' default)")
    advise.add_argument("--work-ms", type=float, metavar="MS",
                        help=f"job length of a built-in or calibrated workload (default {tg.DEFAULT_WORK_MS:g}; "
                             f"ignored for a function without a units parameter, which runs once per job)")
    advise.add_argument("--param", type=options.workload_param, action="append", default=[], metavar="KEY=VALUE",
                        help="workload parameter, or keyword argument of the function: give it a "
                             "production-sized input (repeatable)")
    advise.add_argument("--concurrency", "--job-connections", dest="job_connections", type=int, metavar="N",
                        help=f"calls your server runs at once; sets the job connections, one call in flight each "
                             f"(default {tg.DEFAULT_JOB_CONNECTIONS}: one call at a time)")
    advise.add_argument("--call-budget-ms", type=float, metavar="MS",
                        help="longest call time your production input may take: checked against the calls "
                             "measured (default: none)")
    advise.add_argument("--repeats", type=int, metavar="K",
                        help=f"repeats per strategy (default {tg.DEFAULT_REPEATS}; with --fast, per confirmed "
                             f"strategy, default 1)")
    advise.add_argument("--fast", action="store_true",
                        help="predict every strategy from a profile of the call (as 'wsblock profile'), pick by "
                             "the same rule, and confirm with real cells only the recommended strategy (windows "
                             "sized at your keepalive) and the one just cheaper (a short window); prints where "
                             "prediction and cells disagree, and falls back once when they contradict it. An "
                             "answer in a fraction of the time, marked as such: not the full matrix "
                             "(docs/advise.md)")
    advise.add_argument("--strategy", action="append", default=[], metavar="NAME",
                        help="measure only this strategy (repeatable; default: every one that applies)")
    advise.add_argument("--out", metavar="DIR",
                        help="run directory to write (default results/runs/advise-TARGET-TIME)")
    advise.add_argument("--quiet", action="store_true", help="no progress lines while cells run")
    options.add_allow_stdlib_argument(advise)
    from wsblock.engine import contained

    contained.add_option(advise)


_WORKLOAD_OPTIONS = ("work_ms", "param", "job_connections", "call_budget_ms", "repeats", "out", "strategy", "fast")
"""Options of ``advise`` that apply to a workload target only."""


def run(args: argparse.Namespace) -> int:
    """Print what a run's measurements say; measure a workload target first."""
    from wsblock.advise import target as tg
    from wsblock.engine.config import CellConfig

    if not tg.looks_like_directory(args.dir):
        d = CellConfig("", 1, "")
        args.target = args.dir
        args.ping_interval = getattr(args, "ping_interval", d.ping_interval)
        # No pings, no timeout: a default timeout would only be refused.
        args.ping_timeout = getattr(args, "ping_timeout", None if args.ping_interval is None else d.ping_timeout)
        if args.job_connections is None:
            args.job_connections = tg.DEFAULT_JOB_CONNECTIONS
        if getattr(args, "fast", False):
            from wsblock.advise import fast_advice

            return fast_advice.advise(args)  # its own default repeats
        if args.repeats is None:
            args.repeats = tg.DEFAULT_REPEATS
        from wsblock.advise import advice

        return advice.advise(args)
    given = [name for name in _WORKLOAD_OPTIONS if getattr(args, name) not in (None, [], False)]
    given += [name for name in ("ping_interval", "ping_timeout") if hasattr(args, name)]
    if given:
        option = "concurrency" if given[0] == "job_connections" else given[0]
        raise UsageError(f"--{option.replace('_', '-')} applies to a workload, not to a run directory ({args.dir})")
    from wsblock.advise.advice import reprint

    run_dir = inputs.check_in_dir(args.dir)
    kept = reprint(run_dir)
    if kept is not None:
        # An advise run: print exactly what it printed, judged then.
        print(kept, end="")
        return 0
    from wsblock.analysis import tidy
    from wsblock.analysis import cells as cellmod
    from wsblock.report.document import read_run
    from wsblock.report.recommendation import text

    loaded, warnings = read_run(run_dir)
    for warning in warnings:
        print(f"warning: left out {warning}", file=sys.stderr)
    cells = cellmod.aggregate(tidy.frame(loaded.records))
    print(text(cells, run_dir.resolve().name), end="")
    return 0
