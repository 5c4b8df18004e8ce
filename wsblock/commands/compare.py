"""``wsblock compare``: two run directories, cell by cell, with the change test's verdicts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wsblock import atomic, inputs
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``compare`` to the ``wsblock`` command."""
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


def run(args: argparse.Namespace) -> int:
    """Print the comparison of two runs (and write it with ``--out``)."""
    from wsblock.report.compare import compare, compare_json

    dir_a, dir_b = inputs.check_in_dir(args.dir_a), inputs.check_in_dir(args.dir_b)
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
