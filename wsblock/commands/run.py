"""``wsblock run``: one cell, with its summary (and its record with ``--out``)."""

from __future__ import annotations

import argparse
from typing import Any

from wsblock.commands import options
from wsblock.engine import contained


def add_parser(subparsers: Any) -> None:
    """Add ``run`` to the ``wsblock`` command."""
    run = subparsers.add_parser(
        "run", help="run one cell and print its summary",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start a server with the workload and strategy, hold connections open with keepalive "
                    "pings from a separate load process, measure for a window, stop every process, and "
                    "print a summary (--out: also the full record).",
        epilog="examples:\n"
               "  wsblock run --workload pure_python --work-ms 3000 --strategy inline \\\n"
               "      --ping-interval 1 --ping-timeout 1 --out results/one-cell/inline.json\n"
               "  wsblock run --workload numpy --work-ms 500 --strategy thread --duration 10\n"
               "  wsblock run --cell results/one-cell/inline.json --json   # again, from a record's params\n\n"
               "Every option and its bounds: docs/run.md; axes: docs/vocabulary.md.")
    options.add_cell_arguments(run)
    run.add_argument("--out", metavar="FILE.json", help="write the record here (atomically)")
    run.add_argument("--json", action="store_true", help="print the record instead of the summary")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    contained.add_option(run)


def run(args: argparse.Namespace) -> int:
    """Measure the cell the options describe; 1 when it measured nothing."""
    from wsblock.engine import cell_main

    return cell_main.run(lambda: options.cell_from_args(args), args.out, progress=options.progress(args.quiet),
                         as_json=args.json)
