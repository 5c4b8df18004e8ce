"""The loop figure to draw: how long the server's loop kept a waiting task waiting.

Two instruments see the loop. The in-loop probe sleeps about 1 ms and records
how late it woke, one sample per wake-up: a loop blocked for 4 s yields one
sample for those 4 s, and a stall that spans the window's start or end may
yield none inside the window, so a blocked loop's probe has a handful of
samples whose "p99" or maximum can be a few milliseconds. The watchdog times
every gap between the loop's heartbeats (a *stall*) exactly, however long.

A percentile over *time* rather than over wake-ups is what a keepalive ping
feels: a ping arrives at a uniform moment, and waits for as long as the loop
stays blocked after that moment. Where stalls cover at least
:data:`STALLED_SHARE_TIME_P99` of the window, that 99th percentile over time
lies inside a stall, and is at most the longest stall: the figure is then
the longest stall (``stalls.max_ms``), the number a ping budget is compared
with. Where stalls cover less, the 99th percentile over time lies in the
loop's free time, which the probe samples evenly (about one wake-up per
millisecond), so the probe's p99 stands for it, provided the probe has the
:data:`FEW_PROBE_SAMPLES` a p99 needs. A probe with fewer samples is never
the figure: the longest stall is, when the watchdog saw one; otherwise the
figure is withheld (NaN), and a figure may show the probe's maximum as a
marked stand-in, which the watchdog then did not contradict.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

STALLED_SHARE_TIME_P99 = 0.01
"""From this share of the window spent stalled, the 99th percentile over time lies in a stall."""

FEW_PROBE_SAMPLES = 100
"""Below this many probe samples inside the window the probe's p99 is not a figure (a p99 needs 100)."""


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def loop_delay_ms(probe_p99_ms: Any, probe_samples: Any, stall_max_ms: Any, stalled_share: Any) -> float:
    """The loop figure of one repeat, in ms (NaN: nothing honest to show).

    Args:
        probe_p99_ms: The probe's p99 (``loop_lag_ms.p99``; None when withheld).
        probe_samples: The probe's wake-ups inside the window.
        stall_max_ms: The longest stall inside the window (``stalls.max_ms``;
            0 when there was none, None when the record has no stall figures).
        stalled_share: Time stalled / window length (None when unknown).

    Returns:
        The longest stall where stalls cover at least
        :data:`STALLED_SHARE_TIME_P99` of the window (or the share is
        unknown) or the probe is thin, raised to the probe's p99 if that is
        larger; the probe's p99 where the loop stalled less and the probe has
        enough samples; NaN when the probe is thin and the watchdog saw no
        stall (or the record has neither figure).
    """
    p99, samples = _number(probe_p99_ms), _number(probe_samples)
    longest, share = _number(stall_max_ms), _number(stalled_share)
    thin = math.isnan(p99) or math.isnan(samples) or samples < FEW_PROBE_SAMPLES
    # An unknown share is read as a stalled loop: the watchdog's figure, when
    # there is one, can only make the cell look worse.
    stalled = math.isnan(share) or share >= STALLED_SHARE_TIME_P99
    if not thin and not stalled:
        return p99
    if math.isnan(longest) or longest <= 0:
        # No stall seen: a well-sampled probe is all there is; a thin one is withheld.
        return math.nan if thin else p99
    return longest if thin or math.isnan(p99) else max(longest, p99)


def read(record: Mapping[str, Any]) -> float:
    """:func:`loop_delay_ms` of a (version-upgraded) record."""
    lag = record.get("loop_lag_ms")
    stalls = record.get("stalls")
    lag = lag if isinstance(lag, Mapping) else {}
    stalls = stalls if isinstance(stalls, Mapping) else {}
    return loop_delay_ms(lag.get("p99"), lag.get("samples"), stalls.get("max_ms"), stalls.get("stalled_share"))


__all__ = ["FEW_PROBE_SAMPLES", "STALLED_SHARE_TIME_P99", "loop_delay_ms", "read"]
