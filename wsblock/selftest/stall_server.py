"""The cell server with stalls of known length injected into its loop.

Run as ``python -m wsblock.selftest.stall_server CONFIG.json LENGTHS_MS REPEATS GAP_S``
in the server slot of :func:`wsblock.engine.runner.run_processes`. It is the
engine's asyncio server (:class:`~wsblock.engine.asyncio_server.AsyncioServer`),
unchanged, plus one task
that, once the window has opened, calls ``time.sleep`` for each length in
turn *inline on the loop* (so nothing else of the loop runs meanwhile),
``REPEATS`` rounds, ``GAP_S`` seconds apart. It times each sleep with the
monotonic clock around the call and keeps every heartbeat gap the lag probe
saw (the very gaps the watchdog turns into stalls). Both go into the server's
stats file under ``selftest``, on the same clock, in the one atomic write of
its measurements: the runner ends the server as soon as that file exists, so
a second write could be lost.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from wsblock.engine.probe import Heartbeat
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.asyncio_server import AsyncioServer


class RecordingHeartbeat(Heartbeat):
    """A heartbeat that also keeps every gap (the watchdog drains its own copy)."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(stall_s)
        self.kept: list[tuple[float, float]] = []

    def beat(self, now: float) -> None:
        """Record that the loop ran at ``now``; keep the gap if it was a stall."""
        if now - self.last > self.stall_s:
            self.kept.append((self.last, now))
        super().beat(now)


class StallServer(AsyncioServer):
    """An :class:`AsyncioServer` whose loop is blocked on purpose, for known lengths.

    Args:
        config: The server config written by the runner.
        lengths_ms: Stall lengths to inject, in order, each round.
        repeats: Rounds.
        gap_s: Free loop time between two stalls (the probe must beat in it).
    """

    def __init__(self, config: ServerConfig, lengths_ms: list[float], repeats: int, gap_s: float) -> None:
        super().__init__(config)
        self.heartbeat = self.core.heartbeat = RecordingHeartbeat(self.core.cell.stall_ms / 1000.0)
        self.lengths_ms = lengths_ms
        self.repeats = repeats
        self.gap_s = gap_s
        self.injected: list[dict[str, float]] = []

    async def _inject(self) -> None:
        await self.window_set.wait()
        await asyncio.sleep(max(0.0, self.core.window.start - time.monotonic()) + self.gap_s)
        for _ in range(self.repeats):
            for ms in self.lengths_ms:
                began = time.monotonic()
                time.sleep(ms / 1000.0)  # the stall itself: blocks the loop, on purpose
                ended = time.monotonic()
                self.injected.append({"nominal_ms": ms, "start": began, "end": ended})
                await asyncio.sleep(self.gap_s)

    def measurements(self, stopped_at: float, **kwargs: Any) -> dict[str, Any]:
        """The server's measurements, with what was injected and every gap, in the one stats file write."""
        result = super().measurements(stopped_at, **kwargs)
        window = self.core.window
        result["selftest"] = {
            "window": [window.start, window.end],
            "stall_s": self.heartbeat.stall_s,
            "injected": list(self.injected),
            # The heartbeat runs from the server's start: the gaps of its
            # set-up, before the window, are not the loop's under load.
            "gaps": [list(gap) for gap in self.heartbeat.kept if gap[1] > window.start],
        }
        return result

    async def main(self) -> dict[str, Any]:
        injector = asyncio.ensure_future(self._inject())
        try:
            return await super().main()
        finally:
            injector.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``CONFIG.json LENGTHS_MS REPEATS GAP_S`` (lengths comma-separated)."""
    args = sys.argv[1:] if argv is None else argv
    config = ServerConfig.read(args[0])
    lengths = [float(x) for x in args[1].split(",")]
    server = StallServer(config, lengths, int(args[2]), float(args[3]))
    result = asyncio.run(server.main())
    if not result:
        return 3 if server.core.bind_failed else 4
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
