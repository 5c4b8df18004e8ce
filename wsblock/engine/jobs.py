"""Jobs the window cannot truncate: completed work, partial work, censored times.

A window shorter than a job (or than the queue of jobs in front of it) would
otherwise show "0 jobs/s" and no job time although the server worked the
whole time. The ledger keeps every job of the load that overlapped the
window, with its start and, once known, its end, and counts:

* **work inside the window**, in jobs: each job contributes the share of its
  run time that fell inside the window, assuming it progresses evenly over
  its wall time. A job still running when the server stops has no end yet;
  its share is the time it ran inside the window over the longer of the time
  it has run and the calibrated job length (the job is at least that long);
* **job times**: jobs completed by the window's end with the time measured
  where the work ran; every other job as a *censored* observation, with the
  time it had run by the window's end (a lower bound). Nothing after the
  window's end is recorded, so a record does not depend on how soon the
  server stopped (and the next cell may start as soon as the window ends).
  A job the server cut off (see :mod:`wsblock.engine.cutoff`) did no work
  after the window's end either; one that had not begun by then did none.

A job's start is when the server handed it to the strategy, so time queued
for a busy pool counts as run time; with the default pool (one worker per job
connection) nothing queues.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window

MAX_KEPT = 100_000
"""Completed job times kept for the exact median (beyond, only the histogram)."""


@dataclass
class JobLedger:
    """Jobs of the load's connections, on the server's monotonic clock."""

    window: Window
    expected_s: float | None = None
    _running: dict[int, float] = field(default_factory=dict)
    _done: list[tuple[float, float]] = field(default_factory=list)
    _cut: list[tuple[float, float, bool]] = field(default_factory=list)
    _wall_ms: list[float] = field(default_factory=list)
    wall: LatencyHistogram = field(default_factory=LatencyHistogram)
    cpu: LatencyHistogram = field(default_factory=LatencyHistogram)
    _next: int = 0

    def start(self, at: float) -> int:
        """Record a job handed to the strategy at ``at``; return its ticket."""
        ticket = self._next
        self._next += 1
        self._running[ticket] = at
        return ticket

    def finish(self, ticket: int, at: float, *, wall_ms: float, cpu_ms: float) -> None:
        """Record the end of a job and the times measured where it ran."""
        started = self._running.pop(ticket, None)
        if started is None:
            return
        if started < self.window.end and at >= self.window.end:
            # Ended after the window: censored at its end, like a job still
            # running (its time after the window is not the window's).
            self._cut.append((started, self.window.end, True))
        elif started < self.window.end and at >= self.window.start:
            self._done.append((started, at))
            self.wall.record(wall_ms / 1000.0)
            self.cpu.record(cpu_ms / 1000.0)
            if len(self._wall_ms) < MAX_KEPT:
                self._wall_ms.append(wall_ms)

    def cut(self, ticket: int, at: float, *, worked: bool) -> None:
        """Record a job the window's end cut off at ``at``: censored there.

        Args:
            ticket: The job's ticket.
            at: When it was cut (monotonic seconds).
            worked: Whether its work had begun (an interrupted job) or not (a
                job that waited in the pool until the window had ended).
        """
        started = self._running.pop(ticket, None)
        if started is not None and started < self.window.end:
            self._cut.append((started, at, worked))

    def abandon(self, ticket: int) -> None:
        """Forget a job that failed."""
        self._running.pop(ticket, None)

    @property
    def in_flight(self) -> int:
        """Jobs started and not finished."""
        return len(self._running)

    def summary(self, stopped_at: float) -> dict[str, Any]:
        """Work and job times of the window, the server having stopped at ``stopped_at``.

        Returns:
            ``work`` (jobs' worth of work inside the window and its parts) and
            ``job_ms`` / ``job_cpu_ms`` (histogram summaries; ``job_ms``
            includes running jobs as censored observations).
        """
        w = self.window
        completed_in_window = sum(1 for _, end in self._done if w.contains(end))
        work = 0.0
        partial = 0
        for start, end in self._done:
            inside = w.overlap(start, end)
            share = inside / (end - start) if end > start else (1.0 if w.contains(end) else 0.0)
            work += share
            partial += share < 1.0
        censored = LatencyHistogram()
        running = 0
        estimated = 0.0
        open_jobs = [(start, stopped_at, True) for start in self._running.values() if start < w.end]
        for start, until, worked in open_jobs + self._cut:
            until = min(until, w.end)  # censored at the window's end at the latest
            ran = max(0.0, until - start)
            inside = w.overlap(start, min(until, w.end))
            length = max(ran, self.expected_s or 0.0)
            if worked and length > 0:
                estimated += inside / length
            running += 1
            censored.record(ran)
        job_ms = _merge(self.wall, censored)
        job_ms["completed"] = len(self._done)
        job_ms["n_censored"] = running
        job_ms["lower_bound"] = running > 0
        job_ms["in_flight_at_stop"] = self.in_flight
        job_ms["ended_after_window"] = len(self._cut)
        job_ms["completed_p50"] = round(statistics.median(self._wall_ms), 3) if self._wall_ms else None
        return {
            "work": {
                "jobs_in_window": round(work + estimated, 4),
                "completed_in_window": completed_in_window,
                "partial_jobs": partial + running,
                "running_at_end": running,
                "estimated_jobs": round(estimated, 4),
            },
            "job_ms": job_ms,
            "job_cpu_ms": self.cpu.summary(("p50", "p90", "p99")),
        }


def _merge(done: LatencyHistogram, censored: LatencyHistogram) -> dict[str, Any]:
    merged = LatencyHistogram()
    merged.merge(done)
    merged.merge(censored)
    return merged.summary(("p50", "p90", "p99"))
