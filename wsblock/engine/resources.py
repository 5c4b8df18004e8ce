"""CPU seconds and peak memory of a process and its children over the window.

Memory: a sampler thread inside the measured process samples resident memory
a few times a second (:class:`ResourceSampler`).

CPU: read from outside the measured process (:func:`tree_cpu`, taken by the
runner when the window opens and when it closes, :func:`window_cpu`). A thread
inside the process cannot do it: while a C call holds the GIL across the
window's start or end, the thread takes its snapshot late, and the figures
then cover a fraction of the window (or none of it). The kernel's CPU times
of another process can be read at any moment, whatever that process does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import psutil

from wsblock.engine.window import Window


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class ResourceSampler(threading.Thread):
    """Sample the resident memory of a process and its descendants until a window ends.

    Args:
        proc: The process to watch (usually this one).
        window: The measurement window.
        extra_pids: Returns pids to include besides descendants (pool
            workers are descendants, but the strategy knows them first).
        period_s: Memory sampling period.
    """

    def __init__(
        self,
        proc: psutil.Process,
        window: Window,
        extra_pids: Callable[[], list[int]] = list,
        period_s: float = 0.2,
    ) -> None:
        super().__init__(name="wsblock-resources", daemon=True)
        self.proc = proc
        self.window = window
        self.extra_pids = extra_pids
        self.period_s = period_s
        self._halt = threading.Event()
        self._children: dict[int, psutil.Process] = {}
        self.peak_rss = 0
        self.peak_children_rss = 0
        self.max_workers_seen = 0
        self.samples = 0

    def _descendants(self) -> list[psutil.Process]:
        try:
            found = {p.pid: p for p in self.proc.children(recursive=True)}
        except psutil.Error:
            found = {}
        for pid in self.extra_pids():
            if pid not in found:
                try:
                    found[pid] = psutil.Process(pid)
                except psutil.Error:
                    pass
        # Keep Process objects stable so cpu_times() refers to the same process.
        for pid, proc in found.items():
            self._children.setdefault(pid, proc)
        return [self._children[pid] for pid in found]

    def _sample_memory(self) -> None:
        try:
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        except psutil.Error:
            pass
        total = 0
        kids = self._descendants()
        for child in kids:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak_children_rss = max(self.peak_children_rss, total)
        self.max_workers_seen = max(self.max_workers_seen, len(kids))

    def run(self) -> None:
        while time.monotonic() < self.window.end and not self._halt.is_set():
            self._sample_memory()
            self.samples += 1
            self._halt.wait(min(self.period_s, max(0.0, self.window.end - time.monotonic())))

    def stop(self) -> dict[str, Any]:
        """Stop sampling and return the measurements.

        Returns:
            Peak resident memory in MiB of the process and of its
            descendants together, and the most descendants seen at once.
        """
        self._halt.set()
        if self.is_alive():
            # A sample begun just before the window's end may still be
            # scanning the process tree; it is not waited for long (the
            # peaks so far stand).
            self.join(timeout=0.05)
        if not self.samples:
            # No sample in the window (a C call held the GIL throughout):
            # one now, after it. Otherwise none: the scan of the process
            # tree costs a busy server (threads competing for the GIL) a
            # second or more and would add nothing the window's samples
            # (every period_s up to its end) lack.
            self._sample_memory()
        out: dict[str, Any] = {
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
            "workers_peak_rss_mib": round(self.peak_children_rss / 2**20, 1),
            "processes_seen": self.max_workers_seen,
        }
        return out


CPU_MEASURED_BY = "runner"
"""Who read the server's CPU times (``resources.server.cpu_measured_by``)."""

CPU_LATE_S = 0.05
"""A CPU snapshot may be this late (plus :data:`CPU_LATE_SHARE` of the window)."""

