"""Statistics over repeats: intervals, proportions, and when a difference is a change.

One run of one cell on a shared 2-core machine is an anecdote. This module
turns the repeats of a cell into a value with an interval, and decides, with
a stated test, whether two cells differ beyond noise. The methods, chosen for
the handful of repeats a benchmark can afford:

* **The value of a metric** is the median over repeats.
* **Its interval** is the distribution-free confidence interval of the
  median from order statistics (the binomial method): no assumption about
  the shape of the distribution, and its *achieved* confidence is reported
  with it. With fewer than 6 repeats no pair of order statistics reaches
  95 %; the interval is then the range of the repeats and says so (for 3
  repeats it is a 75 % interval).
* **A proportion** (connections lost out of original connections, pooled
  over repeats) carries a Wilson score interval at 95 %. Connections of one
  repeat share one event loop and are not independent, so the interval is
  narrower than it should be when repeats disagree; the number of repeats
  that lost any connection is given beside it for that reason.
* **A change** of a metric needs three things at once: at least
  :data:`MIN_REPEATS` repeats on each side; Welch's t-test on the logarithms
  of the values (the metrics are ratios in nature: lag, latency, job time)
  at :data:`ALPHA`; ranges of the two sides that do not overlap; and a ratio
  of medians beyond the metric's minimum effect whose difference also
  exceeds the metric's resolution (one job more in a few-second window is
  a step of the count, not a change). Requiring the test *and*
  separated ranges keeps false alarms between identical runs well under 5 %
  of the compared pairs, while a real difference of several times is found
  with 3 repeats a side.
* **A change of a proportion** needs Fisher's exact test at :data:`ALPHA`, a
  difference of at least :data:`MIN_SHARE_DIFFERENCE` and, when the shares
  of the single repeats are given, ranges of those shares that do not
  overlap: Fisher's test treats connections as independent, and a cell at
  its survival boundary that loses connections in some repeats and none in
  others would otherwise change between two identical runs.

Verdicts are ``better``, ``worse``, ``no change`` and ``cannot tell``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

from scipy import stats

ALPHA = 0.05
"""Significance level of every change test."""

CONFIDENCE = 0.95
"""Target confidence of every interval."""

MIN_REPEATS = 3
"""Fewer repeats than this on either side: ``cannot tell``."""

MIN_RATIO = 1.1
"""Default smallest ratio of medians that counts as a change."""

MIN_SHARE_DIFFERENCE = 0.1
"""Smallest difference of two loss proportions that counts as a change."""

BETTER = "better"
WORSE = "worse"
NO_CHANGE = "no change"
CANNOT_TELL = "cannot tell"
OUTCOMES = (BETTER, WORSE, NO_CHANGE, CANNOT_TELL)
"""What the change test can say of one metric of one cell, A against B (its outcome)."""


@dataclass(frozen=True)
class Estimate:
    """A metric over the repeats of one cell.

    Attributes:
        median: Median over the repeats with a value (NaN when none has).
        low: Lower end of the interval.
        high: Upper end of the interval.
        confidence: Achieved confidence of ``[low, high]`` (0 with one
            value or none).
        n: Repeats with a value.
    """

    median: float
    low: float
    high: float
    confidence: float
    n: int


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with a Wilson score interval.

    Attributes:
        k: Successes (connections lost).
        n: Trials (original connections).
        share: ``k / n`` (NaN when ``n`` is 0).
        low: Lower end of the 95 % interval.
        high: Upper end of the 95 % interval.
    """

    k: int
    n: int
    share: float
    low: float
    high: float


