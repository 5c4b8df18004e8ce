"""The instrument itself: how exactly it times stalls, what it costs, what it can drive.

The figures of ``wsblock selftest`` (:mod:`wsblock.selftest`), tracked so that a
change to the harness that blurs its stall timing, makes its probe dearer or
its server slower shows up in ``asv compare``. As with the cell benchmarks
(``common.py``), the measurement runs once, in a ``setup_cache`` shared by
every class here (defined once, on :class:`Selftest`), and each ``track_``
method reads one figure of its record.

The smoke profile (``WSBLOCK_ASV_PROFILE=smoke``) leaves these benchmarks out:
it is the suite's minimal run, and the selftest adds about two minutes.
"""

from __future__ import annotations

import math
from typing import Any

from wsblock.engine.proc import die_with_parent

from .common import profile_name

REPEATS = 3
"""Rounds of injected stalls, and runs of each probe variant."""

STALL_LENGTHS_MS = [5.0, 20.0, 100.0, 1000.0]
"""The selftest's injected lengths (``wsblock.selftest.fidelity.LENGTHS_MS``, which a test
checks this against); spelled out so that discovery imports nothing of the selftest."""


class Selftest:
    """Base of the instrument benchmarks: runs the selftest once per asv run and environment."""

    def setup_cache(self) -> dict[str, Any]:
        """Run every part of the selftest; return its record (asv pickles it)."""
        # asv signals this process group on timeout and Ctrl-C; if asv itself
        # is killed outright, the kernel's SIGTERM stops the selftest's runs.
        die_with_parent()
        try:
            from wsblock.selftest.measure import run_selftest
        except ImportError:  # a commit of the suite from before it was there (asv measures older commits too)
            from wsblock.selftest.command import run_selftest  # type: ignore[import-not-found,no-redef]

        return run_selftest(repeats=REPEATS)

    setup_cache.timeout = 900  # type: ignore[attr-defined]


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


class StallFidelity(Selftest):
    """Error of measured stall lengths, per injected length (``time.sleep`` inline on the loop)."""

    params = [STALL_LENGTHS_MS]
    param_names = ["stall_ms"]

    def _row(self, record: dict[str, Any], stall_ms: float) -> dict[str, Any]:
        for row in record["fidelity"]["by_length"]:
            if row["nominal_ms"] == float(stall_ms):
                return row
        raise NotImplementedError(f"no injected stall of {stall_ms} ms")

    def track_error_ms(self, record: dict[str, Any], stall_ms: float) -> float:
        """Median error (measured minus injected) of the stalls of this length, over the rounds."""
        return _number(self._row(record, stall_ms)["error_ms_median"])

    track_error_ms.unit = "ms"  # type: ignore[attr-defined]

    def track_missed(self, record: dict[str, Any], stall_ms: float) -> float:
        """Injected stalls of this length the watchdog did not report (goal: 0)."""
        row = self._row(record, stall_ms)
        return float(row["n"] - row["detected"])

    track_missed.unit = "stalls"  # type: ignore[attr-defined]


class Capacity(Selftest):
    """Echo rates: the load's saturation, the harness's server against a bare one, the probe's cost."""

    def track_load_saturation_per_s(self, record: dict[str, Any]) -> float:
        """Offered echo rate at which one load process falls behind its schedule (NaN: not within the sweep)."""
        return _number(record["capacity"]["load_saturates_at_per_s"])

    track_load_saturation_per_s.unit = "echoes per second"  # type: ignore[attr-defined]

    def track_harness_to_bare_ratio(self, record: dict[str, Any]) -> float:
        """Largest answered echo rate of the harness's server over a bare websockets server's (goal >= 0.9)."""
        return _number(record["capacity"]["ratio"])

    track_harness_to_bare_ratio.unit = "ratio"  # type: ignore[attr-defined]

    def track_probe_cost(self, record: dict[str, Any]) -> float:
        """Echo capacity lost to the lag probe and watchdog (goal <= 0.02; NaN unless the server was the limit)."""
        probe = record["probe"]
        return _number(probe["cost"]) if probe["server_bound"] else math.nan

    track_probe_cost.unit = "share"  # type: ignore[attr-defined]

    def track_probe_cpu_cost(self, record: dict[str, Any]) -> float:
        """Extra server CPU per answered echo with the lag probe and watchdog, as a share."""
        return _number(record["probe"]["cpu_cost"])

    track_probe_cpu_cost.unit = "share"  # type: ignore[attr-defined]


if profile_name() == "smoke":
    del StallFidelity, Capacity
