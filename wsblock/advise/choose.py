"""The recommendation rule: the cheapest strategy that keeps connections and the loop free.

Strategies cost more in this order: ``inline`` < ``chunked`` < ``thread`` <
``process`` (no pool, then cooperative steps, then threads, then processes
that pickle every job). A strategy is *eligible* when

* it **keeps every connection**: measured (the cells' verdict is ``kept``), or
  predicted by the boundary model (:mod:`wsblock.advise.predict`) with a loss
  probability under 5 %, or, near the boundary, confirmed by cells whose
  windows could show a timeout;
* it **keeps the loop free**, by the same predicate as the report's ``safe``
  (:func:`wsblock.analysis.rules.loop_check`): not stalled in every repeat,
  loop-lag p99 under the stall threshold and p50 under
  :data:`~wsblock.analysis.rules.BUSY_LAG_MS` in the worst repeat, and the
  worst repeat's longest stall under
  :data:`~wsblock.analysis.rules.STALL_BUDGET_SHARE` of ``ping_timeout``. It
  fails closed: a withheld or missing percentile never passes; the
  watchdog's stall figures stand in where the probe is thin, and where
  neither exists the strategy is not eligible and the reason names the
  missing figure;
* its **evidence is strong**: no caveat that could have made it look safer
  in its own cells, at least 3 repeats, no failed repeat
  (:attr:`wsblock.analysis.recommend.Advice.blockers`).

The recommendation is the first eligible strategy in cost order. When none
is eligible, the strategies are ranked by what was measured
(:func:`wsblock.analysis.rules.rank`: connections kept, then the loop
figures, then cost, never putting first a strategy that another beats by
the evidence) and the first is named as the closest, with why it still
falls short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wsblock.advise.predict import Forecast
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.analysis import rules
from wsblock.report import markdown as md
from wsblock.schema import caveats as cv

COST_ORDER = ("inline", "chunked", "thread", "process")
"""Strategies from the cheapest to the dearest."""

BUSY_LAG_MS = rules.BUSY_LAG_MS
"""A median loop-lag at or over this: the loop is busy with the work (:data:`wsblock.analysis.rules.BUSY_LAG_MS`)."""

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
    def check(self) -> rules.LoopCheck:
        """The loop-free rule's answer (:func:`wsblock.analysis.rules.loop_check`).

        The advice's own answer over its cells where it has one; otherwise
        (an advice assembled by hand) the same rule on its reference cell's
        figures, the interval ends standing for the best and worst repeat.
        """
        a = self.advice
        if a.verdict == rec.NO_DATA:
            return rules.LoopCheck(None, missing=("no measured repeat",))
        if a.loop is not None and a.figures is not None and self.stall_ms == rules.STALL_MS:
            return a.loop
        return rules.loop_check(self.figures, self.stall_ms)

    @property
    def figures(self) -> rules.LoopFigures:
        """The reference cell's loop figures (best and worst repeat).

        Read from the cells by :func:`wsblock.analysis.rules.figures` where
        the advice has them; otherwise from its medians' intervals, whose
        ends are the best and worst repeat up to 5 repeats, and only when
        every repeat has the figure.
        """
        a = self.advice
        if a.figures is not None:
            return a.figures
        repeats = a.reference.repeats if a.reference is not None else a.repeats[1]

        def ends(q: rec.Quantity | None) -> tuple[float, float]:
            if q is None or not q.known or q.n < repeats:
                return (math.nan, math.nan)
            low = q.low if math.isfinite(q.low) else q.value
            high = q.high if math.isfinite(q.high) else q.value
            return (min(low, q.value), max(high, q.value))

        p50, p99 = ends(self.lag_p50 if self.lag_p50 is not None else a.lag_p50), ends(a.lag_p99)
        why = "" if not (math.isnan(p50[1]) or math.isnan(p99[1])) else "a percentile withheld or missing"
        stalled = repeats if a.stalled else (0 if a.stall is not None and a.stall.known else -1)
        pt = a.reference.ping_timeout if a.reference is not None else None
        return rules.LoopFigures(repeats, p50, p99, False, why, ends(a.stall), ends(a.stalled_share), stalled, pt)

    @property
    def responsive(self) -> bool:
        """Not stalled in every repeat, and the loop-lag p99 (or the stalled share) under its threshold."""
        return self.check.responsive is True

    @property
    def idle(self) -> bool:
        """The loop's median wake-up is under :data:`BUSY_LAG_MS` late (or the stalled share under its threshold)."""
        return self.check.idle is True

    @property
    def loop_free(self) -> bool:
        """The loop-free rule says free (never when a figure it needs is missing)."""
        return self.check.free is True

    @property
    def weak(self) -> tuple[str, ...]:
        """What makes the evidence weak: caveats that could have made it look safer, few or failed repeats.

        A loop figure that is missing or varies across its threshold is
        answered by :attr:`loop_free` (fail closed), not here.
        """
        a = self.advice
        weak = a.blockers if a.loop is not None else tuple(w for w in a.weak if not w.startswith(UNSTABLE))
        if self.keep.basis == PREDICTED:
            # Survival comes from the stalls through the model, not from the
            # window: a caveat about what the window could observe of
            # survival does not weaken it.
            moot = {f.sentence() for f in a.findings
                    if (c := cv.BY_CODE.get(f.code)) is not None and c.window_survival_only}
            weak = tuple(w for w in weak if w not in moot)
        return weak

    @property
    def strong(self) -> bool:
        """Whether the evidence behind the verdict is strong enough."""
        return self.advice.verdict != rec.NO_DATA and not self.weak

    @property
    def eligible(self) -> bool:
        """Keeps every connection, keeps the loop free, on strong evidence."""
        return self.keep.outcome == "kept" and self.loop_free and self.strong

    def standing(self) -> rules.Standing:
        """What was measured of it, for :func:`wsblock.analysis.rules.rank`."""
        a = self.advice
        f = self.figures
        k = self.keep
        repeats = (0, 0)
        connections = (0, 0)
        if k.basis != PREDICTED and a.verdict != rec.NO_DATA:
            lost, n = a.repeats_lost
            if not n and k.outcome == "lost":
                n = lost = max(a.repeats[1], 1)  # a loss, with no per-repeat count: every repeat counts
            repeats = (lost, n)
            if k.connections is not None and k.connections.n:
                connections = (k.connections.k, k.connections.n)
        predicted = k.forecast.p if k.forecast is not None else (1.0 if k.outcome == "lost" else math.nan)
        return rules.Standing(self.strategy, repeats, connections, (f.share, f.stall, f.p50),
                              cost_key(self.strategy)[0], predicted)


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