CPU_LATE_SHARE = 0.01
"""The part of the allowed lateness that grows with the window."""


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of a process and of each of its descendants at one instant.

    Attributes:
        t: ``time.monotonic()`` when they were read.
        own: The process's own user + system seconds.
        descendants: ``(pid, create_time)`` -> user + system seconds of each
            descendant (the creation time tells a reused pid apart).
    """

    t: float
    own: float
    descendants: dict[tuple[int, float], float]


def tree_cpu(pid: int) -> TreeCpu:
    """Read the CPU times of process ``pid`` and of all its descendants, now.

    A descendant that ends while it is read is left out.

    Raises:
        psutil.Error: Process ``pid`` cannot be read (it has gone).
    """
    root = psutil.Process(pid)
    own = _cpu_seconds(root)
    t = time.monotonic()
    found: dict[tuple[int, float], float] = {}
    try:
        kids = root.children(recursive=True)
    except psutil.Error:
        kids = []
    for kid in kids:
        try:
            with kid.oneshot():
                found[(kid.pid, kid.create_time())] = _cpu_seconds(kid)
        except psutil.Error:
            continue
    return TreeCpu(t=t, own=own, descendants=found)


def window_cpu(before: TreeCpu | None, after: TreeCpu | None, *, start: float, end: float,
               missing: str | None = None) -> dict[str, Any]:
    """The CPU of a process and its descendants over a window, from two snapshots.

    The figures are given only when the snapshots enclose the window to
    within :data:`CPU_LATE_S` plus :data:`CPU_LATE_SHARE` of its length; a
    descendant that ended between them took CPU time nobody can read any
    more, so the workers' figures are then withheld. Whatever is withheld
    is ``None``, and ``cpu_missing`` says why.

    Args:
        before: Taken when the window opened (``None``: not taken).
        after: Taken when it closed.
        start: The window's start, monotonic seconds.
        end: The window's end.
        missing: Why a snapshot is absent, when one is.

    Returns:
        ``cpu_s`` and ``cpu_util`` of the process, ``workers_cpu_s`` and
        ``workers_cpu_util`` of its descendants (utilisation: CPU seconds
        per elapsed second between the snapshots, so 1.0 is one core busy),
        ``interval_s`` between the snapshots, ``cpu_late_ms`` (how late
        each snapshot was), ``cpu_measured_by`` and ``cpu_missing``.
    """
    out: dict[str, Any] = {"cpu_s": None, "workers_cpu_s": None, "cpu_util": None, "workers_cpu_util": None,
                           "interval_s": None, "cpu_late_ms": None, "cpu_measured_by": CPU_MEASURED_BY,
                           "cpu_missing": None}
    if before is None or after is None:
        out["cpu_missing"] = missing or "the server's CPU times were not read at the window's start and end"
        return out
    late = (before.t - start, after.t - end)
    out["cpu_late_ms"] = {"start": round(late[0] * 1000, 1), "end": round(late[1] * 1000, 1)}
    allowed = CPU_LATE_S + CPU_LATE_SHARE * (end - start)
    if not all(-allowed <= x <= allowed for x in late):
        out["cpu_missing"] = (f"the server's CPU times were read {late[0] * 1000:.0f} ms from the window's "
                              f"start and {late[1] * 1000:.0f} ms from its end (allowed: "
                              f"{allowed * 1000:.0f} ms)")
        return out
    elapsed = max(1e-9, after.t - before.t)
    own = max(0.0, after.own - before.own)
    out.update({"cpu_s": round(own, 3), "cpu_util": round(own / elapsed, 3), "interval_s": round(elapsed, 3)})
    ended = [key for key in before.descendants if key not in after.descendants]
    if ended:
        out["cpu_missing"] = (f"{len(ended)} of the server's child processes ended during the window; "
                              "their CPU time after the window opened cannot be read, so the workers' "
                              "figures are left out")
        return out
    workers = sum(cpu - before.descendants.get(key, 0.0) for key, cpu in after.descendants.items())
    workers = max(0.0, workers)
    out.update({"workers_cpu_s": round(workers, 3), "workers_cpu_util": round(workers / elapsed, 3)})
    return out


def machine_busy(before: Any, after: Any) -> tuple[float, float]:
    """Share of all cores busy between two ``psutil.cpu_times()`` snapshots.

    Returns:
        ``(share, busy_cores)``: the share of the machine's CPU time spent
        busy, and that share times the number of cores.
    """
    share, _ = _shares(before, after)
    return share, share * (psutil.cpu_count() or 1)


def machine_niced_cores(before: Any, after: Any) -> float:
    """Cores busy with processes at lower priority (positive nice).

    The kernel counts their user time apart (``nice`` in ``/proc/stat``).
    Work at a lower priority yields the CPU to the cell's processes, so it
    makes a machine look busy without taking the CPU from the measurement.
    """
    _, niced = _shares(before, after)
    return niced * (psutil.cpu_count() or 1)


def _shares(before: Any, after: Any) -> tuple[float, float]:
    def busy(t: Any) -> float:
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
                     + getattr(t, "steal", 0))

    total = sum(after) - sum(before)
    if total <= 0:
        return 0.0, 0.0
    niced = max(0.0, float(getattr(after, "nice", 0) - getattr(before, "nice", 0)))
    return (busy(after) - busy(before)) / total, niced / total
