"""``wsblock advise --fast``: a predicted recommendation, confirmed by the fewest real cells that can decide.

The profile (:mod:`wsblock.advise.profile`) predicts each strategy's stall
pattern and keepalive outcome (:mod:`wsblock.advise.stallpred`). Here that
prediction is turned into the evidence the recommendation rule reads
(:class:`wsblock.advise.choose.Judged`), so that the same rule
(:func:`wsblock.advise.choose.choose`, over
:func:`wsblock.analysis.rules.loop_check`) picks the predicted
recommendation. Then real cells confirm two strategies only:

* the **recommended** one, in windows sized, as the full ``advise`` sizes
  them, to observe a keepalive timeout at the user's settings;
* the **rejected** one: the strategy just cheaper than the recommendation in
  cost order, the one the rule would have picked had the prediction been
  wrong about it; a short window shows whether it stalls the loop, which
  is all a rejection needs.

The confirmed strategies' measured evidence replaces their prediction and
the rule is applied again to the mix. Where the confirmation contradicts
the prediction (the recommendation lost connections or stalled the loop, or
the rejected strategy kept the loop free), one more round confirms the
strategy the rule now picks; an answer that still rests on a prediction
alone is no answer (the full ``advise`` decides).

Fewer repeats than the full matrix's 3 are the point of ``--fast``: a
measured strategy's "fewer than 3 repeats" weakness is excused here, and
said so. Every other weakness (a caveat that could make it look safer, a
failed repeat) still counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from wsblock.advise import choose as ch
from wsblock.advise import stallpred as sp
from wsblock.analysis import recommend as rec
from wsblock.analysis import rules

FAST_REPEATS = 1
"""Repeats of each confirming cell unless ``--repeats`` says otherwise."""

REJECT_JOBS = 3
"""Typical calls per job connection in the window that confirms a rejection (at least :data:`REJECT_MIN_S`)."""

REJECT_MIN_S = 2.0
"""Shortest window confirming a rejection: a few hundred probe samples, enough to show a loop stalled or busy."""

PROBE_MARGIN = 1.5
"""How many times the probe samples its percentiles need the window confirming a rejection allows for."""

REJECT_WARMUP_S = 0.5
"""Warm-up before a window confirming a rejection."""

GIL_WAIT_SHARE = 0.5
"""A thread that holds the GIL this share of the time or more (N calls together) keeps the loop waiting.

The loop then gets the GIL back only at the worker's next switch interval
on most of its wake-ups, so its loop-lag p50 is about the switch interval:
over :data:`wsblock.analysis.rules.BUSY_LAG_MS` at the default 5 ms."""

PREDICTED_PROBE = "predicted from the profile: no probe"
"""Why a predicted strategy's loop-lag percentiles are not read: the rule reads its stall figures."""


@dataclass(frozen=True)
class Shape:
    """What the prediction needs of the call beyond :class:`wsblock.advise.stallpred.Stalls`.

    Attributes:
        hold_share: Share of the call spent holding the GIL (the probe's summed lateness).
        step_ms: A step's length (the whole call when it does not yield).
        switch_interval_ms: ``sys.getswitchinterval()`` in ms.
        releases_gil: The workload says it releases the GIL.
    """

    hold_share: float
    step_ms: float
    switch_interval_ms: float
    releases_gil: bool = False


def lag_p50_ms(strategy: str, shape: Shape, *, concurrency: int) -> float:
    """The loop-lag p50 a strategy's mechanism predicts where it keeps the loop busy; NaN elsewhere.

    * ``chunked``: the loop runs the N calls' steps back to back, so a
      wake-up is late by about N steps (the cells measure a loop-lag p50 of
      one to three 10 ms steps with one call at once);
    * ``thread``: a call that holds the GIL :data:`GIL_WAIT_SHARE` of the
      time or more makes the loop wait about one switch interval per wake-up.

    Elsewhere the rule reads the predicted stalled share instead (NaN).
    """
    n = max(1, concurrency)
    if strategy == "chunked":
        return n * shape.step_ms
    if strategy == "thread" and not shape.releases_gil and min(1.0, n * shape.hold_share) >= GIL_WAIT_SHARE:
        return shape.switch_interval_ms
    return math.nan


