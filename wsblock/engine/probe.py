"""Event-loop responsiveness: an in-loop lag probe and an out-of-loop watchdog.

The probe sleeps ``interval`` and records how late it wakes. It cannot see
*during* a stall (it is the thing stalled) and takes one sample per stall,
however long, so a 3 s stall weighs as much as a 1 ms hiccup in its
percentiles. Therefore every wake-up also refreshes a heartbeat, and a gap
between heartbeats longer than ``stall_ms`` is a *stall*, timed exactly from
the loop's own timestamps.

The watchdog thread runs outside the loop: it notices a stale heartbeat while
the stall is still going on and samples the stalled thread's stack, so the
record says what blocked the loop. It needs the GIL to run, so inside a C
call that holds the GIL it cannot sample; such stalls are still counted,
from the heartbeat gap, once the loop runs again.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import time
from dataclasses import dataclass

from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window


@dataclass
class Stall:
    """One period in which the loop did not run.

    Attributes:
        start: Last heartbeat before the gap (monotonic seconds).
        end: First heartbeat after it.
        site: Where the loop thread was most often when the watchdog
            looked (every poll while the stall lasted), if it did.
    """

    start: float
    end: float
    site: str | None = None

    @property
    def length(self) -> float:
        """Seconds the loop did not run."""
        return self.end - self.start


class Heartbeat:
    """Timestamps written by the loop thread and read by the watchdog."""

    def __init__(self, stall_s: float) -> None:
        self.last = time.monotonic()
        self.stall_s = stall_s
        # (gap start, gap end) of every stall, appended by the loop thread;
        # deque appends and pops are atomic, so no lock is needed.
        self.gaps: collections.deque[tuple[float, float]] = collections.deque()

    def beat(self, now: float) -> None:
        """Record that the loop ran at ``now``."""
        if now - self.last > self.stall_s:
            self.gaps.append((self.last, now))
        self.last = now


class LagProbe:
    """An asyncio task that measures how late the loop wakes a sleeper.

    Args:
        interval_s: Sleep period (about 1 ms).
        window: Only wake-ups inside the window are recorded.
        heartbeat: Refreshed on every wake-up.
    """

    def __init__(self, interval_s: float, window: Window, heartbeat: Heartbeat) -> None:
        self.interval_s = interval_s
        self.window = window
        self.heartbeat = heartbeat
        self.histogram = LatencyHistogram()
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the probe task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    async def _run(self) -> None:
        interval = self.interval_s
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.heartbeat.beat(now)
            # Only sleeps that lie wholly inside the window are samples: a
            # sleep that began before the window opened (or woke after it
            # closed) would carry stall time from outside it. Stalls that
            # cross the window's edges are measured, clipped, by the heartbeat.
            if before >= self.window.start and now < self.window.end:
                lag = now - before - interval
                self.histogram.record(lag)
                if lag > 0.001:  # keep only the few late wake-ups, for late()
                    self._lags.append(lag)

    def late(self, threshold_s: float) -> int:
        """Count wake-ups in the window that were later than ``threshold_s``."""
        return sum(1 for lag in self._lags if lag > threshold_s)

    async def stop(self) -> None:
        """Cancel the probe task and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class ThreadProbe(threading.Thread):
    """A thread that measures how late ``time.sleep`` wakes it: the probe of a server without a loop.

    The threaded server has no event loop whose lag could be measured. What
    keeps its threads (handlers, keepalive, the reader of pongs) from running
    is the GIL, and a thread that sleeps ``interval`` and then needs the GIL
    to record its wake-up sees exactly that wait, plus the operating system's
    own scheduling delay. It refreshes a heartbeat the same way, so stalls
    are accounted as for the loop probe.

    Args:
        interval_s: Sleep period (about 1 ms).
        window: Only wake-ups inside the window are recorded.
        heartbeat: Refreshed on every wake-up.
        name: The thread's name.
    """

    def __init__(self, interval_s: float, window: Window, heartbeat: Heartbeat, *,
                 name: str = "wsblock-probe") -> None:
        super().__init__(name=name, daemon=True)
        self.interval_s = interval_s
        self.window = window
        self.heartbeat = heartbeat
        self.histogram = LatencyHistogram()
        self._lags: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self.interval_s
        while not self._halt.is_set():
            before = time.monotonic()
            time.sleep(interval)
            now = time.monotonic()
            self.heartbeat.beat(now)
            # As in LagProbe: only sleeps wholly inside the window are samples.
            if before >= self.window.start and now < self.window.end:
                lag = now - before - interval
                self.histogram.record(lag)
                if lag > 0.001:
                    self._lags.append(lag)

    def late(self, threshold_s: float) -> int:
        """Count wake-ups in the window that were later than ``threshold_s``."""
        return sum(1 for lag in self._lags if lag > threshold_s)

    def stop(self) -> None:
        """Stop the thread and wait for it to end."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=max(1.0, 2 * self.interval_s))


def _site_of(frame) -> str:  # type: ignore[no-untyped-def]
    # Innermost frame, named by the last two path parts: enough to tell a
    # workload from the harness without leaking full paths into records.
    code = frame.f_code
    parts = code.co_filename.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{frame.f_lineno} {code.co_name}"


class Watchdog(threading.Thread):
    """A daemon thread that watches the heartbeat from outside the loop.

    Args:
        heartbeat: The loop's heartbeat.
        loop_thread_id: ``threading.get_ident()`` of the loop thread.
        poll_s: How often to look (10 ms keeps its own GIL demand small).
    """

    def __init__(self, heartbeat: Heartbeat, loop_thread_id: int, poll_s: float = 0.01) -> None:
        super().__init__(name="wsblock-watchdog", daemon=True)
        self.heartbeat = heartbeat
        self.loop_thread_id = loop_thread_id
        self.poll_s = poll_s
        self.stalls: list[Stall] = []
        self._sites: dict[float, collections.Counter[str]] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        hb = self.heartbeat
        while not self._halt.wait(self.poll_s):
            last = hb.last
            if time.monotonic() - last > hb.stall_s:
                # Sampled on every poll while the stall lasts: a long stall
                # (a slow import among other set-up) is named by where the
                # loop thread spent most of it, not by its first moment.
                frame = sys._current_frames().get(self.loop_thread_id)
                if frame is not None:
                    self._sites.setdefault(last, collections.Counter())[_site_of(frame)] += 1
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            while self.heartbeat.gaps:
                start, end = self.heartbeat.gaps.popleft()
                samples = self._sites.pop(start, None)
                site = samples.most_common(1)[0][0] if samples else None
                self.stalls.append(Stall(start, end, site))

    def stop(self) -> list[Stall]:
        """Stop the thread and return every stall seen so far."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=1.0)
        self._drain()
        return list(self.stalls)


