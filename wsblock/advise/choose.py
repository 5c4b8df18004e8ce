"""The recommendation rule: the cheapest strategy that keeps connections and the loop free.

Strategies cost more in this order: ``inline`` < ``chunked`` < ``thread`` <
``process`` (no pool, then cooperative steps, then threads, then processes
that pickle every job). A strategy is *eligible* when

* it **keeps every connection**: measured (the cells' verdict is ``kept``), or
  predicted by the boundary model (:mod:`wsblock.advise.predict`) with a loss
  probability under 5 %, or, near the boundary, confirmed by cells whose
  windows could show a timeout;
* it **keeps the loop free**: the loop is *responsive* (no cell stalled it,
  a gap over the run's stall threshold, 50 ms by default, in every repeat,
  and the loop-lag p99, where reported, is under that threshold) and *idle*
  (the loop-lag p50 is under :data:`BUSY_LAG_MS`: the loop waits for the
  work instead of running it or fighting it for the GIL); each percentile
  is judged by the upper end of its interval over the repeats;
* its **evidence is strong**: what :mod:`wsblock.analysis.recommend` calls
  weak (fewer than 3 repeats, failed repeats, a disturbed measurement,
  calibration drift) is absent. Repeats that vary do not block a
  recommendation by themselves: the loop-lag p99 is judged by the upper end
  of its interval over the repeats instead.

The recommendation is the first eligible strategy in cost order; when none
is eligible it says so and names the one that came closest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wsblock.advise.predict import Forecast
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.report import markdown as md

COST_ORDER = ("inline", "chunked", "thread", "process")
"""Strategies from the cheapest to the dearest."""

BUSY_LAG_MS = 2.0
"""A median loop-lag at or over this means the loop is busy with the work.