def _quantity(value: float) -> rec.Quantity:
    return rec.Quantity(value, value, value, 0 if math.isnan(value) else 1)


def _keep_outcome(forecast: object) -> str:
    outcome = getattr(forecast, "outcome", None)
    return outcome if outcome in ("kept", "lost") else "unknown"


def predicted_judged(predicted: list[sp.Predicted], shape: Shape, *, name: str, concurrency: int,
                     stall_ms: float, ping_timeout: float | None) -> list[ch.Judged]:
    """The prediction as the rule's evidence: one :class:`~wsblock.advise.choose.Judged` per strategy.

    A predicted strategy has the loop figures of one repeat: its predicted
    longest stall and stalled share (as the watchdog would record them: none
    under the stall threshold), and the loop-lag p50 of :func:`lag_p50_ms`;
    its keepalive outcome is the boundary model's forecast (``near``:
    unknown). It carries no caveat, so its evidence counts as strong: the
    prediction is the rule's input, the confirmation its check.
    """
    out = []
    for p in predicted:
        s, f = p.stalls, p.forecast
        longest = s.heartbeat_ms if s.stalls else 0.0
        share = s.share if s.stalls else 0.0
        p50 = lag_p50_ms(s.strategy, shape, concurrency=concurrency)
        figures = rules.LoopFigures(1, (p50, p50), (math.nan, math.nan), False, PREDICTED_PROBE,
                                    (longest, longest), (share, share), -1, ping_timeout)
        loop = rules.loop_check(figures, stall_ms)
        keep = ch.Keep(_keep_outcome(f), ch.PREDICTED, None, f)
        verdict = (rec.DROPS if keep.outcome == "lost" else rec.SLOW_LOOP if loop.free is False
                   else rec.SAFE if keep.outcome == "kept" and loop.free else rec.INCONCLUSIVE)
        advice = rec.Advice(name, s.strategy, verdict, stall=_quantity(longest), stalled_share=_quantity(share),
                            lag_p50=_quantity(p50), loop=loop, figures=figures)
        out.append(ch.Judged(s.strategy, advice, keep, stall_ms, shape.releases_gil, _quantity(p50)))
    return out


def few_repeats(blocker: str) -> bool:
    """Whether a weakness is only that the cells have fewer repeats than the full matrix needs."""
    return blocker.endswith(f"fewer than {rec.MIN_REPEATS}") or (
        f"fewer than {rec.MIN_REPEATS} measured repeats" in blocker)


def excused(j: ch.Judged) -> ch.Judged:
    """A measured strategy with its "fewer than 3 repeats" weakness excused (``--fast`` runs fewer on purpose)."""
    a = j.advice
    kept = tuple(b for b in a.blockers if not few_repeats(b))
    return replace(j, advice=replace(a, blockers=kept, weak=tuple(w for w in a.weak if not few_repeats(w))))


def rejected(choice: ch.Choice, strategies: list[str]) -> str | None:
    """The strategy just cheaper than the recommendation (or the closest): the one the rule turns to next."""
    picked = choice.strategy or choice.closest
    if picked is None:
        return None
    cheaper = [s for s in sorted(strategies, key=ch.cost_key) if ch.cost_key(s) < ch.cost_key(picked)]
    return cheaper[-1] if cheaper else None


def mix(predicted: list[ch.Judged], measured: dict[str, ch.Judged]) -> list[ch.Judged]:
    """Each strategy's measured evidence where confirmed, its prediction elsewhere."""
    return [measured.get(j.strategy, j) for j in predicted]


def another_repeat_decides(j: ch.Judged) -> bool:
    """Whether the strategy failed only by stalling in every repeat, which another repeat can overturn.

    The rule lets a strategy stall in some repeats, not in all (a shared
    machine stalls any loop now and then). With one repeat, one stall is
    "every repeat": the cells cannot yet tell the machine from the strategy.
    """
    check = j.check
    if not check.stalled or j.keep.outcome != "kept" or not j.strong:
        return False  # something else stands in its way: more repeats cannot make it eligible
    return rules.loop_check(replace(j.figures, stalled_repeats=0), j.stall_ms).free is True


