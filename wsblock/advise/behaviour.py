"""The function's own behaviour: how long one call takes, and how long it holds the GIL at once.

Two figures decide most of the advice before any strategy is compared:

* **call time**: p50, p95 and max over timed calls (:data:`CALLS` of them
  before the cells run, for a function without ``units``; otherwise every
  job the cells measured). Windows are sized on the longest call, not the
  median: a call that is usually short but sometimes long is judged by its
  long calls.
* **GIL hold**: the longest loop stall measured in the ``thread`` cells.
  There the function runs in a pool thread and the loop only waits for the
  GIL, so a stall is a time the function held the GIL at once (a C call
  that does not release it, or the conversion of a large result).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

CALLS = 10
"""Calls timed before the cells run (a function without ``units``)."""

CALLS_BUDGET_S = 30.0
"""Longest time spent on timing calls before the cells run; a slower function gets fewer (at least 2)."""

SPREAD = 3.0
"""Warn when the longest call is more than this many times the median: rare long calls escape short windows."""


@dataclass(frozen=True)
class CallTimes:
    """Call time of the function, in ms.

    Attributes:
        source: Where the times come from, in words.
        n: Calls (or jobs) the figures rest on.
        p50: Median call.
        p95: 95th percentile (``None`` when the source does not keep it).
        max: Longest call.
        timed: Timed in this process before the cells ran (else: jobs the cells measured).
    """

    source: str
    n: int
    p50: float
    p95: float | None
    max: float
    timed: bool = True

    @property
    def spread(self) -> float:
        """Longest call over the median (``nan`` without a median)."""
        return self.max / self.p50 if self.p50 > 0 else math.nan

    @property
    def uneven(self) -> bool:
        """Whether the longest call is more than :data:`SPREAD` x the median."""
        return math.isfinite(self.spread) and self.spread > SPREAD


@dataclass(frozen=True)
class GilHold:
    """The longest time the function held the GIL at once, from the thread cells.

    Attributes:
        ms: Longest loop stall in the thread cells (``None``: no thread cell measured).
        repeats: Thread repeats measured.
        stall_ms: The stall threshold: holds shorter than this are not recorded.
        stalled_repeats: Repeats with a stall over the threshold.
    """

    ms: float | None
    repeats: int
    stall_ms: float
    stalled_repeats: int = 0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, linear between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def calls_to_time(first_ms: float, *, calls: int = CALLS, budget_s: float = CALLS_BUDGET_S) -> int:
    """How many calls to time before the cells run, given the first call's length."""
    if first_ms <= 0:
        return calls
    return max(2, min(calls, int(budget_s * 1000.0 // first_ms)))


def from_calls(times: Sequence[float]) -> CallTimes:
    """The call-time figures of calls timed in this process."""
    return CallTimes(f"{len(times)} calls timed before the cells ran", len(times), percentile(times, 0.5),
                     percentile(times, 0.95) if len(times) >= 2 else None, max(times))


def from_records(records: Sequence[Mapping[str, Any]]) -> CallTimes | None:
    """The call-time figures of every job the cells measured (``None`` without one).

    Records keep each repeat's median and longest job, not every job: the
    median is the median of the repeats' medians, the longest is the longest
    job of any repeat, and no p95 is given. Jobs of ``inline`` cells run the
    function alone, so they are preferred when there are any.
    """
    ok = [r for r in records if r.get("status") == "ok"]
    inline = [r for r in ok if (r.get("params") or {}).get("strategy") == "inline"]
    chosen = inline or ok
    medians, longest, jobs = [], [], 0
    for r in chosen:
        job = r.get("job_ms") or {}
        p50 = job.get("completed_p50") or job.get("p50")
        top = job.get("max")
        if isinstance(p50, (int, float)) and p50 > 0:
            medians.append(float(p50))
        if isinstance(top, (int, float)) and top > 0:
            longest.append(float(top))
        jobs += int(job.get("completed") or job.get("samples") or 0)
    if not medians or not longest:
        return None
    which = "the inline cells" if inline else "the cells of every strategy"
    return CallTimes(f"{jobs} jobs measured in {which}", jobs, percentile(medians, 0.5), None,
                     max(longest), timed=False)


def gil_hold(records: Sequence[Mapping[str, Any]], stall_ms: float) -> GilHold:
    """The longest loop stall in the ``thread`` cells' ok records."""
    thread = [r for r in records if r.get("status") == "ok" and (r.get("params") or {}).get("strategy") == "thread"]
    stalls = [float(((r.get("stalls") or {}).get("max_ms")) or 0.0) for r in thread]
    return GilHold(max(stalls) if stalls else None, len(thread), stall_ms, sum(s > 0 for s in stalls))


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def lines(calls: CallTimes | None, hold: GilHold, *, ping_timeout: float | None, budget_ms: float | None,
          params: Sequence[tuple[str, Any]], other: CallTimes | None = None,
          releases_gil: bool = False) -> list[str]:
    """The function's behaviour in plain words, printed before the verdict table.

    Args:
        calls: The call times shown.
        hold: The GIL hold from the thread cells.
        ping_timeout: The user's ``ping_timeout``.
        budget_ms: The user's call-time budget.
        params: The function's arguments as given.
        other: Call times from the other source (jobs in the cells, or calls
            timed before them): a longer call there is shown and counts.
        releases_gil: The workload says it releases the GIL, so a stall
            beside its thread cells is not read as a GIL hold.
    """
    measured_max_ms = other.max if other is not None else None
    out = []
    if calls is None:
        out.append("call time: no call was timed")
    else:
        p95 = "" if calls.p95 is None else f", p95 {_ms(calls.p95)} ms"
        out.append(f"one call takes p50 {_ms(calls.p50)} ms{p95}, max {_ms(calls.max)} ms ({calls.source})")
        longest_seen = calls.max
        if other is not None and measured_max_ms is not None and measured_max_ms > calls.max:
            out.append(f"  the cells measured a longer job: {_ms(measured_max_ms)} ms" if other.timed is False
                       else f"  a call timed before the cells ran took longer: {_ms(measured_max_ms)} ms")
            longest_seen = measured_max_ms
        spread = longest_seen / calls.p50 if calls.p50 > 0 else math.nan
        if math.isfinite(spread) and spread > SPREAD:
            out.append(f"warning: the longest call is {spread:.1f} x the median (over {SPREAD:g} x): rare "
                       f"long calls escape short windows; windows were sized on the longest call, and a "
                       f"production-sized input (--param) or a call-time budget (--call-budget-ms) checks more")
    if hold.ms is None:
        out.append("GIL hold: not measured (no thread cell)")
    elif hold.ms > 0 and releases_gil:
        # A workload that releases the GIL cannot hold it for this long:
        # the loop waited for something else (a machine too busy to run it).
        out.append(f"the loop stalled for up to {_ms(hold.ms)} ms beside the thread cells although the function "
                   f"releases the GIL ({hold.stalled_repeats} of {hold.repeats} repeats stalled): not a GIL hold "
                   f"(a machine too busy to run the loop?)")
    elif hold.ms <= 0:
        out.append(f"no call held the GIL for more than {hold.stall_ms:g} ms at once (no loop stall over "
                   f"{hold.stall_ms:g} ms beside the function in {hold.repeats} thread repeats): a thread pool "
                   f"can keep the loop free")
    else:
        verdict = ("a thread pool cannot keep the loop free" if hold.ms > hold.stall_ms
                   else "a thread pool can keep the loop free")
        timeout = ""
        if ping_timeout is not None and hold.ms > ping_timeout * 1000.0:
            timeout = f", longer than ping_timeout {ping_timeout:g} s"
        out.append(f"one call holds the GIL for up to {_ms(hold.ms)} ms{timeout} (the longest loop stall in the "
                   f"thread cells, {hold.stalled_repeats} of {hold.repeats} repeats stalled): {verdict}")
    longest = max([x for x in (calls.max if calls else None, measured_max_ms) if x is not None], default=None)
    if budget_ms is not None:
        if longest is None:
            out.append(f"call-time budget {_ms(budget_ms)} ms: no call was timed to check it against")
        elif longest <= budget_ms:
            # The budget says production calls may be that long: the cells
            # measured shorter ones, so the advice covers only those.
            out.append(f"call-time budget {_ms(budget_ms)} ms: every call measured was within it (longest "
                       f"{_ms(longest)} ms); calls as long as the budget were not measured, so this advice holds "
                       f"for calls up to {_ms(longest)} ms: give a production-sized input with --param to cover more")
        else:
            out.append(f"call-time budget {_ms(budget_ms)} ms: exceeded, the longest call took {_ms(longest)} ms")
    given = ", ".join(f"{k}={v}" for k, v in params)
    out.append(f"input: {given}" if given else
               "input: the function's default arguments; pass a production-sized input with --param KEY=VALUE")
    return out


__all__ = ["CALLS", "CALLS_BUDGET_S", "CallTimes", "GilHold", "SPREAD", "calls_to_time", "from_calls",
           "from_records", "gil_hold", "lines", "percentile"]
