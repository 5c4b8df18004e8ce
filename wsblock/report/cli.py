"""The ``report`` and ``compare`` subcommands.

``wsblock/cli.py`` adds them with :func:`add_parsers`; each parser carries its
handler as ``args.handler`` (a function of the parsed arguments that returns
the exit code). Bad input raises :class:`wsblock.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from wsblock import atomic
from wsblock.errors import UsageError


def _existing_dir(text: str) -> Path:
    from wsblock import inputs

    return inputs.check_in_dir(text)


def cmd_report(args: argparse.Namespace) -> int:
    """Render the report of a run directory; print where it went."""
    from wsblock.report.document import build_report

    if args.asv:
        from wsblock.report.asv_report import build_asv_report

        results = _existing_dir(args.dir)
        out_dir = Path(args.out) if args.out else results.parent / "asv-report"
        asv = build_asv_report(results, out_dir, by=args.by)
        print(f"report: {asv.markdown}")
        print(f"figures: {len(asv.figures)} files under {out_dir}")
        return 0
    run_dir = _existing_dir(args.dir)
    out_dir = Path(args.out) if args.out else run_dir / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out is not a directory: {out_dir}")
    result = build_report(run_dir, out_dir)
    for warning in result.warnings:
        print(f"warning: left out {warning}", file=sys.stderr)
    print(f"report: {result.markdown}")
    if result.html is not None:
        print(f"html: {result.html}")
    print(f"figures: {len(result.figures)} files in {out_dir}")
    if result.csv is not None:
        print(f"table: {result.csv}")
    return 0


_WORKLOAD_OPTIONS = ("work_ms", "param", "job_connections", "call_budget_ms", "repeats", "out", "strategy", "fast")
"""Options of ``advise`` that apply to a workload target only."""


def cmd_advise(args: argparse.Namespace) -> int:
    """Print what a run's measurements say; measure a workload target first."""
    from wsblock.advise import target as tg
    from wsblock.engine.config import CellConfig

    if not tg.looks_like_directory(args.dir):
        from wsblock.advise.command import cmd_advise_target

        d = CellConfig("", 1, "")
        args.target = args.dir
        args.ping_interval = getattr(args, "ping_interval", d.ping_interval)
        # No pings, no timeout: a default timeout would only be refused.
        args.ping_timeout = getattr(args, "ping_timeout", None if args.ping_interval is None else d.ping_timeout)
        if args.job_connections is None:
            args.job_connections = tg.DEFAULT_JOB_CONNECTIONS
        if getattr(args, "fast", False):
            from wsblock.advise.fast_command import cmd_advise_fast

            return cmd_advise_fast(args)  # its own default repeats
        if args.repeats is None:
            args.repeats = tg.DEFAULT_REPEATS
        return cmd_advise_target(args)
    given = [name for name in _WORKLOAD_OPTIONS if getattr(args, name) not in (None, [], False)]
    given += [name for name in ("ping_interval", "ping_timeout") if hasattr(args, name)]
    if given:
        option = "concurrency" if given[0] == "job_connections" else given[0]
        raise UsageError(f"--{option.replace('_', '-')} applies to a workload, not to a run directory ({args.dir})")
    from wsblock.advise.command import reprint

    run_dir = _existing_dir(args.dir)
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


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the comparison of two runs (and write it with ``--out``)."""
    from wsblock.report.compare import compare, compare_json

    dir_a, dir_b = _existing_dir(args.dir_a), _existing_dir(args.dir_b)
    from wsblock.report.document import read_run

    for directory in dict.fromkeys((dir_a, dir_b)):
        for warning in read_run(directory)[1]:
            print(f"warning: left out {warning}", file=sys.stderr)
    if args.json:
        # A JSON list with one object per line: greppable, and diffs stay small.
        objects = [json.dumps(o, allow_nan=False) for o in compare_json(dir_a, dir_b)]
        text = "[\n" + ",\n".join(objects) + "\n]\n" if objects else "[]\n"
    else:
        text = compare(dir_a, dir_b)
    if args.out:
        target = Path(args.out)
        if target.is_dir():
            raise UsageError(f"--out is a directory: {target}")
        atomic.write_text(target, text)
    print(text, end="")
    if args.out:
        print(f"comparison: {args.out}", file=sys.stderr)
    return 0


def add_parsers(subparsers: Any) -> None:
    """Add ``report``, ``advise`` and ``compare`` to the ``wsblock`` command.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    report = subparsers.add_parser(
        "report", help="render figures, report.md and report.html for a run directory",
        description="Render figures (PNG and SVG), report.md, report.html (the same report in one "
                    "self-contained file) and cells.csv from the records in DIR.")
    report.add_argument("dir", metavar="DIR", help="run directory (wsblock matrix output, or records)")
    report.add_argument("--out", metavar="OUTDIR",
                        help="output directory (default: DIR/report; with --asv, asv-report beside DIR)")
    report.add_argument("--asv", action="store_true",
                        help="DIR is asv's results directory (e.g. results/asv): plot what the asv suite tracked "
                             "and compare its runs")
    report.add_argument("--by", help="with --asv: what tells runs apart in the comparison "
                                     "(websockets_version, env_name, commit_hash, machine)")
    report.set_defaults(handler=cmd_report)

    from wsblock.advise import target as tg
    from wsblock.cli import _workload_param, add_allow_stdlib_argument
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
    advise.add_argument("--param", type=_workload_param, action="append", default=[], metavar="KEY=VALUE",
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
    add_allow_stdlib_argument(advise)
    from wsblock.engine import contained

    contained.add_option(advise)
    advise.set_defaults(handler=cmd_advise)

    comp = subparsers.add_parser(
        "compare", help="compare two run directories cell by cell",
        description="Print a GitHub-markdown table of two runs matched by cell parameters: per cell and "
                    "metric, both values with intervals, the ratio and the verdict of the change test "
                    "(better, worse, no change, cannot tell).")
    comp.add_argument("dir_a", metavar="DIR_A", help="baseline run directory (A)")
    comp.add_argument("dir_b", metavar="DIR_B", help="run directory compared with it (B)")
    comp.add_argument("--json", action="store_true",
                      help="print a JSON list instead: one object per cell and metric (cell, metric, a, b, "
                           "a_interval, b_interval, ratio, verdict, ...)")
    comp.add_argument("--out", metavar="FILE", help="also write the output to this file")
    comp.set_defaults(handler=cmd_compare)
