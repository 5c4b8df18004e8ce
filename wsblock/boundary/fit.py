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
