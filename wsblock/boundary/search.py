"""An adaptive search for the job length at which P(lose a connection) crosses a level.

The search bisects on a log scale between two job lengths. Each measured
cell gives ``k`` of ``n`` original connections lost; the share pooled over
the repeats of one length decides on which side of the level it lies. A
length whose pooled share is ambiguous (between :data:`AMBIGUOUS`) is
measured again, up to ``max_repeats`` times, before the search moves on:
that is where repeats are worth most. The point estimate of a level is
the geometric middle of its *bracket*: the largest measured length whose
pooled share lies at or below the level and the smallest above it. Its
interval is the *confident bracket* (:func:`confident_bracket`): the
lengths whose share's Wilson interval lies wholly on one side. Both assume
that loss grows with job length; where the measurements contradict that,
the bracket spans the contradiction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

AMBIGUOUS = (0.2, 0.8)
"""Pooled shares between these are measured again before deciding a side."""


@dataclass(frozen=True)
class Observation:
    """One measured cell.

    Attributes:
        work_ms: The job length asked for.
        lost: Original connections lost inside the window.
        connections: Original connections.
        job_ms: The median length the cell's jobs really took (ms), when
            measured: on a busy machine it exceeds ``work_ms``.
    """

    work_ms: float
    lost: int
    connections: int
    job_ms: float | None = None


@dataclass(frozen=True)
class Bracket:
    """The estimate of one level.

    Attributes:
        level: The loss probability, e.g. 0.5.
        low: Largest measured length below the level (ms), or ``None``.
        high: Smallest measured length above it (ms), or ``None``.
    """

    level: float
    low: float | None
    high: float | None

    @property
    def bracketed(self) -> bool:
        """Whether measured lengths lie on both sides of the level."""
        return self.low is not None and self.high is not None

    @property
    def value(self) -> float | None:
        """The geometric midpoint of the bracket, or ``None`` when not bracketed."""
        if self.low is None or self.high is None:
            return None
        return math.sqrt(self.low * self.high)


def pooled(observations: Sequence[Observation]) -> dict[float, tuple[int, int]]:
    """``work_ms -> (lost, connections)`` summed over repeats."""
    out: dict[float, tuple[int, int]] = {}
    for o in observations:
        k, n = out.get(o.work_ms, (0, 0))
        out[o.work_ms] = (k + o.lost, n + o.connections)
    return out


def bracket(observations: Sequence[Observation], level: float) -> Bracket:
    """The bracket of ``level`` from the measured lengths.

    A length is above the level when its pooled share exceeds it, below
    otherwise. ``low`` is the largest length below, ``high`` the smallest
    above; when some length below is longer than some length above (the
    measurements are not monotone), the bracket widens to the smallest
    length above and the largest below.

    Args:
        observations: Measured cells.
        level: Loss probability in (0, 1).

    Returns:
        The bracket (ends ``None`` when no length lies on that side).
    """
    below, above = [], []
    for ms, (k, n) in sorted(pooled(observations).items()):
        if n <= 0:
            continue
        (above if k / n > level else below).append(ms)
    low = max(below) if below else None
    high = min(above) if above else None
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Bracket(level, low, high)


def confident_bracket(observations: Sequence[Observation], level: float,
                      confidence: float = 0.95) -> Bracket:
    """The interval of ``level``: lengths measured confidently on each side.

    ``low`` is the largest measured length whose pooled share's Wilson
    interval lies wholly at or below the level, ``high`` the smallest whose
    interval lies wholly above it. Lengths whose interval contains the level
    say nothing about the side, so this is wider than :func:`bracket` and
    stays put when the search is repeated. The connections of one cell are
    counted as independent trials although they share the cell's stalls, so
    the confidence is nominal.

    Args:
        observations: Measured cells.
        level: Loss probability in (0, 1).
        confidence: Of each length's Wilson interval.

    Returns:
        The interval (ends ``None`` when no length is confidently on that side).
    """
    from wsblock.analysis.intervals import wilson

    below, above = [], []
    for ms, (k, n) in sorted(pooled(observations).items()):
        if n <= 0:
            continue
        w = wilson(k, n, confidence)
        if w.high <= level:
            below.append(ms)
        elif w.low > level:
            above.append(ms)
    low = max(below) if below else None
    high = min(above) if above else None
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Bracket(level, low, high)


def next_length(observations: Sequence[Observation], *, level: float, low_ms: float, high_ms: float,
                max_repeats: int = 3, resolution: float = 1.1) -> float | None:
    """The job length to measure next, or ``None`` when the level is resolved.

    Args:
        observations: Cells measured so far.
        level: The loss probability searched for.
        low_ms: Shortest length the search may try.
        high_ms: Longest length the search may try.
        max_repeats: Most cells measured at one length.
        resolution: Stop when the bracket's ends are within this ratio.

    Returns:
        A length in ``[low_ms, high_ms]``, or ``None``.
    """
    table = pooled(observations)
    counts: dict[float, int] = {}
    for o in observations:
        counts[o.work_ms] = counts.get(o.work_ms, 0) + 1
    # Repeat an ambiguous length first: one cell near the boundary is a coin toss.
    for ms, (k, n) in sorted(table.items()):
        if n and AMBIGUOUS[0] < k / n < AMBIGUOUS[1] and counts[ms] < max_repeats:
            b = bracket(observations, level)
            if b.low is None or b.high is None or b.low <= ms <= b.high:
                return ms
    b = bracket(observations, level)
    lo = b.low if b.low is not None else None
    hi = b.high if b.high is not None else None
    if lo is None and hi is None:
        return math.sqrt(low_ms * high_ms)
    if lo is None:
        assert hi is not None
        if hi <= low_ms * resolution:
            return None  # everything measured lost: the level lies below the range
        return max(low_ms, hi / 4.0) if hi / 4.0 > low_ms else low_ms
    if hi is None:
        if lo >= high_ms / resolution:
            return None  # nothing measured lost: the level lies above the range
        return min(high_ms, lo * 4.0)
    if hi / lo <= resolution:
        return None
    return math.sqrt(lo * hi)


def reversals(observations: Sequence[Observation], level: float) -> int:
    """How often the side of the level changed from one cell to the next (in measuring order)."""
    sides = [o.lost / o.connections > level for o in observations if o.connections > 0]
    return sum(a != b for a, b in zip(sides, sides[1:]))


def staircase_next(observations: Sequence[Observation], *, level: float, low_ms: float, high_ms: float,
                   min_step: float = 1.1, first_step: float = 2.0) -> float | None:
    """The job length to measure next by an up-and-down staircase, or ``None`` when it cannot move.

    Until cells lie on both sides of the level, the search steps by a
    factor of 4 from the geometric middle of the range towards the other
    side (``None`` when the range's end is reached: the level lies outside
    it). From then on it is an up-and-down design on a log scale: after a
    cell above the level the next length is shorter by the step, after one
    at or below it longer. The step starts at ``first_step`` and halves (in
    log) at every reversal down to ``min_step``. The cells gather around the
    crossing, each length near it measured several times: a cell, not a
    connection, is the unit of the estimate
    (:func:`wsblock.boundary.fit.crossing`), so repeats near the boundary
    are what narrow its interval.

    Args:
        observations: Cells measured so far, in measuring order.
        level: The loss probability searched for.
        low_ms: Shortest length the search may try.
        high_ms: Longest length the search may try.
        min_step: Smallest step (ratio between successive lengths).
        first_step: Step after the first reversal.

    Returns:
        A length in ``[low_ms, high_ms]``, or ``None``.
    """
    valid = [o for o in observations if o.connections > 0]
    if not valid:
        return math.sqrt(low_ms * high_ms)
    sides = [o.lost / o.connections > level for o in valid]
    if all(sides) or not any(sides):
        ms = min(o.work_ms for o in valid) if sides[0] else max(o.work_ms for o in valid)
        if sides[0]:
            return None if ms <= low_ms * 1.001 else max(low_ms, ms / 4.0)
        return None if ms >= high_ms / 1.001 else min(high_ms, ms * 4.0)
    turns = reversals(valid, level)
    step = max(min_step, first_step ** (0.5 ** max(0, turns - 1)))
    last = valid[-1]
    ms = last.work_ms / step if sides[-1] else last.work_ms * step
    return min(high_ms, max(low_ms, ms))


__all__ = ["AMBIGUOUS", "Bracket", "Observation", "bracket", "confident_bracket", "next_length", "pooled",
           "reversals", "staircase_next"]