An idle loop's 1 ms probe wakes a fraction of a millisecond late; a loop
that runs the work itself in steps (``chunked``) is late by about a step,
and one that competes with a thread for the GIL by about the switch
interval (5 ms by default), on most wake-ups."""

UNSTABLE = "unstable repeats"
"""How :mod:`wsblock.analysis.recommend` starts the reason for repeats that vary."""

MEASURED = "measured"
PREDICTED = "predicted"
CONFIRMED = "confirmed"


@dataclass(frozen=True)
class Keep:
    """Whether a strategy keeps its connections at the user's settings, and how that is known.

    Attributes:
        outcome: ``kept``, ``lost`` or ``unknown``.
        basis: ``measured`` (cells at the user's settings whose windows could
            show a timeout), ``predicted`` (boundary model) or ``confirmed``
            (predicted near the boundary, then measured).
        connections: Connections lost of those at risk, with the Wilson
            interval, where measured.
        forecast: The boundary model's prediction, where one was made.
    """

    outcome: str
    basis: str
    connections: iv.Proportion | None = None
    forecast: Forecast | None = None


@dataclass(frozen=True)
class Judged:
    """One strategy, with everything the rule reads.

    Attributes:
        strategy: The strategy.
        advice: The verdict of its cells (:func:`wsblock.analysis.recommend.advise`).
        keep: Its keepalive outcome.
        stall_ms: The stall threshold of its cells.
        releases_gil: Whether the workload says it releases the GIL (then a
            stalled loop beside a thread is not the GIL's doing).
    """

    strategy: str
    advice: rec.Advice
    keep: Keep
    stall_ms: float = 50.0
    releases_gil: bool = False
    lag_p50: rec.Quantity | None = None

    @property
    def responsive(self) -> bool:
        """No cell stalled in every repeat, and the loop-lag p99 (where reported) under the stall threshold."""
        a = self.advice
        if a.verdict == rec.NO_DATA:
            return False
        return not a.stalled and _worst(a.lag_p99) < self.stall_ms

    @property
    def idle(self) -> bool:
        """The loop's median wake-up is under :data:`BUSY_LAG_MS` late: it waits for the work, not runs it."""
        return _worst(self.lag_p50) < BUSY_LAG_MS

    @property
    def loop_free(self) -> bool:
        """Responsive (:attr:`responsive`) and not kept busy by the work (:attr:`idle`).

        Loop-lag percentiles are judged by the upper end of their interval
        over the repeats, so repeats that vary cannot make a loop look free.
        """
        return self.responsive and self.idle

    @property
    def weak(self) -> tuple[str, ...]:
        """What makes the evidence weak: the verdict's reasons, but for unstable repeats.

        Repeats that vary are already answered by judging the loop by the
        upper end of its intervals; a loss in some repeats and not others
        is a loss.
        """
        return tuple(w for w in self.advice.weak if not w.startswith(UNSTABLE))

    @property
    def strong(self) -> bool:
        """Whether the evidence behind the verdict is strong enough."""
        return self.advice.verdict != rec.NO_DATA and not self.weak

    @property
    def eligible(self) -> bool:
        """Keeps every connection, keeps the loop free, on strong evidence."""
        return self.keep.outcome == "kept" and self.loop_free and self.strong


@dataclass
class Choice:
    """The recommendation.

    Attributes:
        strategy: The recommended strategy, or ``None`` when none is eligible.
        closest: With no recommendation, the strategy that came closest.
        reasons: Plain-words sentences: why this one, and why not each cheaper one.
    """

    strategy: str | None
    closest: str | None = None
    reasons: list[str] = field(default_factory=list)


def _worst(q: rec.Quantity | None) -> float:
    """The upper end of a quantity's interval (its value without one); ``-inf`` when unknown."""
    if q is None or not q.known:
        return -math.inf
    return max(q.value, q.high) if math.isfinite(q.high) else q.value


def cost_key(strategy: str) -> tuple[int, str]:
    """Sort key of strategies, cheapest first (unknown ones last, by name)."""
    return (COST_ORDER.index(strategy), "") if strategy in COST_ORDER else (len(COST_ORDER), strategy)


def _share(value: float) -> str:
    return f"{value * 100:.0f} %"


def loop_text(j: Judged, *, share: bool = True) -> str:
    """The loop figures of a strategy in words: ``loop-lag p99 4 ms, no stall over 50 ms``."""
    a = j.advice
    lags = [f"{name} {md.ms(q.value)} ms" for name, q in (("p50", j.lag_p50), ("p99", a.lag_p99))
            if q is not None and q.known]
    parts = [f"loop-lag {', '.join(lags)}"] if lags else []
    if a.stall is not None and a.stall.known and a.stall.value > 0:
        parts.append(f"longest stall {md.ms(a.stall.value)} ms")
        if share and a.stalled_share is not None and a.stalled_share.known:
            parts.append(f"stalled {_share(a.stalled_share.value)} of the time")
    elif a.stall is not None and a.stall.known:
        parts.append(f"no stall over {j.stall_ms:g} ms")
    return ", ".join(parts) or "no loop figures"


def keep_text(j: Judged) -> str:
    """How the strategy's keepalive outcome is known, in words."""
    k = j.keep
    f = k.forecast
    model = (f"predicted from the measured stalls by the boundary model: P(a connection is lost in "
             f"{f.horizon_s:g} s) {f.p:.2f} [{f.low:.2f}, {f.high:.2f}]") if f is not None and math.isfinite(
        f.horizon_s) else ""
    counted = ""
    p = k.connections
    if p is not None and p.n:
        counted = f"{p.k} of {p.n} connections lost"
    if k.basis == PREDICTED:
        return model
    if k.basis == CONFIRMED:
        return f"{model}; confirmed by cells at your settings: {counted or 'no connection at risk'}"
    return f"measured at your settings: {counted or 'no connection at risk'}"


def _why_not(j: Judged) -> str:
    """Why a strategy is not eligible, in plain words."""
    name = j.strategy
    if j.advice.verdict == rec.NO_DATA:
        return f"{name} has no measured repeat"
    if j.keep.outcome == "lost":
        return f"{name} loses connections ({keep_text(j)})"
    if not j.responsive:
        a = j.advice
        share = a.stalled_share.value if a.stalled_share is not None and a.stalled_share.known else math.nan
        held = f"{_share(share)} of the time" if math.isfinite(share) else "at times"
        figures = loop_text(j, share=False)
        if name == "thread" and j.releases_gil:
            return (f"thread does not keep the loop free: the loop was stalled {held} in the thread cells although "
                    f"the work releases the GIL (a machine too busy to run the loop?) ({figures})")
        if name == "thread" and math.isfinite(share) and share < 0.5:
            # A short share with a stall over the threshold: the loop got the
            # GIL back between stalls, but not every time soon enough.
            return (f"thread does not keep the loop free: competing with this function for the GIL, the loop "
                    f"still stalled beyond the stall threshold ({_share(share)} of the window stalled; {figures})")
        if name == "thread":
            return (f"thread does not keep the loop free, because this function held the loop (GIL) {held} "
                    f"in the thread cells ({figures})")
        if name == "inline":
            return f"inline does not keep the loop free: the function held the loop {held} ({figures})"
        if name == "chunked":
            return f"chunked does not keep the loop free: its steps held the loop {held} ({figures})"
        return f"{name} does not keep the loop free: the loop was stalled {held} ({figures})"
    if not j.idle:
        figures = f"{loop_text(j)}; a free loop's p50 is under {BUSY_LAG_MS:g} ms"
        if name == "thread" and not j.releases_gil:
            return (f"thread does not keep the loop free: the loop kept waiting for the GIL this function holds, "
                    f"late on most of its wake-ups ({figures})")
        if name == "chunked":
            return (f"chunked does not keep the loop free: the loop ran the steps itself and was busy on most of "
                    f"its wake-ups ({figures})")
        return f"{name} does not keep the loop free: the loop was busy on most of its wake-ups ({figures})"
    if j.keep.outcome != "kept":
        return f"{name} could not show that it keeps connections ({keep_text(j) or 'no verdict'})"
    return f"{name}'s evidence is weak: {'; '.join(j.weak)}"


def choose(judged: list[Judged]) -> Choice:
    """Apply the rule to every strategy measured.

    Args:
        judged: One entry per strategy (any order).

    Returns:
        The recommendation with its reasons.
    """
    ordered = sorted(judged, key=lambda j: cost_key(j.strategy))
    for i, j in enumerate(ordered):
        if j.eligible:
            head = (f"{j.strategy}: keeps every connection ({keep_text(j)}) and keeps the loop free "
                    f"({loop_text(j)})")
            return Choice(j.strategy, reasons=[head] + [_why_not(o) for o in ordered[:i]])
    if not ordered:
        return Choice(None, reasons=["no strategy was measured"])

    def closeness(j: Judged) -> tuple[int, int, int, float]:
        a = j.advice
        share = a.stalled_share.value if a.stalled_share is not None and a.stalled_share.known else 1.0
        return (j.keep.outcome != "kept", not j.loop_free, not j.strong, share)

    best = min(ordered, key=closeness)
    return Choice(None, closest=best.strategy,
                  reasons=["no strategy keeps every connection and the loop free on strong evidence"]
                  + [_why_not(o) for o in ordered] + [f"closest: {best.strategy} ({loop_text(best)})"])


__all__ = ["CONFIRMED", "COST_ORDER", "Choice", "Judged", "Keep", "MEASURED", "PREDICTED", "choose",
           "cost_key", "keep_text", "loop_text"]