def summarize_stalls(stalls: list[Stall], window: Window, *, probe_samples: int | None = None) -> dict[str, object]:
    """Summarise the stalls that overlap the window, clipped to it.

    Every length is the part of a stall inside the window, so a stall that
    began in the warm-up or outlasted the window counts only for the time
    the window saw (``max_whole_ms`` keeps the longest stall whole at its
    start, for reference; a stall still going at the window's end counts
    until then there too: nothing after the window is recorded).
    ``stalled_share`` is at most 1.

    Args:
        stalls: All stalls recorded.
        window: The measurement window.
        probe_samples: Samples of the lag probe; when it has fewer than
            :data:`FEW_PROBE_SAMPLES`, or stalls cover at least
            :data:`STALLED_SHARE_PRIMARY` of the window, the stall figures
            are the primary loop measure (``primary`` true): the probe only
            samples the time the loop ran, so its percentiles then describe
            the loop's free moments, not its stalls.
    """
    inside = [s for s in stalls if window.overlap(s.start, s.end) > 0]
    clipped = [window.overlap(s.start, s.end) for s in inside]
    total = sum(clipped)
    sites: dict[str, int] = {}
    for stall in inside:
        if stall.site:
            sites[stall.site] = sites.get(stall.site, 0) + 1
    return {
        "count": len(inside),
        "max_ms": round(max(clipped, default=0.0) * 1000.0, 3),
        "max_whole_ms": round(max((min(s.end, window.end) - s.start for s in inside), default=0.0) * 1000.0, 3),
        "total_ms": round(total * 1000.0, 3),
        "stalled_share": round(total / window.duration, 4) if window.duration > 0 else None,
        "per_s": round(len(inside) / window.duration, 4) if window.duration > 0 else None,
        "primary": (probe_samples is not None and probe_samples < FEW_PROBE_SAMPLES)
        or (window.duration > 0 and total / window.duration >= STALLED_SHARE_PRIMARY),
        "sampled": sum(1 for s in inside if s.site),
        "sites": dict(sorted(sites.items(), key=lambda kv: -kv[1])),
    }


FEW_PROBE_SAMPLES = 100
"""Below this many probe samples the stall figures lead (a p99 needs 100)."""

STALLED_SHARE_PRIMARY = 0.05
"""From this share of the window spent stalled, the stall figures lead."""


__all__ = ["Heartbeat", "LagProbe", "Stall", "ThreadProbe", "Watchdog", "summarize_stalls"]
