"""The verdict rules: from a strategy's aggregated cells to what a reviewer may conclude.

One module, read by the report's verdict (:mod:`wsblock.analysis.recommend`),
by ``wsblock advise`` (:mod:`wsblock.advise.choose`) and by FINDINGS, so a
strategy cannot be ``safe`` in one and not in another. Its inputs are the
aggregated cells (one row per cell, :func:`wsblock.analysis.cells.aggregate`);
every threshold is a named constant below.

**The repeat is the unit.** A repeat is one server process and one window:
its connections share one loop and are lost together. Survival is counted
per repeat (repeats that lost any connection, ``k of n``, with a Wilson
interval over repeats); connections lost are a description. A contrast
between two cells is Fisher's exact test over their repeats
(:func:`contrast`), or "not established".

**Loop free** (:func:`loop_check`), per cell, judged on its worst repeat:

* the loop did not stall (a gap over the stall threshold) in every repeat;
* *responsive*: the loop-lag p99 of every repeat under the stall threshold;
* *idle*: the loop-lag p50 of every repeat under :data:`BUSY_LAG_MS`;
* the worst repeat's longest stall under :data:`STALL_BUDGET_SHARE` of
  ``ping_timeout``, the shortest stall that can lose a connection.

It fails closed. A percentile that is withheld (too few probe samples),
missing in some repeat, or not to be read (the record's stall figures lead)
never passes: the watchdog's stall figures stand in (the share of the
window stalled under :data:`STALLED_SHARE_FREE` in every repeat). Where
neither exists the loop is not shown free, and the reason names the missing
figure.

**Caveats** (:mod:`wsblock.schema.caveats`) block ``safe`` only when they
could have made the cell look safer, and only in the workload x strategy's
own cells; a harsher condition is stated beside the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from scipy import stats

from wsblock.analysis import intervals as iv
from wsblock.engine.checks import DRIFT_LIMIT
from wsblock.engine.exposure import DEFAULT_MIN_CYCLES
from wsblock.engine.probe import FEW_PROBE_SAMPLES
from wsblock.schema import caveats as cv
from wsblock.schema.axes import is_none

MIN_REPEATS = iv.MIN_REPEATS
"""Fewer measured repeats than this in a cell: a ``kept`` is too weak to call ``safe``."""

REQUIRED_CYCLES = DEFAULT_MIN_CYCLES
"""Complete keepalive cycles every repeat must have been at risk for before ``safe``.

The engine's default for a ``kept`` record; a cell run with a lower
``min_cycles`` may say ``kept`` after fewer, which the rules do not accept."""

STALL_MS = 50.0
"""The stall threshold when the caller does not give the run's own ``stall_ms``: a longer loop gap is a stall."""

BUSY_LAG_MS = 2.0
"""A loop-lag p50 at or over this means the loop is busy with the work.

An idle loop's 1 ms probe wakes a fraction of a millisecond late; a loop
that runs the work itself in steps (``chunked``) is late by about a step,
and one that competes with a thread for the GIL by about the switch
interval (5 ms by default), on most wake-ups."""

STALLED_SHARE_FREE = 0.01
"""Where the probe is thin, the loop counts as free only if every repeat was stalled under this share of its window.

The watchdog's reading of "p99 under the stall threshold": fewer than 1 %
of the window's time in gaps longer than the stall threshold."""

STALL_BUDGET_SHARE = 0.5
"""The worst repeat's longest stall must stay under this share of ``ping_timeout`` for ``safe``.

A stall longer than ``ping_timeout`` can lose a connection, depending on
where the ping falls (one over ``ping_interval + ping_timeout`` is sure to):
half of it leaves a margin for a longer stall than the window happened to
show."""

REPRODUCIBLE_SHARE = 0.5
"""A loss in more than this share of a cell's repeats is reproducible; in fewer (but some), intermittent."""

ALPHA = 0.05
"""Significance of Fisher's exact test over repeats for a contrast between two cells."""

