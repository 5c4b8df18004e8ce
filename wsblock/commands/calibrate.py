"""``wsblock calibrate``: show, refresh or check this machine's calibration."""

from __future__ import annotations

import argparse
from typing import Any

from wsblock.commands import options
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``calibrate`` to the ``wsblock`` command."""
    cal = subparsers.add_parser(
        "calibrate", help="show or refresh this machine's calibration",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the stored cost line of each workload on this machine (measured on first "
                    "use), measure it again (--force), or check that it still holds (--check).",
        epilog="examples:\n  wsblock calibrate\n  wsblock calibrate --check pure_python")
    cal.add_argument("workloads", nargs="*", help="workloads to calibrate (default: all)")
    cal.add_argument("--force", action="store_true", help="measure again even if stored")
    cal.add_argument("--check", action="store_true",
                     help="measure again and say whether the stored calibration still holds (stores nothing)")


def run(args: argparse.Namespace) -> int:
    """Show, measure again or check the calibration of the workloads named (default: all)."""
    import workloads
    from wsblock.engine import calibration

    names = args.workloads or workloads.names()
    for name in names:
        if name not in workloads.names():
            raise UsageError(f"unknown workload {name!r} (choose from {', '.join(workloads.names())})")
    if args.check:
        return _check_calibration(names)
    for name in names:
        w = workloads.get(name)
        cal = calibration.get(name, w.resolve_params({}), force=args.force, progress=options.progress(False))
        print(f"{name:<12} 1000 ms = {cal.units_for(1000):,} {w.unit} ({_duration(cal.ms_per_unit)} each); "
              f"overhead {cal.overhead_ms:.2f} ms; measured {cal.measured_at}")
    return 0


def _duration(ms: float) -> str:
    """A short time in the unit that reads best: ``60.2 ns``, ``1.45 µs``, ``4.74 ms``."""
    for scale, unit in ((1e-3, "ns"), (1.0, "µs"), (1e3, "ms")):
        if ms * 1e3 / scale < 1000:
            return f"{ms * 1e3 / scale:.3g} {unit}"
    return f"{ms / 1e3:.3g} s"


def _check_calibration(names: list[str]) -> int:
    import workloads
    from wsblock.engine import calibration

    for name in names:
        w = workloads.get(name)
        result = calibration.check(name, w.resolve_params({}))
        fresh = result.fresh
        now = f"now {fresh.ms_per_unit:.6g} ms per unit (load average {fresh.loadavg})"
        if result.stored is None:
            print(f"{name:<12} no stored calibration; {now}")
            continue
        old = result.stored
        verdict = "holds" if result.holds else "does not hold"
        print(f"{name:<12} {verdict}: {result.drift:+.1%} at {int(fresh.points[-1][0]):,} {w.unit}; stored "
              f"{old.ms_per_unit:.6g} ms per unit ({old.measured_at}, load average {old.loadavg}), {now}")
    return 0
