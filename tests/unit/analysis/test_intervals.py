"""Statistics over repeats: intervals and the change test (no cells run)."""

from __future__ import annotations

import math
import random

import pytest

from wsblock.analysis import intervals as iv


def test_median_interval_reaches_95_percent_from_six_values_and_says_so_below():
    three = iv.median_interval([3.0, 1.0, 2.0])
    assert (three.median, three.low, three.high, three.n) == (2.0, 1.0, 3.0, 3)
    assert three.confidence == pytest.approx(0.75)
    six = iv.median_interval([1, 2, 3, 4, 5, 6])
    assert six.confidence >= 0.95 and (six.low, six.high) == (1, 6)
    many = iv.median_interval(range(1, 41))
    assert many.confidence >= 0.95 and 1 < many.low < many.median < many.high < 40


def test_median_interval_ignores_missing_values_and_counts_the_rest():
    e = iv.median_interval([None, float("nan"), 4.0, 2.0])
    assert (e.median, e.n) == (3.0, 2)
    empty = iv.median_interval([None])
    assert empty.n == 0 and math.isnan(empty.median)


def test_wilson_interval_matches_known_values():
    p = iv.wilson(10, 11)
    assert p.share == pytest.approx(10 / 11)
    assert p.low == pytest.approx(0.6226, abs=1e-3) and p.high == pytest.approx(0.9838, abs=1e-3)
    zero = iv.wilson(0, 12)
    assert zero.low == 0.0 and 0.2 < zero.high < 0.3


def test_fewer_than_three_repeats_cannot_tell():
    c = iv.compare_values([1.0, 1.1], [50.0, 60.0, 70.0])
    assert c.outcome == iv.CANNOT_TELL and c.ratio > 40


def test_identical_noisy_runs_rarely_change_and_large_differences_do():
    rng = random.Random(7)
    false_alarms = found = 0
    trials = 2000
    for _ in range(trials):
        # Log-normal noise with a coefficient of variation of about 50 %.
        a = [rng.lognormvariate(math.log(20), 0.5) for _ in range(3)]
        b = [rng.lognormvariate(math.log(20), 0.5) for _ in range(3)]
        false_alarms += iv.compare_values(a, b).outcome in (iv.BETTER, iv.WORSE)
        c = [rng.lognormvariate(math.log(200), 0.5) for _ in range(3)]
        found += iv.compare_values(a, c).outcome == iv.WORSE
    assert false_alarms / trials < 0.05
    assert found / trials > 0.9


def test_direction_of_the_metric_decides_better_or_worse():
    low, high = [1.0, 1.1, 0.9], [10.0, 11.0, 9.0]
    assert iv.compare_values(low, high).outcome == iv.WORSE
    assert iv.compare_values(low, high, higher_is_better=True).outcome == iv.BETTER
    # Below the metric's resolution everything is equal.
    assert iv.compare_values([0.0] * 3, [1e-6] * 3, floor=0.01).outcome == iv.NO_CHANGE


def test_proportions_change_only_beyond_noise():
    same = iv.compare_proportions(iv.wilson(5, 12), iv.wilson(6, 12), repeats_a=3, repeats_b=3)
    assert same.outcome == iv.NO_CHANGE
    worse = iv.compare_proportions(iv.wilson(0, 12), iv.wilson(12, 12), repeats_a=3, repeats_b=3)
    assert worse.outcome == iv.WORSE and worse.p_value < 0.001
    few = iv.compare_proportions(iv.wilson(0, 4), iv.wilson(4, 4), repeats_a=1, repeats_b=1)
    assert few.outcome == iv.CANNOT_TELL