PROBE_LIMIT = FEW_PROBE_SAMPLES
"""Fewer probe samples than this in a repeat: its percentiles are not read (the engine withholds them)."""

DRIFT = DRIFT_LIMIT
"""How far ``work_ratio_to_target`` must be from 1 to count as calibration drift."""

PROBE = "probe"
WATCHDOG = "watchdog"

REPRODUCIBLE = "reproducible"
INTERMITTENT = "intermittent"


# --- reading an aggregated row ---------------------------------------------------

def number(value: Any) -> float:
    """A finite float, or NaN (None, text, booleans and infinities are NaN)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def count(value: Any) -> int:
    """A whole count (NaN: 0)."""
    n = number(value)
    return 0 if math.isnan(n) else int(round(n))


def flag(value: Any) -> bool:
    """Whether a flag column is set (``True``, ``"true"``, 1)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    try:
        return bool(value) and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def codes(value: Any) -> list[str]:
    """The warning codes of a comma-joined ``warnings`` column."""
    return [c.strip() for c in value.split(",") if c.strip()] if isinstance(value, str) else []


def cell_name(row: Mapping[str, Any]) -> str:
    """The cell's id without its repeat."""
    cell = row.get("cell")
    return str(cell)


def _extreme(row: Mapping[str, Any], metric: str, end: str) -> float:
    """The best (``min``) or worst (``max``) repeat of a metric.

    Rows aggregated without per-repeat extremes fall back to the ends of
    the interval of the median (which, up to 5 repeats, are the extremes),
    then to the median itself.
    """
    for column in (f"{metric}_{end}", f"{metric}_{'low' if end == 'min' else 'high'}", metric):
        value = number(row.get(column))
        if not math.isnan(value):
            return value
    return math.nan


def _complete(row: Mapping[str, Any], metric: str, repeats: int) -> bool:
    """Whether every measured repeat recorded the metric (a count under the repeats: some withheld it)."""
    return repeats > 0 and count(row.get(f"{metric}_n")) >= repeats and not math.isnan(number(row.get(metric)))


# --- the loop ---------------------------------------------------------------------

@dataclass(frozen=True)
class LoopFigures:
    """What the loop-free rule reads of one cell: its best and worst repeats.

    Attributes:
        repeats: Measured repeats.
        p50: ``(best, worst)`` loop-lag p50 in ms over the repeats; NaN when
            not to be read (withheld or missing in some repeat, thin probe).
        p99: Likewise for the loop-lag p99.
        p99_unstable: The p99's spread over the repeats marks the cell unstable.
        probe: Why the probe's percentiles are not read (empty: they are).
        stall: ``(best, worst)`` longest stall in ms; NaN without stall figures.
        share: ``(best, worst)`` share of the window stalled.
        stalled_repeats: Repeats with at least one stall (-1: unknown).
        ping_timeout: The cell's ``ping_timeout`` in seconds (None: none).
    """

    repeats: int
    p50: tuple[float, float] = (math.nan, math.nan)
    p99: tuple[float, float] = (math.nan, math.nan)
    p99_unstable: bool = False
    probe: str = ""
    stall: tuple[float, float] = (math.nan, math.nan)
    share: tuple[float, float] = (math.nan, math.nan)
    stalled_repeats: int = -1
    ping_timeout: float | None = None

    @property
    def stalls(self) -> bool:
        """Whether the watchdog's stall figures exist for every repeat."""
        return not math.isnan(self.stall[1]) and not math.isnan(self.share[1])


