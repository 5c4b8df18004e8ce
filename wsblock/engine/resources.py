"""CPU seconds and peak memory of a process and its children over the window.

A sampler thread takes CPU-time snapshots when the window opens and closes and
samples resident memory a few times a second. CPU times come from the kernel,
so they are exact even when the sampler itself runs late (for example while a
C call holds the GIL); the utilisation figures divide by the interval that
really elapsed between the snapshots.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import psutil

from wsblock.engine.window import Window


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class ResourceSampler(threading.Thread):
    """Measure a process and its descendants across a window.

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
        self._start: dict[str, float] | None = None
        self._end: dict[str, float] | None = None
        self.peak_rss = 0
        self.peak_children_rss = 0
        self.max_workers_seen = 0

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

    def _snapshot(self) -> dict[str, float]:
        children = 0.0
        for child in self._descendants():
            try:
                children += _cpu_seconds(child)
            except psutil.Error:
                pass
        return {"t": time.monotonic(), "self": _cpu_seconds(self.proc), "children": children}

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
        while time.monotonic() < self.window.start and not self._halt.is_set():
            self._sample_memory()
            self._halt.wait(min(self.period_s, max(0.0, self.window.start - time.monotonic())))
        if self._halt.is_set():
            return
        self._start = self._snapshot()
        while time.monotonic() < self.window.end and not self._halt.is_set():
            self._sample_memory()
            self._halt.wait(min(self.period_s, max(0.0, self.window.end - time.monotonic())))
        self._end = self._snapshot()

    def stop(self) -> dict[str, Any]:
        """Stop sampling and return the measurements.

        Returns:
            ``cpu_s`` of this process and of its children over the window,
            their utilisation (CPU seconds per elapsed second, so 1.0 is one
            core busy), and peak resident memory in MiB.
        """
        self._halt.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self._sample_memory()
        out: dict[str, Any] = {
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
            "workers_peak_rss_mib": round(self.peak_children_rss / 2**20, 1),
            "processes_seen": self.max_workers_seen,
        }
        if self._start and self._end:
            elapsed = max(1e-9, self._end["t"] - self._start["t"])
            server = self._end["self"] - self._start["self"]
            workers = max(0.0, self._end["children"] - self._start["children"])
            out.update(
                {
                    "cpu_s": round(server, 3),
                    "workers_cpu_s": round(workers, 3),
                    "cpu_util": round(server / elapsed, 3),
                    "workers_cpu_util": round(workers / elapsed, 3),
                    "interval_s": round(elapsed, 3),
                }
            )
        else:
            out.update({"cpu_s": None, "workers_cpu_s": None, "cpu_util": None,
                        "workers_cpu_util": None, "interval_s": None})
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
