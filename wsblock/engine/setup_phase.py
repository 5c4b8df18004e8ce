"""The server's set-up, kept out of the window, and the stalls before the window.

Before it says ``ready``, the server imports everything its cell will call
(the workload catalogue and the cell's ``module:function``) on the thread
that will serve the jobs, and its strategy calls the work once where it will
run it (the loop's thread for ``inline`` and ``chunked``, each pool worker
for ``thread`` and ``process``). A module that is slow to import, a first
call that fills caches, a pool's start: all of it happens before any
connection exists, so nothing of the harness can stall the loop inside the
window.

The loop's heartbeat and the watchdog run from the server's start, so stalls
before the window are still seen, with their sites. They fall in two
phases:

* ``setup``: from the server's start until it said ``ready``: the harness's
  own set-up. Never charged to a strategy: even if one reached into the
  window, it is left out of the window's stall figures (and the warning
  ``stalled_at_window_start`` says so).
* ``warmup``: from ``ready`` until the window opens (the load connects and
  its first jobs run). Such a stall belongs to the cell; the part of it
  inside the window counts there like any other.
"""

from __future__ import annotations

import time
from typing import Any

import workloads
from wsblock.engine.probe import Stall
from wsblock.engine.window import Window


BREATH_S = 0.01
"""Free loop time between two steps of the set-up (the lag probe beats every millisecond)."""


def import_catalogue() -> float:
    """Import the workload catalogue (the built-in workloads) on this thread; return the milliseconds it took."""
    started = time.perf_counter()
    workloads.names()
    return (time.perf_counter() - started) * 1000.0


def import_work(name: str) -> float:
    """Import the workload ``name`` (a function's module) on this thread; return the milliseconds it took.

    The server's handler looks its workload up on every job: after this and
    :func:`import_catalogue`, the lookup imports nothing.
    """
    started = time.perf_counter()
    workloads.get(name)
    return (time.perf_counter() - started) * 1000.0


def is_setup(stall: Stall, ready_at: float) -> bool:
    """Whether a stall began during the harness's set-up (before ``ready``)."""
    return stall.start < ready_at


def _phase(stalls: list[Stall], window: Window) -> dict[str, Any]:
    sites: dict[str, int] = {}
    for stall in stalls:
        if stall.site:
            sites[stall.site] = sites.get(stall.site, 0) + 1
    return {
        "count": len(stalls),
        "longest_ms": round(max((s.length for s in stalls), default=0.0) * 1000.0, 3),
        "total_ms": round(sum(min(s.end, window.start) - s.start for s in stalls) * 1000.0, 3),
        "sites": dict(sorted(sites.items(), key=lambda kv: -kv[1])),
    }


def before_window(stalls: list[Stall], window: Window, *, ready_at: float,
                  setup_ms: dict[str, float | None] | None = None) -> dict[str, Any]:
    """The record's ``stalls.before_window``: stalls that began before the window opened.

    Args:
        stalls: Every stall the watchdog saw.
        window: The measurement window.
        ready_at: When the server finished its set-up and said ``ready``
            (monotonic seconds).
        setup_ms: How long each step of the set-up took (for the record).

    Returns:
        ``count``, ``longest_ms`` (whole stalls), ``total_ms`` (their time
        before the window), ``sites``, the same per phase under ``setup``
        and ``warmup``, and ``at_window_start``: the stall going on when the
        window opened (``null`` if none), with its ``phase``, ``site``,
        ``began_ms_before`` and ``ms_into_window``.
    """
    before = [s for s in stalls if s.start < window.start]
    setup = [s for s in before if is_setup(s, ready_at)]
    warmup = [s for s in before if not is_setup(s, ready_at)]
    crossing = [s for s in before if s.end > window.start]
    at_start = None
    if crossing:
        stall = max(crossing, key=lambda s: s.end)
        at_start = {
            "phase": "setup" if is_setup(stall, ready_at) else "warmup",
            "site": stall.site,
            "began_ms_before": round((window.start - stall.start) * 1000.0, 3),
            "ms_into_window": round((min(stall.end, window.end) - window.start) * 1000.0, 3),
        }
    out = _phase(before, window)
    out["setup"] = _phase(setup, window)
    out["warmup"] = _phase(warmup, window)
    out["at_window_start"] = at_start
    out["setup_steps_ms"] = {k: (None if v is None else round(v, 3)) for k, v in (setup_ms or {}).items()}
    return out


def strategy_stalls(stalls: list[Stall], ready_at: float) -> list[Stall]:
    """The stalls that may be charged to the cell: every one that began after the set-up."""
    return [s for s in stalls if not is_setup(s, ready_at)]


__all__ = ["BREATH_S", "before_window", "import_catalogue", "import_work", "is_setup", "strategy_stalls"]