def figures(row: Mapping[str, Any]) -> LoopFigures:
    """The loop figures of one aggregated cell, read so that nothing missing can pass."""
    n = count(row.get("ok_repeats"))
    why = ""
    samples = _extreme(row, "lag_samples", "min")
    if flag(row.get("stalls_primary")):
        why = "the stall figures lead: the probe saw too little of the blocked loop"
    elif not math.isnan(samples) and samples < PROBE_LIMIT:
        why = f"withheld: {samples:.0f} probe samples in a repeat, under {PROBE_LIMIT}"

    def probe(metric: str) -> tuple[float, float]:
        if why or not _complete(row, metric, n):
            return (math.nan, math.nan)
        return (_extreme(row, metric, "min"), _extreme(row, metric, "max"))

    p50, p99 = probe("lag_p50_ms"), probe("lag_p99_ms")
    if not why and (math.isnan(p99[1]) or math.isnan(p50[1])):
        missing = [name for name, q in (("p50", p50), ("p99", p99)) if math.isnan(q[1])]
        why = f"{' and '.join(missing)} withheld or missing in some repeat"
    stalls = _complete(row, "stall_max_ms", n) and _complete(row, "stalled_share", n)
    stall = (_extreme(row, "stall_max_ms", "min"), _extreme(row, "stall_max_ms", "max")) if stalls \
        else (math.nan, math.nan)
    share = (_extreme(row, "stalled_share", "min"), _extreme(row, "stalled_share", "max")) if stalls \
        else (math.nan, math.nan)
    if "repeats_stalled" in row and not math.isnan(number(row.get("repeats_stalled"))) \
            and _complete(row, "stalls_count", n):
        stalled = count(row.get("repeats_stalled"))
    elif _complete(row, "stalls_count", n):
        # Without per-repeat counts: the lower end of the interval of the
        # median is the fewest stalls of a repeat up to 5 repeats.
        stalled = n if number(row.get("stalls_count_low")) >= 1 else 0
    else:
        stalled = -1
    unstable = "lag_p99_ms" in str(row.get("unstable_reasons") or "") or (
        flag(row.get("unstable")) and not row.get("unstable_reasons"))
    pt = row.get("ping_timeout")
    return LoopFigures(n, p50, p99, unstable, why, stall, share, stalled, None if is_none(pt) else float(pt))


