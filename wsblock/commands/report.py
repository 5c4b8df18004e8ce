"""``wsblock report``: figures, report.md and report.html for a run directory (or asv's results)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wsblock import inputs
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``report`` to the ``wsblock`` command."""
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


def run(args: argparse.Namespace) -> int:
    """Render the report of a run directory; print where it went."""
    from wsblock.report.document import build_report

    if args.asv:
        from wsblock.report.asv_report import build_asv_report

        results = inputs.check_in_dir(args.dir)
        out_dir = Path(args.out) if args.out else results.parent / "asv-report"
        asv = build_asv_report(results, out_dir, by=args.by)
        print(f"report: {asv.markdown}")
        print(f"figures: {len(asv.figures)} files under {out_dir}")
        return 0
    run_dir = inputs.check_in_dir(args.dir)
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
