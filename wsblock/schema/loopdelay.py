"""The loop figure to draw: how long the server's loop kept a waiting task waiting.

Two instruments see the loop. The in-loop probe sleeps about 1 ms and records
how late it woke, one sample per wake-up: a loop blocked for 4 s yields one
sample for those 4 s, and a stall that spans the window's start or end may
yield none inside the window, so a blocked loop's probe has a handful of
samples whose "p99" or maximum can be a few milliseconds. Even with hundreds
of samples its percentiles count wake-ups, not time: a loop stalled for 97 %
of its window can show a p99 of a third of its longest stall. The watchdog
times every gap between the loop's heartbeats longer than ``stall_ms`` (a
*stall*) exactly, however long, clipped to the window.

A keepalive ping arrives at some moment and waits for as long as the loop
stays blocked after it, so the figure a ping budget is compared with is the
longest stall (``stalls.max_ms``). Where the watchdog saw a stall, that is
the figure: it bounds from above the lateness at every percentile over time,
and it is what the loop did at worst. Only where the loop never stalled is
the probe's p99 the figure (every wake-up was then less than ``stall_ms``
late), and only when the probe woke the :data:`FEW_PROBE_SAMPLES` times a
p99 needs. A thin probe over a loop that never stalled gives no figure
(NaN); a figure may then show the probe's maximum as a marked stand-in,
which the watchdog did not contradict.

The record's own ``stalls.primary`` (a thin probe, or stalls over 5 % of the
window; the ``stalls_primary`` column) orders the run's printed summary; the
figure reads the watchdog at any stall, so no threshold can hide one.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

FEW_PROBE_SAMPLES = 100
"""Below this many probe samples inside the window the probe's p99 is not a figure (a p99 needs 100)."""


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def loop_delay_ms(probe_p99_ms: Any, probe_samples: Any, stall_max_ms: Any) -> float:
    """The loop figure of one repeat, in ms (NaN: nothing honest to show).

    Args:
        probe_p99_ms: The probe's p99 (``loop_lag_ms.p99``; None when withheld).
        probe_samples: The probe's wake-ups inside the window.
        stall_max_ms: The longest stall inside the window (``stalls.max_ms``;
            0 when there was none, None when the record has no stall figures).

    Returns:
        The longest stall where the watchdog saw one, raised to the probe's
        p99 should that be larger; the probe's p99 where the loop never
        stalled (or the record has no stall figures) and the probe woke at
        least :data:`FEW_PROBE_SAMPLES` times; NaN otherwise.
    """
    p99, samples, longest = _number(probe_p99_ms), _number(probe_samples), _number(stall_max_ms)
    probe = p99 if not math.isnan(samples) and samples >= FEW_PROBE_SAMPLES else math.nan
    if not math.isnan(longest) and longest > 0:
        return longest if math.isnan(probe) else max(longest, probe)
    return probe


def read(record: Mapping[str, Any]) -> float:
    """:func:`loop_delay_ms` of a (version-upgraded) record."""
    lag = record.get("loop_lag_ms")
    stalls = record.get("stalls")
    lag = lag if isinstance(lag, Mapping) else {}
    stalls = stalls if isinstance(stalls, Mapping) else {}
    return loop_delay_ms(lag.get("p99"), lag.get("samples"), stalls.get("max_ms"))


__all__ = ["FEW_PROBE_SAMPLES", "loop_delay_ms", "read"]
