"""``wsblock selftest``: measure the instrument, print a table of goals, write a record.

The parts, goals and record are :mod:`wsblock.selftest.measure`'s. The exit
status is 1 when a goal is missed (marked ``FAIL``), even though the record
is written: a script that runs the selftest must not read a missed goal as a
pass. A goal that is only reported, or could not be measured, fails nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wsblock.commands import options
from wsblock.errors import UsageError
from wsblock.selftest import measure


def add_parser(subparsers: Any) -> None:
    """Add ``selftest`` to the ``wsblock`` command.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "selftest", help="measure the instrument: stall fidelity, probe cost, harness capacity",
        description="Inject stalls of known length into a real server's loop and compare what the "
                    "watchdog measured; compare echo capacity with and without the lag probe; find the "
                    "echo rate at which one load process saturates, against the harness's server and a "
                    "bare websockets echo server. Prints a table of goals and writes a JSON record; "
                    "exits 1 when a goal is missed.")
    p.add_argument("--part", action="append", choices=measure.PARTS,
                   help="run only this part (repeatable; default: all)")
    p.add_argument("--out", default="selftest.json", metavar="FILE.json",
                   help="where the record goes (default selftest.json)")
    p.add_argument("--repeats", type=int, default=3, metavar="K",
                   help="rounds of injected stalls, and runs of each probe variant (default 3)")
    p.add_argument("--window", type=float, default=2.0, metavar="S",
                   help="window of each capacity and probe-cost step (default 2)")
    p.add_argument("--stalls", type=_lengths, metavar="MS,MS,...",
                   help="injected stall lengths (default 5,20,100,1000)")
    p.add_argument("--json", action="store_true", help="print the record instead of the table")
    # A missed goal always exits 1; the option stays so that scripts written
    # when it was needed keep working.
    p.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    """Run ``wsblock selftest``."""
    from wsblock import atomic, paths

    if not 1 <= args.repeats <= 20:
        raise UsageError(f"--repeats must be 1 to 20, got {args.repeats}")
    if not 0.5 <= args.window <= 60.0:
        raise UsageError(f"--window must be 0.5 to 60 s, got {args.window:g}")
    out = options.check_out_file(args.out)
    parts = tuple(p for p in measure.PARTS if p in (args.part or measure.PARTS))
    paths.clean_stale()

    def say(message: str) -> None:
        if not args.quiet:
            print(f"wsblock: {message}", file=sys.stderr, flush=True)

    result = measure.run_selftest(parts, repeats=args.repeats, window_s=args.window, lengths_ms=args.stalls,
                          progress=say)
    atomic.write_json(out, result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(measure.table(result["goals"]))
        print(f"record: {out}")
    missed = [g["goal"] for g in result["goals"] if g["passed"] is False]
    if missed:
        print(f"error: goal missed: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def _lengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds, got {text!r}") from None
    if not values or any(not 3.0 <= v <= 10_000.0 for v in values):
        raise argparse.ArgumentTypeError(f"each stall must be 3 to 10,000 ms, got {text!r}")
    return values