@dataclass(frozen=True)
class LoopCheck:
    """The loop-free rule's answer for one cell or one strategy.

    Attributes:
        free: ``True`` (loop free), ``False`` (shown not free) or ``None``
            (cannot be shown either way: a figure is missing, or the figure
            the answer rests on varies across the threshold).
        basis: :data:`PROBE` when the probe's percentiles decided,
            :data:`WATCHDOG` when the stall figures stood in.
        stalled: The loop stalled in every repeat.
        responsive: Loop-lag p99 (or the watchdog's stalled share) under its
            threshold, and not stalled in every repeat (None: unknown).
        idle: Loop-lag p50 (or the watchdog's stalled share) under its
            threshold (None: unknown).
        within_budget: The worst repeat's longest stall under
            :data:`STALL_BUDGET_SHARE` of ``ping_timeout`` (None: unknown).
        failures: Why the loop is not free, in words with the figures.
        missing: Which figures were missing, in words.
        unstable: Figures whose repeats vary across the threshold, in words.
        cells: The cells behind each failure, missing or unstable figure.
    """

    free: bool | None
    basis: str = PROBE
    stalled: bool = False
    responsive: bool | None = True
    idle: bool | None = True
    within_budget: bool | None = True
    failures: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unstable: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def loop_check(f: LoopFigures, stall_ms: float = STALL_MS) -> LoopCheck:
    """The loop-free rule on one cell's figures (see the module's docstring).

    Args:
        f: The cell's figures (:func:`figures`).
        stall_ms: The run's stall threshold.

    Returns:
        The answer with its reasons; never ``free`` when a figure it needs is
        missing.
    """
    failures: list[str] = []
    missing: list[str] = []
    unstable: list[str] = []
    stalled = f.stalls and f.repeats > 0 and f.stalled_repeats >= f.repeats
    if stalled:
        failures.append(f"the loop stalled (a gap over {stall_ms:g} ms) in every repeat ({f.stalled_repeats} of "
                        f"{f.repeats}), the longest {_ms(f.stall[1])} ms, {f.share[1]:.0%} of the window stalled")
    used_watchdog = False
    responsive: bool | None
    idle: bool | None
    why = f.probe or "withheld or missing in some repeat"
    low, high = f.p99
    if not math.isnan(high):
        responsive = high < stall_ms
        if not responsive and f.p99_unstable and low < stall_ms:
            unstable.append(f"loop-lag p99 varies across the {stall_ms:g} ms threshold over the repeats "
                            f"({_ms(low)} to {_ms(high)} ms)")
            responsive = None
        elif not responsive:
            failures.append(f"loop-lag p99 {_ms(high)} ms in the worst repeat, over the {stall_ms:g} ms stall "
                            "threshold")
    elif f.stalls:
        # The probe is thin: the watchdog's stalled share stands in for the p99.
        used_watchdog = True
        responsive = f.share[1] < STALLED_SHARE_FREE
        if not responsive and not stalled:
            failures.append(f"the loop was stalled {f.share[1]:.0%} of the window in the worst repeat (loop-lag "
                            f"p99 not read: {why})")
    else:
        responsive = None
        missing.append(f"loop-lag p99 ({why}) and the watchdog's stall figures")
    if not math.isnan(f.p50[1]):
        idle = f.p50[1] < BUSY_LAG_MS
        if not idle:
            failures.append(f"loop-lag p50 {_ms(f.p50[1])} ms in the worst repeat: the loop was busy on most of "
                            f"its wake-ups (a free loop's is under {BUSY_LAG_MS:g} ms)")
    elif f.stalls:
        used_watchdog = True
        idle = f.share[1] < STALLED_SHARE_FREE
        if not idle and not stalled and not any(t.startswith("the loop was stalled") for t in failures):
            failures.append(f"the loop was stalled {f.share[1]:.0%} of the window in the worst repeat (loop-lag "
                            f"p50 not read: {why})")
    else:
        idle = None
        if not any(m.startswith("loop-lag p99") for m in missing):
            missing.append(f"loop-lag p50 ({why}) and the watchdog's stall figures")
        else:
            missing[-1] = missing[-1].replace("loop-lag p99", "loop-lag p50 and p99", 1)
    basis = WATCHDOG if used_watchdog else PROBE
    if responsive is not None:
        responsive = responsive and not stalled
    within: bool | None = True
    if not f.stalls:
        within = None
        if not missing:
            missing.append("the watchdog's longest stall")
    elif f.ping_timeout is not None and f.ping_timeout > 0:
        budget = STALL_BUDGET_SHARE * f.ping_timeout * 1000.0
        within = f.stall[1] < budget
        if not within:
            failures.append(f"the worst repeat's longest stall was {_ms(f.stall[1])} ms, not under "
                            f"{STALL_BUDGET_SHARE:g} x ping_timeout ({_ms(budget)} ms)")
    free: bool | None
    if failures:
        free = False
    elif missing or unstable:
        free = None
    else:
        free = True
    return LoopCheck(free, basis, stalled, responsive, idle, within, tuple(failures), tuple(missing),
                     tuple(unstable))


def combine(checks: Sequence[tuple[str, LoopCheck]]) -> LoopCheck:
    """The loop-free answer of a strategy over its cells: free only if every cell is.

    Args:
        checks: ``(cell, check)`` per cell.
    """
    if not checks:
        return LoopCheck(None, missing=("no measured cell",))
    failing = [(c, k) for c, k in checks if k.free is False]
    unsure = [(c, k) for c, k in checks if k.free is None]

    def joined(pairs: list[tuple[str, LoopCheck]], attr: str) -> tuple[str, ...]:
        return tuple(f"{text} (cell {c})" for c, k in pairs for text in getattr(k, attr))

    def all_of(attr: str) -> bool | None:
        values = [getattr(k, attr) for _, k in checks]
        if any(v is False for v in values):
            return False
        return None if any(v is None for v in values) else True

    free = False if failing else (None if unsure else True)
    chosen = failing or unsure
    return LoopCheck(
        free, WATCHDOG if any(k.basis == WATCHDOG for _, k in checks) else PROBE,
        any(k.stalled for _, k in checks), all_of("responsive"), all_of("idle"), all_of("within_budget"),
        joined(failing, "failures"), joined(unsure, "missing"), joined(unsure, "unstable"),
        tuple(c for c, _ in chosen))


