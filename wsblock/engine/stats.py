"""Latency histograms and their summaries.

Values are recorded in microseconds in an HDR histogram (3 significant
digits, 1 us to 1 h), so percentiles keep their precision at every scale
and memory stays constant however long the window.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}

MIN_SAMPLES = {"p50": 1, "p90": 10, "p99": 100, "p999": 1000}
"""Fewest samples a percentile is reported from.

With fewer than ``100 / (100 - q)`` samples the q-th percentile is just the
largest sample, so it is withheld (``null``, listed under ``withheld``) and
the summary's ``max`` and ``samples`` say what there is: "max of n".
"""


class LatencyHistogram:
    """A histogram of durations, fed in seconds, summarised in ms."""

    def __init__(self) -> None:
        self._hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
        self._max_s = 0.0

    def record(self, seconds: float) -> None:
        """Add one duration (negative values count as zero)."""
        us = int(round(seconds * 1e6))
        self._hist.record_value(min(max(us, _LOWEST_US), _HIGHEST_US))
        self._max_s = max(self._max_s, seconds)

    def merge(self, other: "LatencyHistogram") -> None:
        """Add every value of ``other`` to this histogram."""
        self._hist.add(other._hist)
        self._max_s = max(self._max_s, other._max_s)

    @property
    def count(self) -> int:
        """Number of recorded values."""
        return int(self._hist.get_total_count())

    def summary(self, keys: tuple[str, ...] = ("p50", "p90", "p99", "p999")) -> dict[str, Any]:
        """Return percentiles and the exact maximum in ms, plus the sample count.

        Percentile values are ``None`` when nothing was recorded (an empty
        window has no latency, and zero would be a lie) and when there are
        fewer samples than :data:`MIN_SAMPLES` asks for; the latter are named
        in ``withheld``.

        Args:
            keys: Which of ``p50``, ``p90``, ``p99``, ``p999`` to include.
        """
        out: dict[str, float | int | None] = {}
        empty = self.count == 0
        exact_max = round(self._max_s * 1000.0, 3)
        withheld = []
        for key in keys:
            if empty:
                out[key] = None
            elif self.count < MIN_SAMPLES[key]:
                out[key] = None
                withheld.append(key)
            else:
                # HDR buckets report a bucket's upper edge, which can sit a
                # hair above the exact maximum; no percentile may exceed it.
                out[key] = min(
                    exact_max, round(self._hist.get_value_at_percentile(PERCENTILES[key]) / 1000.0, 3)
                )
        out["max"] = None if empty else exact_max
        out["samples"] = self.count
        out["withheld"] = withheld
        return out