def cost_key(strategy: str) -> tuple[int, str]:
    """Sort key of strategies, cheapest first (unknown ones last, by name)."""
    return (COST_ORDER.index(strategy), "") if strategy in COST_ORDER else (len(COST_ORDER), strategy)


def _share(value: float) -> str:
    return f"{value * 100:.0f} %"


def loop_text(j: Judged, *, share: bool = True) -> str:
    """The loop figures of a strategy in words: ``loop-lag p99 4 ms, no stall over 50 ms``."""
    a = j.advice
    p50 = j.lag_p50 if j.lag_p50 is not None else a.lag_p50
    lags = [f"{name} {md.ms(q.value)} ms" for name, q in (("p50", p50), ("p99", a.lag_p99))
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
        a = j.advice
        kind = f", {a.loss_kind}: {a.repeat_loss.text()}" if a.repeat_loss is not None else ""
        return f"{name} loses connections{kind} ({keep_text(j)})"
    check = j.check
    if check.free is None and not check.failures:
        missing = "; ".join(check.missing + check.unstable)
        return f"{name} cannot be shown to keep the loop free: {missing}"
    if check.within_budget is False and check.responsive is not False and check.idle is not False:
        return f"{name} does not keep the loop free: {'; '.join(check.failures)}"
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
        reasons = "; ".join(check.failures) or f"the loop was stalled {held}"
        return f"{name} does not keep the loop free: {reasons} ({figures})"
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

    ranked = rules.rank([j.standing() for j in ordered])
    best = next(j for j in ordered if j.strategy == ranked[0].strategy)
    beaten = []
    for o in ordered:
        d = rules.dominated_by(o.standing(), ranked)
        if d is not None:
            on = rules.established_better(d, o.standing())
            beaten.append(f"{o.strategy} is beaten by {d.strategy} on what was measured"
                          + (f" ({', '.join(on)}: in every repeat, or established over repeats)" if on
                             else " (no worse on any figure, better on one)"))
    return Choice(None, closest=best.strategy,
                  reasons=["no strategy keeps every connection and the loop free on strong evidence"]
                  + [_why_not(o) for o in ordered]
                  + [f"closest: {best.strategy}, ranked by what was measured (connections kept, then the loop "
                     f"figures, then cost): {loop_text(best)}; it still falls short: {_why_not(best)}"]
                  + beaten)


__all__ = ["CONFIRMED", "COST_ORDER", "Choice", "Judged", "Keep", "MEASURED", "PREDICTED", "choose",
           "cost_key", "keep_text", "loop_text"]
