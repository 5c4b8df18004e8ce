"""A logistic fit of loss probability against log job length.

``P(lost | work_ms) = 1 / (1 + exp(-(a + b ln work_ms)))``, fitted by maximum
likelihood with each original connection a Bernoulli trial. Connections of
one cell share its stall pattern, so they are not independent trials: the
fit gives a point estimate of each level's job length, and the search's
bracket (:mod:`wsblock.boundary.search`) is the interval to quote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from wsblock.boundary.search import Observation


@dataclass(frozen=True)
class Logistic:
    """A fitted curve.

    Attributes:
        a: Intercept.
        b: Slope per unit of ``ln work_ms`` (positive: loss grows with length).
        cells: Cells it rests on.
        connections: Trials it rests on.
    """

    a: float
    b: float
    cells: int
    connections: int

    def probability(self, work_ms: float) -> float:
        """The fitted loss probability at ``work_ms``."""
        z = self.a + self.b * math.log(work_ms)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def length_at(self, level: float) -> float | None:
        """The job length (ms) where the curve crosses ``level``; ``None`` if flat or falling."""
        if self.b <= 0:
            return None
        z = math.log(level / (1.0 - level))
        value = (z - self.a) / self.b
        return math.exp(value) if value < 700 else None


def fit(observations: Sequence[Observation]) -> Logistic | None:
    """Fit the curve; ``None`` when the data cannot identify it.

    It needs cells on both sides (some connection lost somewhere, some kept
    somewhere) at two lengths at least; with perfectly separated data the
    slope is capped, so the crossing stays inside the bracket.
    """
    from scipy.optimize import minimize

    obs = [o for o in observations if o.connections > 0 and o.work_ms > 0]
    lost = sum(o.lost for o in obs)
    total = sum(o.connections for o in obs)
    if len({o.work_ms for o in obs}) < 2 or lost == 0 or lost == total:
        return None
    xs = [math.log(o.work_ms) for o in obs]
    centre = sum(xs) / len(xs)

    def nll(theta: Sequence[float]) -> float:
        a, b = theta
        total_ll = 0.0
        for x, o in zip(xs, obs):
            z = a + b * (x - centre)
            # log(1 + e^z) computed stably.
            soft = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
            total_ll += o.lost * (z - soft) - (o.connections - o.lost) * soft
        return -total_ll

    result = minimize(nll, [0.0, 1.0], method="L-BFGS-B", bounds=[(-50.0, 50.0), (-50.0, 50.0)])
    a, b = (float(v) for v in result.x)
    return Logistic(a - b * centre, b, len(obs), total)


__all__ = ["Logistic", "fit"]


# --- Cells as trials: a profile-likelihood interval for a crossing ---------

CHI2_95_1DF = 3.841458820694124
"""The 95 % quantile of chi-squared with one degree of freedom."""

SLOPE_MAX = 50.0
"""Steepest slope per unit of ``ln ms`` the profile considers: loss from 5 %
to 95 % within 12 % of job length. A cap keeps separated data finite."""

SLOPE_MIN = 3.0
"""Shallowest slope the profile considers: loss from 5 % to 95 % within a
factor of 7 of job length. Keepalive makes the curve steep (one block
longer than ``ping_interval + ping_timeout`` always kills, one shorter than
``ping_timeout / job_connections`` never does); without a floor, cells
gathered at the crossing (each a coin toss) cannot reject a flat curve at
50 %, and the interval of the crossing would be unbounded."""


@dataclass(frozen=True)
class Crossing:
    """Where a loss curve crosses a level, with a profile-likelihood interval.

    Attributes:
        level: The loss probability, e.g. 0.5.
        value: Point estimate (ms): the middle of the lengths of highest
            likelihood, or ``None`` when that region reaches past the measured
            lengths (the crossing lies outside them).
        low: Interval's low end (ms), ``None`` when open (below the measured range).
        high: Interval's high end (ms), ``None`` when open.
        cells: Cells (trials) it rests on.
        lowest: Shortest length measured (ms): an open ``low`` means "below this".
        highest: Longest length measured (ms): an open ``high`` means "above this".
    """

    level: float
    value: float | None
    low: float | None
    high: float | None
    cells: int
    lowest: float | None = None
    highest: float | None = None

    @property
    def width(self) -> float | None:
        """``high / low``, or ``None`` when an end is open."""
        if self.low is None or self.high is None or self.low <= 0:
            return None
        return self.high / self.low

    def to_dict(self) -> dict[str, float | int | None]:
        """The crossing as JSON-ready values."""
        return {"value": self.value, "low": self.low, "high": self.high, "cells": self.cells,
                "width": self.width, "lowest": self.lowest, "highest": self.highest}


def crossing(points: Sequence[tuple[float, float]], level: float, *, confidence_chi2: float = CHI2_95_1DF,
             slope_min: float = SLOPE_MIN, slope_max: float = SLOPE_MAX, grid: int = 240) -> Crossing:
    """The length at which a logistic curve in ``ln ms`` crosses ``level``, with cells as trials.

    Each point is one cell: its length (ms) and the share of its original
    connections lost. A cell counts as ONE trial whose outcome is that
    share: the connections of a cell share its stalls and are lost
    together, so they are not independent trials (counting them as such
    makes intervals several times too narrow). The curve
    ``P = 1 / (1 + exp(-(b (ln ms - ln c) + logit(level))))`` is
    parametrised by its crossing ``c``; for each ``c`` on a grid the
    likelihood is maximised over the slope ``b`` in ``[slope_min, slope_max]``
    (the profile), and the 95 % interval is every ``c`` whose profile lies
    within ``chi2(1)/2`` of the best. With separated data (every cell below
    some length kept, every cell above lost) the best region is the gap
    between them and the interval extends past it as far as the cells
    nearby allow.

    Args:
        points: ``(ms, share lost)`` per cell; shares in [0, 1].
        level: Loss probability in (0, 1).
        confidence_chi2: Likelihood-ratio cut-off (default: 95 %).
        slope_min: Shallowest slope considered (:data:`SLOPE_MIN`).
        slope_max: Steepest slope considered.
        grid: Points of the grid of ``ln c``.

    Returns:
        The crossing; ends are ``None`` where the interval reaches beyond the
        measured lengths (by more than a factor of 2).
    """
    import numpy as np

    pts = [(float(ms), min(1.0, max(0.0, float(y)))) for ms, y in points if ms and ms > 0 and y == y]
    if not pts:
        return Crossing(level, None, None, None, 0)
    x = np.log(np.array([p[0] for p in pts]))
    y = np.array([p[1] for p in pts])
    lowest, highest = float(np.exp(x.min())), float(np.exp(x.max()))
    margin = math.log(2.0)
    cs = np.linspace(x.min() - margin, x.max() + margin, grid)
    bs = np.geomspace(slope_min, slope_max, 48)
    offset = math.log(level / (1.0 - level))
    # z[c, b, i] = b (x_i - c) + logit(level)
    z = bs[None, :, None] * (x[None, None, :] - cs[:, None, None]) + offset
    log_p = -np.logaddexp(0.0, -z)
    log_q = -np.logaddexp(0.0, z)
    ll = (y * log_p + (1.0 - y) * log_q).sum(axis=2)
    profile = ll.max(axis=1)
    best = profile.max()
    inside = np.nonzero(2.0 * (best - profile) <= confidence_chi2)[0]
    top = np.nonzero(profile >= best - 1e-3)[0]
    last = grid - 1
    low = None if inside[0] == 0 else float(np.exp(cs[inside[0]]))
    high = None if inside[-1] == last else float(np.exp(cs[inside[-1]]))
    value = None
    if top[0] != 0 and top[-1] != last:
        value = float(np.exp((cs[top[0]] + cs[top[-1]]) / 2.0))
    return Crossing(level, value, low, high, len(pts), lowest, highest)


__all__ += ["CHI2_95_1DF", "Crossing", "SLOPE_MAX", "SLOPE_MIN", "crossing"]
