"""The cell server without its instrument: no lag probe, no ticker, no watchdog.

Run as ``python -m wsblock.selftest.unprobed_server CONFIG.json`` in the
server slot of :func:`wsblock.engine.runner.run_processes`. It is the engine's
server with the probe and watchdog classes replaced, in this process only, by
stand-ins that do nothing; everything else (handler, protocol, strategy,
resource sampling) is unchanged, so the difference in echo capacity between
this server and the engine's is the instrument's cost.
"""

from __future__ import annotations

import sys
from typing import Any

from wsblock.engine import asyncio_server, serving
from wsblock.engine import server as engine_server
from wsblock.engine.stats import LatencyHistogram


class AbsentProbe:
    """Stands in for :class:`~wsblock.engine.probe.LagProbe`: never wakes, records nothing."""

    def __init__(self, interval_s: float, window: Any, heartbeat: Any) -> None:
        self.histogram = LatencyHistogram()

    def start(self) -> None:
        """Start nothing."""

    async def stop(self) -> None:
        """Stop nothing."""

    def late(self, threshold_s: float) -> int:
        """No wake-ups, so none late."""
        return 0


class AbsentWatchdog:
    """Stands in for :class:`~wsblock.engine.probe.Watchdog`: no thread at all."""

    def __init__(self, heartbeat: Any, loop_thread_id: int, poll_s: float = 0.01) -> None:
        pass

    def start(self) -> None:
        """Start nothing."""

    def stop(self) -> list[Any]:
        """No stalls seen."""
        return []


def main(argv: list[str] | None = None) -> int:
    """Entry point: the engine server's, with the instrument absent."""
    asyncio_server.LagProbe = AbsentProbe  # type: ignore[misc,assignment]
    serving.Watchdog = AbsentWatchdog  # type: ignore[misc,assignment]
    return engine_server.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