def _finite(values: Iterable[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return sorted(out)


def median_interval(values: Iterable[float | None], confidence: float = CONFIDENCE) -> Estimate:
    """Median of the finite values with a distribution-free interval.

    The interval is ``[x_(j), x_(n+1-j)]`` for the largest ``j`` whose
    binomial coverage ``1 - 2 * P(Bin(n, 1/2) < j)`` is at least
    ``confidence``; when even ``j = 1`` (the range) falls short, the range is
    returned with the confidence it does reach.

    Args:
        values: One value per repeat; None and NaN are ignored.
        confidence: Wanted confidence.

    Returns:
        The estimate, with its achieved confidence and sample size.
    """
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0.0, 0)
    median = float(sorted(xs)[n // 2]) if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    if n == 1:
        return Estimate(median, xs[0], xs[0], 0.0, 1)
    best_j, achieved = 1, _coverage(n, 1)
    for j in range(2, n // 2 + 1):
        cov = _coverage(n, j)
        if cov < confidence:
            break
        best_j, achieved = j, cov
    return Estimate(median, xs[best_j - 1], xs[n - best_j], round(achieved, 4), n)


def _coverage(n: int, j: int) -> float:
    # P(x_(j) <= median <= x_(n+1-j)) = 1 - 2 P(Bin(n, 1/2) <= j - 1).
    return 1.0 - 2.0 * float(stats.binom.cdf(j - 1, n, 0.5))


def coefficient_of_variation(values: Iterable[float | None]) -> float:
    """Sample standard deviation over mean of the finite values (NaN if undefined)."""
    xs = _finite(values)
    if len(xs) < 2:
        return math.nan
    mean = sum(xs) / len(xs)
    if mean == 0:
        return math.nan
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return math.sqrt(var) / abs(mean)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """A proportion with its Wilson score interval.

    Args:
        k: Successes.
        n: Trials.
        confidence: Interval confidence.
    """
    if n <= 0:
        return Proportion(k, n, math.nan, math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Proportion(k, n, p, low, high)


def change_p_value(a: Sequence[float], b: Sequence[float], *, floor: float) -> float:
    """Two-sided p-value of Welch's t-test on ``log(max(x, floor))``.

    Args:
        a: Values of side A (finite).
        b: Values of side B (finite).
        floor: Smallest meaningful value (the metric's resolution), so that
            zeros and values below resolution compare as equal.

    Returns:
        The p-value; 1.0 when both sides are constant and equal, 0.0 when
        both are constant and differ.
    """
    la = [math.log(max(x, floor)) for x in a]
    lb = [math.log(max(x, floor)) for x in b]
    var_a = _var(la)
    var_b = _var(lb)
    if var_a == 0 and var_b == 0:
        return 1.0 if math.isclose(la[0], lb[0]) else 0.0
    with warnings.catch_warnings():
        # Nearly equal values make scipy warn about precision; the p-value
        # is then close to 1 either way, which is the right answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(la, lb, equal_var=False)
    return float(result.pvalue)


def _var(xs: Sequence[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / max(1, len(xs) - 1)


@dataclass(frozen=True)
class Comparison:
    """The change test on one metric of one cell, A against B.

    Attributes:
        a: A's estimate.
        b: B's estimate.
        ratio: ``b.median / a.median`` (NaN when undefined).
        p_value: The test's p-value (NaN when not tested).
        outcome: One of :data:`OUTCOMES`.
    """

    a: Estimate
    b: Estimate
    ratio: float
    p_value: float
    outcome: str


def compare_values(
    a: Iterable[float | None],
    b: Iterable[float | None],
    *,
    higher_is_better: bool = False,
    floor: float = 1e-3,
    min_ratio: float = MIN_RATIO,
) -> Comparison:
    """Compare one metric of one cell between two runs.

    Args:
        a: Per-repeat values of the baseline.
        b: Per-repeat values of the contender.
        higher_is_better: Direction of the metric.
        floor: The metric's resolution (see :func:`change_p_value`); the
            medians must also differ by more than this.
        min_ratio: Smallest ratio of medians that counts as a change.

    Returns:
        The estimates, the ratio, the p-value and the outcome.
    """
    xa, xb = _finite(a), _finite(b)
    ea, eb = median_interval(xa), median_interval(xb)
    ratio = _ratio(ea.median, eb.median, floor)
    if len(xa) < MIN_REPEATS or len(xb) < MIN_REPEATS:
        return Comparison(ea, eb, ratio, math.nan, CANNOT_TELL)
    p = change_p_value(xa, xb, floor=floor)
    lo_a, hi_a = max(xa[0], floor), max(xa[-1], floor)
    lo_b, hi_b = max(xb[0], floor), max(xb[-1], floor)
    separated = hi_a < lo_b or hi_b < lo_a
    # The effect must be beyond the minimum ratio and beyond the resolution.
    big = (math.isfinite(ratio) and (ratio >= min_ratio or ratio <= 1.0 / min_ratio)
           and abs(max(eb.median, floor) - max(ea.median, floor)) > floor)
    if p < ALPHA and separated and big:
        went_up = ratio > 1.0
        outcome = BETTER if went_up == higher_is_better else WORSE
    else:
        outcome = NO_CHANGE
    return Comparison(ea, eb, ratio, p, outcome)


def _ratio(a: float, b: float, floor: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return max(b, floor) / max(a, floor)


def compare_proportions(
    a: Proportion,
    b: Proportion,
    *,
    repeats_a: int,
    repeats_b: int,
    shares_a: Sequence[float] | None = None,
    shares_b: Sequence[float] | None = None,
) -> Comparison:
    """Compare two loss proportions (lower is better).

    Args:
        a: Baseline ``k of n``.
        b: Contender ``k of n``.
        repeats_a: Repeats behind ``a``.
        repeats_b: Repeats behind ``b``.
        shares_a: Share lost in each repeat of ``a`` (optional); with
            ``shares_b``, a change also needs the two sides' ranges of
            shares to be apart.
        shares_b: Share lost in each repeat of ``b``.

    Returns:
        A :class:`Comparison` whose estimates carry the shares and Wilson
        intervals (``confidence`` 0.95, ``n`` the number of connections).
    """
    ea = Estimate(a.share, a.low, a.high, CONFIDENCE, a.n)
    eb = Estimate(b.share, b.low, b.high, CONFIDENCE, b.n)
    ratio = _ratio(a.share, b.share, 1e-3) if a.n and b.n else math.nan
    if repeats_a < MIN_REPEATS or repeats_b < MIN_REPEATS or not a.n or not b.n:
        return Comparison(ea, eb, ratio, math.nan, CANNOT_TELL)
    table = [[a.k, a.n - a.k], [b.k, b.n - b.k]]
    p = float(stats.fisher_exact(table).pvalue)
    separated = True
    if shares_a and shares_b:
        separated = max(shares_a) < min(shares_b) or max(shares_b) < min(shares_a)
    if p < ALPHA and abs(b.share - a.share) >= MIN_SHARE_DIFFERENCE and separated:
        outcome = WORSE if b.share > a.share else BETTER
    else:
        outcome = NO_CHANGE
    return Comparison(ea, eb, ratio, p, outcome)


def compare_repeat_losses(
    a: Proportion,
    b: Proportion,
    *,
    losses_a: Sequence[tuple[int, int]],
    losses_b: Sequence[tuple[int, int]],
) -> Comparison:
    """Compare two sides' survival with the repeat as the unit of replication (lower loss is better).

    A repeat (one server, one window) is one trial: its connections share
    one loop and are lost together. The test is Fisher's exact test,
    two-sided, on repeats that lost any connection of repeats; the pooled
    connection shares ``a`` and ``b`` are carried as a description only.
    Where even the most lopsided outcome (every repeat of one side lost,
    none of the other) could not reach :data:`ALPHA` with these repeat
    counts (3 against 3 gives p = 0.1), the answer is ``cannot tell``: no
    difference could have been shown.

    Args:
        a: Baseline connections lost, pooled (described, not tested).
        b: Contender connections lost, pooled.
        losses_a: ``(lost, connections)`` per repeat of ``a``.
        losses_b: Likewise of ``b``.
    """
    ea = Estimate(a.share, a.low, a.high, CONFIDENCE, a.n)
    eb = Estimate(b.share, b.low, b.high, CONFIDENCE, b.n)
    ratio = _ratio(a.share, b.share, 1e-3) if a.n and b.n else math.nan
    na, nb = len(losses_a), len(losses_b)
    if na < MIN_REPEATS or nb < MIN_REPEATS:
        return Comparison(ea, eb, ratio, math.nan, CANNOT_TELL)
    ka = sum(1 for k, _ in losses_a if k > 0)
    kb = sum(1 for k, _ in losses_b if k > 0)
    p = float(stats.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue)
    best = float(stats.fisher_exact([[0, na], [nb, 0]]).pvalue)
    if p < ALPHA:
        outcome = WORSE if kb / nb > ka / na else BETTER
    elif best >= ALPHA:
        outcome = CANNOT_TELL
    else:
        outcome = NO_CHANGE
    return Comparison(ea, eb, ratio, p, outcome)


__all__ = [
    "ALPHA", "BETTER", "CANNOT_TELL", "CONFIDENCE", "Comparison", "Estimate", "MIN_RATIO",
    "MIN_REPEATS", "MIN_SHARE_DIFFERENCE", "NO_CHANGE", "Proportion", "OUTCOMES", "WORSE",
    "change_p_value", "coefficient_of_variation", "compare_proportions", "compare_repeat_losses",
    "compare_values",
    "median_interval", "wilson",
]