# --- caveats ------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One warning code as it bears on a strategy's verdict.

    Attributes:
        code: The warning code.
        direction: :data:`~wsblock.schema.caveats.HARSHER` or
            :data:`~wsblock.schema.caveats.SAFER`.
        cells: The strategy's own cells where it occurred in that direction.
        text: What it means, in words (see :meth:`sentence`).
    """

    code: str
    direction: str
    cells: tuple[str, ...]
    text: str

    def sentence(self, most: int = 3) -> str:
        """``load_saturated in 1 cell (x): the load sent fewer ..., which could have made it look safer``."""
        cells = list(self.cells)
        more = len(cells) - most
        where = ", ".join(cells[:most]) + (f" and {more} more" if more > 0 else "")
        tail = ("which could have made it look safer" if self.direction == cv.SAFER
                else "which can only make it harsher")
        return (f"{self.code} in {len(cells)} cell{'s' if len(cells) != 1 else ''} ({where}): "
                f"{self.text}, {tail}")


def _drift_direction(row: Mapping[str, Any]) -> tuple[str, float]:
    """The direction of ``calibration_drift`` in a cell: safer if any repeat ran short, else harsher if any ran long."""
    low, high = _extreme(row, "work_ratio_to_target", "min"), _extreme(row, "work_ratio_to_target", "max")
    d = cv.direction("calibration_drift", None if math.isnan(low) else low, limit=DRIFT)
    if d == cv.SAFER:
        return d, low
    d = cv.direction("calibration_drift", None if math.isnan(high) else high, limit=DRIFT)
    return (cv.SAFER, math.nan) if d == cv.NEUTRAL else (d, high)


def _harsher_text(code: str, row: Mapping[str, Any], ratio: float) -> str:
    if code == "oversubscribed":
        cpus = count(row.get("machine_cpus"))
        return ("both cores busy" if cpus == 2 else f"all {cpus} cores busy" if cpus > 2
                else cv.caveat(code).harsher)
    if code == "calibration_drift" and not math.isnan(ratio):
        return f"jobs longer than their target ({ratio:.2f} x)"
    return cv.caveat(code).harsher


def findings(rows: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """The caveats of a strategy's own cells that bear on its verdict, by code and direction.

    ``few_samples`` is left to the figures it concerns (:func:`figures`
    never reads a thin probe's percentiles), and neutral codes are dropped.
    """
    found: dict[tuple[str, str], tuple[list[str], str]] = {}
    for row in rows:
        for code in codes(row.get("warnings")):
            declared = cv.caveat(code)
            ratio = math.nan
            if declared.direction == cv.BY_SIGN:
                direction, ratio = _drift_direction(row)
            else:
                direction = declared.direction
            if direction in (cv.NEUTRAL, cv.OF_FIGURE):
                continue
            text = _harsher_text(code, row, ratio) if direction == cv.HARSHER else (
                f"{declared.safer}" + (f" ({ratio:.2f} x)" if code == "calibration_drift" and not math.isnan(ratio)
                                       else ""))
            cells, _ = found.setdefault((code, direction), ([], text))
            cells.append(cell_name(row))
    return [Finding(code, d, tuple(cells), text) for (code, d), (cells, text) in found.items()]


def harsher_note(found: Iterable[Finding]) -> str:
    """``measured with both cores busy, which can only make it harsher`` (empty: no harsher condition)."""
    texts = list(dict.fromkeys(f.text for f in found if f.direction == cv.HARSHER))
    if not texts:
        return ""
    joined = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]
    return f"measured with {joined}, which can only make it harsher"


# --- survival, per repeat -------------------------------------------------------------

@dataclass(frozen=True)
class RepeatLoss:
    """Survival of one cell counted per repeat.

    Attributes:
        cell: The cell.
        repeats: Repeats with connection counts (:attr:`lost` is over these).
        lost: Repeats that lost any connection, with a Wilson interval over repeats.
        connections: ``(lost, at risk)`` original connections, as a description.
    """

    cell: str
    repeats: int
    lost: iv.Proportion
    connections: tuple[int, int]

    @property
    def kind(self) -> str:
        """:data:`REPRODUCIBLE` (most repeats), :data:`INTERMITTENT` (some) or ``""`` (none)."""
        if self.lost.k == 0 or not self.repeats:
            return ""
        return REPRODUCIBLE if self.lost.k / self.repeats > REPRODUCIBLE_SHARE else INTERMITTENT

    def text(self) -> str:
        """``lost in 2 of 3 repeats [0.21, 0.94] (5 of 18 connections)``."""
        p = self.lost
        return (f"lost in {p.k} of {p.n} repeats [{p.low:.2f}, {p.high:.2f}] "
                f"({self.connections[0]} of {self.connections[1]} connections)")


def repeat_loss(row: Mapping[str, Any]) -> RepeatLoss:
    """Repeats of a cell that lost any connection, k of n with a Wilson interval over repeats."""
    n = count(row.get("loss_repeats"))
    k = count(row.get("repeats_lost_any"))
    if not n and row.get("verdict") == "lost":
        # Without per-repeat counts, a lost cell lost in at least one repeat.
        n, k = max(count(row.get("ok_repeats")), 1), 1
    return RepeatLoss(cell_name(row), n, iv.wilson(k, n), (count(row.get("lost_k")), count(row.get("lost_n"))))


@dataclass(frozen=True)
class Contrast:
    """Two cells' survival compared over their repeats.

    Attributes:
        a: ``(repeats that lost any, repeats)`` of the first cell.
        b: Likewise of the second.
        p_value: Fisher's exact test, two-sided (NaN: a side has no repeat).
        established: ``p_value`` under :data:`ALPHA`.
    """

    a: tuple[int, int]
    b: tuple[int, int]
    p_value: float
    established: bool

    def text(self) -> str:
        """``3 of 3 against 1 of 3 repeats: not established (Fisher p = 0.40)``."""
        verdict = "established" if self.established else "not established"
        p = "" if math.isnan(self.p_value) else f" (Fisher's exact test over repeats, p = {self.p_value:.2g})"
        return f"{self.a[0]} of {self.a[1]} against {self.b[0]} of {self.b[1]} repeats: {verdict}{p}"


def contrast(a: tuple[int, int], b: tuple[int, int]) -> Contrast:
    """Whether two cells differ in survival, over repeats (Fisher's exact test at :data:`ALPHA`).

    Args:
        a: ``(repeats that lost any connection, repeats)`` of one cell.
        b: Likewise of the other.
    """
    if a[1] <= 0 or b[1] <= 0:
        return Contrast(a, b, math.nan, False)
    p = float(stats.fisher_exact([[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]).pvalue)
    return Contrast(a, b, p, p < ALPHA)


# --- ranking when no strategy qualifies ------------------------------------------

LOOP_FIGURES = ("stalled share", "longest stall", "loop-lag p50")
"""The loop figures a ranking compares, lower is better, in this order."""


@dataclass(frozen=True)
class Standing:
    """What was measured of one strategy, for ranking.

    Attributes:
        strategy: The strategy.
        repeats: ``(repeats that lost any connection, repeats)``; ``(0, 0)``
            when survival was predicted rather than measured.
        connections: ``(connections lost, connections at risk)``.
        predicted: A predicted loss probability where survival was not
            measured (NaN otherwise).
        loop: Per :data:`LOOP_FIGURES`, ``(best, worst)`` over the repeats;
            NaN when missing (a missing figure is ranked last: fail closed).
        cost: Its place in the cost order (lower is cheaper).
    """

    strategy: str
    repeats: tuple[int, int]
    connections: tuple[int, int]
    loop: tuple[tuple[float, float], ...]
    cost: int
    predicted: float = math.nan

    def loss_share(self) -> float:
        """Share of repeats that lost any connection (else the predicted probability; missing: 1)."""
        if self.repeats[1]:
            return self.repeats[0] / self.repeats[1]
        return self.predicted if not math.isnan(self.predicted) else 1.0

    def connection_share(self) -> float:
        """Share of connections lost (missing: as :meth:`loss_share`)."""
        return self.connections[0] / self.connections[1] if self.connections[1] else self.loss_share()

    def worst(self, i: int) -> float:
        """The worst repeat of loop figure ``i`` (missing: infinite)."""
        value = self.loop[i][1]
        return math.inf if math.isnan(value) else value

    def best(self, i: int) -> float:
        """The best repeat of loop figure ``i`` (missing: infinite)."""
        value = self.loop[i][0]
        return math.inf if math.isnan(value) else value


def established_better(a: Standing, b: Standing) -> list[str]:
    """The figures on which ``a`` is better than ``b`` by an established difference.

    Connections kept: Fisher's exact test over repeats (:func:`contrast`);
    a loop figure: ``a``'s worst repeat is better than ``b``'s best.
    """
    out = []
    if a.repeats[1] and b.repeats[1] and a.loss_share() < b.loss_share() \
            and contrast(a.repeats, b.repeats).established:
        out.append("connections kept")
    for i, name in enumerate(LOOP_FIGURES):
        # Ranges over repeats apart: a's worst repeat is better than b's best.
        if a.worst(i) < b.best(i):
            out.append(name)
    return out


def _descriptive(s: Standing) -> tuple[float, ...]:
    return (s.loss_share(), s.connection_share(), *(s.worst(i) for i in range(len(LOOP_FIGURES))))


def dominated_by(a: Standing, others: Iterable[Standing]) -> Standing | None:
    """Another strategy that beats ``a`` by the evidence, or None.

    ``b`` beats ``a`` when it is better on some figure by an established
    difference and ``a`` is better on none (connections kept: Fisher's exact
    test over repeats; a loop figure: the ranges over the repeats do not
    overlap), or when ``b`` is no worse on every measured figure and better
    on one.
    """
    mine = _descriptive(a)
    for b in others:
        if b.strategy == a.strategy:
            continue
        if established_better(b, a) and not established_better(a, b):
            return b
        theirs = _descriptive(b)
        if all(t <= m for t, m in zip(theirs, mine)) and any(t < m for t, m in zip(theirs, mine)):
            return b
    return None


def rank(standings: Sequence[Standing]) -> list[Standing]:
    """Strategies from the closest to qualifying to the furthest, by what was measured.

    The strategies no other beats by the evidence (:func:`dominated_by`)
    come first; within each group the order is connections kept (share of
    repeats that lost any, then of connections), then the loop figures
    (:data:`LOOP_FIGURES`, worst repeat), then cost. So a strategy that is
    worse on every measured figure than another is never first, and a
    difference in connections that the repeats do not establish cannot put
    a strategy whose loop is far worse ahead of one whose loop is free.
    """
    free = [s for s in standings if dominated_by(s, standings) is None]
    rest = [s for s in standings if s not in free]

    def key(s: Standing) -> tuple[float, ...]:
        return (*_descriptive(s), s.cost)

    return sorted(free, key=key) + sorted(rest, key=key)


__all__ = [
    "ALPHA", "BUSY_LAG_MS", "Contrast", "DRIFT", "Finding", "INTERMITTENT", "LOOP_FIGURES", "LoopCheck",
    "LoopFigures", "MIN_REPEATS", "PROBE", "PROBE_LIMIT", "REPRODUCIBLE", "REPRODUCIBLE_SHARE", "REQUIRED_CYCLES",
    "RepeatLoss", "STALLED_SHARE_FREE", "STALL_BUDGET_SHARE", "STALL_MS", "Standing", "WATCHDOG", "cell_name",
    "codes", "combine", "contrast", "count", "dominated_by", "established_better", "figures", "findings", "flag", "harsher_note",
    "loop_check", "number", "rank", "repeat_loss",
]