def thin_probe(j: ch.Judged) -> bool:
    """Whether the cells' loop figures came from the stall watchdog because the probe saw too few wake-ups."""
    return bool(j.figures.probe)


def keeps_loop_free_unconfirmed(j: ch.Judged) -> bool:
    """A rejection's short cell kept the loop free: the rejection is contradicted, its keepalive still unknown."""
    return j.loop_free and j.keep.outcome != "lost" and not j.eligible


@dataclass(frozen=True)
class Difference:
    """One point where the prediction and the confirming cells disagree.

    Attributes:
        strategy: The strategy.
        what: What they disagree on, in words.
        predicted: The predicted value, in words.
        measured: The measured value, in words.
    """

    strategy: str
    what: str
    predicted: str
    measured: str

    def text(self) -> str:
        """``thread, the loop: predicted free, measured not free (...)``."""
        return f"{self.strategy}, {self.what}: predicted {self.predicted}, measured {self.measured}"


def _free_text(j: ch.Judged) -> str:
    check = j.check
    if check.free is True:
        return "free"
    if check.free is False:
        return "not free (" + "; ".join(check.failures) + ")"
    return "not shown free (" + "; ".join(check.missing + check.unstable) + ")"


def differences(predicted: ch.Judged, measured: ch.Judged, *, stall_ms: float, sized: bool) -> list[Difference]:
    """Where one strategy's prediction and its confirming cells disagree.

    Compared: whether it keeps the loop free, its keepalive outcome (where
    the cells' windows could show one: ``sized``), whether it stalls beyond
    the stall threshold at all, and whether the rule finds it eligible.
    """
    out = []
    name = predicted.strategy
    if predicted.loop_free != measured.loop_free:
        out.append(Difference(name, "the loop", _free_text(predicted), _free_text(measured)))
    m_keep = measured.keep.outcome
    if sized and m_keep != "unknown" and predicted.keep.outcome != m_keep:
        out.append(Difference(name, "connections", predicted.keep.outcome, m_keep))
    p_stall = predicted.advice.stall.value if predicted.advice.stall is not None else math.nan
    m_stall = measured.advice.stall.value if measured.advice.stall is not None else math.nan
    if math.isfinite(p_stall) and math.isfinite(m_stall) and (p_stall > stall_ms) != (m_stall > stall_ms):
        out.append(Difference(name, f"stalls over {stall_ms:g} ms",
                              f"{p_stall:,.0f} ms" if p_stall > stall_ms else "none",
                              f"{m_stall:,.0f} ms" if m_stall > stall_ms else "none"))
    if sized and predicted.eligible != measured.eligible:
        out.append(Difference(name, "eligible by the rule", "yes" if predicted.eligible else "no",
                              "yes" if measured.eligible else "no"))
    return out


def contradiction(predicted: ch.Judged, measured: ch.Judged) -> str:
    """How the cells contradict a predicted recommendation, in plain words (empty: they do not)."""
    if measured.eligible:
        return ""
    name = predicted.strategy
    if measured.keep.outcome == "lost":
        p = measured.keep.connections
        lost = f" ({p.k} of {p.n} connections lost)" if p is not None and p.n else ""
        return f"{name} lost connections in its cells{lost}"
    if measured.check.free is False:
        return f"{name} stalled the loop in its cells ({'; '.join(measured.check.failures)})"
    if measured.keep.outcome != "kept":
        return f"{name}'s cells could not show that it keeps connections"
    if measured.check.free is None:
        return f"{name}'s cells could not show the loop free ({'; '.join(measured.check.missing)})"
    return f"{name}'s evidence is weak: {'; '.join(measured.weak)}"


__all__ = ["Difference", "FAST_REPEATS", "GIL_WAIT_SHARE", "PREDICTED_PROBE", "PROBE_MARGIN",
           "REJECT_JOBS", "REJECT_MIN_S", "REJECT_WARMUP_S", "Shape", "another_repeat_decides", "contradiction",
           "differences", "excused", "few_repeats", "keeps_loop_free_unconfirmed", "lag_p50_ms", "mix",
           "predicted_judged", "rejected", "thin_probe"]
