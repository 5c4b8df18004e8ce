"""Responsiveness: how late the event loop runs, and what a client feels.

``track_loop_lag_p99`` is the server's in-loop probe (how late a 1 ms sleep
woke); ``track_echo_p99`` is measured by observer connections from each echo's
*scheduled* send time, so a stall is not hidden by a waiting sender. Both are
99th percentiles in milliseconds; lower is better.
"""

from __future__ import annotations

from typing import Any

from .common import CellBenchmark


class Responsiveness(CellBenchmark):
    """Tail latency of the event loop and of echo round trips."""

    def track_loop_lag_p99(self, run_dir: str, *cell: Any) -> float:
        """99th percentile of the loop-lag probe, in ms."""
        return self.metrics["lag_p99_ms"]

    track_loop_lag_p99.unit = "ms"  # type: ignore[attr-defined]

    def track_echo_p99(self, run_dir: str, *cell: Any) -> float:
        """99th percentile of observer echo latency, in ms."""
        return self.metrics["echo_p99_ms"]

    track_echo_p99.unit = "ms"  # type: ignore[attr-defined]
