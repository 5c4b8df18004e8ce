"""``wsblock findings``: check or look up the numbers a findings document quotes."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add ``findings`` (and its ``check``, ``fill`` and ``query``) to the ``wsblock`` command."""
    findings = subparsers.add_parser(
        "findings", help="check or look up numbers quoted in a findings document",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every number in a findings document carries the query that computes it from the "
                    "records (<!-- q: ... -->); check recomputes them all, query prints one.",
        epilog="examples:\n  wsblock findings check results/reference/FINDINGS.md\n"
               "  wsblock findings query results/reference/default lag_p99_ms workload=pure_python "
               "strategy=thread")
    fsub = findings.add_subparsers(dest="findings_command", required=True, parser_class=type(findings))
    fcheck = fsub.add_parser("check", help="recompute every quoted number from the records")
    fcheck.add_argument("document", help="a markdown file with <!-- q: ... --> queries")
    ffill = fsub.add_parser("fill", help="replace ?N<!-- q: ... --> placeholders with values (N decimals)")
    ffill.add_argument("document")
    fquery = fsub.add_parser("query", help="print the value of one query")
    fquery.add_argument("query", nargs="+", help="RUN_DIR COLUMN key=value ... [agg=NAME] [allow=inconclusive] (docs/findings.md)")
    fquery.add_argument("--decimals", type=int, default=2, help="decimals to print (default 2)")


def run(args: argparse.Namespace) -> int:
    """Check a findings document, fill its placeholders, or print one query; 1 when a quote does not match."""
    from pathlib import Path

    from wsblock.report import findings

    if args.findings_command == "query":
        lines, note = findings.lines(" ".join(args.query), Path.cwd(), args.decimals)
        print("\n".join(lines))
        if note:
            print(f"note: findings check refuses this quote: {note}", file=sys.stderr)
        return 0
    if args.findings_command == "fill":
        print(f"{findings.fill(args.document)} placeholders filled")
        return 0
    checked, mismatches = findings.check(args.document)
    for m in mismatches:
        print(f"{args.document}:{m.line}: {m.describe()}")
    wrong = sum(1 for m in mismatches if not m.agrees)
    refused = sum(1 for m in mismatches if m.refused)
    print(f"{checked} quoted numbers checked, {wrong} do not match the records, "
          f"{refused} are refused (survival figures over inconclusive or legacy rows, or connection-level "
          "intervals pooled over cells)")
    return 1 if mismatches else 0
