"""The ``report`` and ``compare`` subcommands.

``wsblock/cli.py`` adds them with :func:`add_parsers`; each parser carries its
handler as ``args.handler`` (a function of the parsed arguments that returns
the exit code). Bad input raises :class:`wsblock.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wsblock import atomic
from wsblock.errors import UsageError


def _existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise UsageError(f"no such directory: {text}")
    if not path.is_dir():
        raise UsageError(f"not a directory: {text}")
    return path


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


def cmd_advise(args: argparse.Namespace) -> int:
    """Print what a run's measurements say, per workload and strategy."""
    from wsblock.analysis import tidy
    from wsblock.report import cells as cellmod
    from wsblock.report.document import read_run
    from wsblock.report.verdict import text

    run_dir = _existing_dir(args.dir)
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

    advise = subparsers.add_parser(
        "advise", help="print the verdict of a run directory: which strategy kept connections, at what cost",
        description="Print, per workload and strategy, what the records in DIR say: drops connections, "
                    "inconclusive, cannot tell, slow loop or safe, each with its counts, intervals, repeats "
                    "and the cell it comes from (the first section of report.md).",
        epilog="example: wsblock advise results/runs/quick")
    advise.add_argument("dir", metavar="DIR", help="run directory (wsblock matrix output, or records)")
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
