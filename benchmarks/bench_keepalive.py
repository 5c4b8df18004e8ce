"""Connection survival: does the way the work runs keep connections alive?

The design's central claim: inline work longer than ``ping_interval +
ping_timeout`` ends in keepalive timeouts (1011); a thread or process pool
keeps connections open. Lower is better.
"""

from __future__ import annotations

from typing import Any

from .common import CellBenchmark


class Keepalive(CellBenchmark):
    """Share of connections that ended abnormally inside the window."""

    def track_disconnect_share(self, run_dir: str, *cell: Any) -> float:
        """Abnormal closes / connections opened (0: none lost, 1: all lost)."""
        return self.metrics["disconnect_share"]

    track_disconnect_share.unit = "share of connections"  # type: ignore[attr-defined]
