"""The keepalive outcome at the user's settings, predicted from measured stalls.

Waiting for real keepalive timeouts at websockets' defaults (20 s / 20 s)
takes minutes per cell. The loop's stall pattern does not depend on the
keepalive settings, so a cell measured with a shorter window gives the
pattern, and the boundary model (:mod:`wsblock.analysis.boundary_model`,
``docs/boundary-model.md``) gives the probability that one connection is lost
over a horizon at the user's settings: the stall pattern is stretched to the
horizon at the same stalled share and stall lengths.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from wsblock.analysis import boundary_model as bm

CYCLES = 3
"""Keepalive cycles in the horizon (as many as a sized cell must observe)."""

NEAR = (0.05, 0.95)
"""Predicted loss probabilities in this range are near the boundary: confirm them."""

PHASES = 200
"""Phases of the ping train the model averages over."""


@dataclass(frozen=True)
class Forecast:
    """The predicted keepalive outcome of one strategy.

    Attributes:
        p: Mean predicted probability that one connection is lost in the horizon.
        low: Lowest end of the repeats' ranges.
        high: Highest end of the repeats' ranges.
        repeats: Records the prediction rests on.
        horizon_s: Seconds of load the probability covers.
    """

    p: float
    low: float
    high: float
    repeats: int
    horizon_s: float

    @property
    def outcome(self) -> str:
        """``kept`` (point under 5 %), ``lost`` (over 95 %) or ``near`` (between: confirm)."""
        if self.p < NEAR[0]:
            return "kept"
        if self.p > NEAR[1]:
            return "lost"
        return "near"


def horizon_s(ping_interval: float | None, ping_timeout: float | None) -> float | None:
    """Seconds a prediction covers: the first ping plus :data:`CYCLES` keepalive cycles."""
    if ping_interval is None or ping_timeout is None:
        return None
    return ping_interval + CYCLES * (ping_interval + ping_timeout)


def at_settings(record: Mapping[str, Any], *, ping_interval: float, ping_timeout: float,
                horizon: float) -> dict[str, Any]:
    """A copy of a record as if measured at these keepalive settings over ``horizon`` seconds.

    The stall count and total scale with the window (the stalled share and
    the longest stall stay as measured).
    """
    out = copy.deepcopy(dict(record))
    params = out.setdefault("params", {})
    params.update(ping_interval=ping_interval, ping_timeout=ping_timeout, client_pings=True,
                  handler_ping_timeout=None)
    window = out.setdefault("window", {})
    measured = float(window.get("duration_s") or params.get("duration") or 0.0)
    window["duration_s"] = horizon
    stalls = out.get("stalls") or {}
    if measured > 0 and stalls.get("count"):
        scale = horizon / measured
        stalls["count"] = max(1, int(round(int(stalls["count"]) * scale)))
        stalls["total_ms"] = float(stalls.get("total_ms") or 0.0) * scale
    return out


def forecast(records: Sequence[Mapping[str, Any]], *, ping_interval: float | None,
             ping_timeout: float | None) -> Forecast | None:
    """Predict one strategy's keepalive outcome from the records of its repeats.

    Args:
        records: Measured (``ok``) records of one strategy.
        ping_interval: The user's ping interval (``None``: no pings).
        ping_timeout: The user's ping timeout (``None``: no timeout).

    Returns:
        The forecast, or ``None`` without records; a setting where no
        keepalive can fail predicts ``0``.
    """
    if not records:
        return None
    horizon = horizon_s(ping_interval, ping_timeout)
    if horizon is None:
        return Forecast(0.0, 0.0, 0.0, len(records), math.inf)
    assert ping_interval is not None and ping_timeout is not None
    points, lows, highs = [], [], []
    for rec in records:
        prediction = bm.predict_record(
            at_settings(rec, ping_interval=ping_interval, ping_timeout=ping_timeout, horizon=horizon),
            phases=PHASES)
        points.append(prediction.p)
        lows.append(prediction.low)
        highs.append(prediction.high)
    return Forecast(sum(points) / len(points), min(lows), max(highs), len(records), horizon)


__all__ = ["CYCLES", "Forecast", "NEAR", "PHASES", "at_settings", "forecast", "horizon_s"]
