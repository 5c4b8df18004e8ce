"""What a run says, per workload and strategy: the verdict a reviewer reads first.

The rules read the aggregated table (one row per cell:
:func:`wsblock.analysis.aggregate.aggregate`, or the report's
:func:`wsblock.analysis.cells.aggregate`) and nothing else; no conclusion is
written down in advance. Their thresholds and the loop-free predicate live in
:mod:`wsblock.analysis.rules`, which ``wsblock advise`` reads too. For each
workload (variant) and strategy, over every work size and keepalive setting
the run measured, from its own cells only:

1. ``drops connections`` when any cell's verdict is ``lost``: a lost
   connection is an observation. *Reproducible* when a cell lost in most of
   its repeats, *intermittent* when in some; each with its repeat count.
2. ``inconclusive`` when no cell lost a connection but some cell could not
   show survival (its window was too short, its repeats were at risk for
   fewer than :data:`~wsblock.analysis.rules.REQUIRED_CYCLES` keepalive
   cycles, or it has no verdict), or no cell had keepalive at all. Cells
   without keepalive (``not_applicable``) are otherwise left out.
3. ``slow loop`` when every cell kept its connections but some cell's loop
   is shown not free (:func:`wsblock.analysis.rules.loop_check`: stalled in
   every repeat, loop-lag p99 or p50 over their thresholds in the worst
   repeat, or the worst repeat's longest stall over half the ping_timeout).
4. ``cannot tell`` when every cell kept its connections and no loop is
   shown slow, but a caveat that could have made the strategy look *safer*
   occurred in its own cells (:mod:`wsblock.schema.caveats`), a cell has
   fewer than :data:`MIN_REPEATS` measured repeats or a failed one, a loop
   figure the rule needs is missing, or the figure it rests on varies
   across its threshold over the repeats. Each reason names the caveat and
   its direction.
5. ``safe`` otherwise; a harsher condition (busy cores, background load,
   jobs longer than their target) is stated beside it.

Each :class:`Advice` carries the numbers behind it: repeats that lost any
connection of the deciding cell (k of n, with a Wilson interval over
repeats), connections lost as a description, the longest loop stall and
the loop-lag p99 of the reference cell with their intervals and repeats,
and the reasons for any ``cannot tell``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import pandas as pd

from wsblock.analysis import intervals as iv
from wsblock.analysis import rules
from wsblock.schema import caveats as cv
from wsblock.schema.axes import is_none, seconds_label

Rating = Literal["safe", "slow loop", "drops connections", "inconclusive", "cannot tell", "no data"]
"""The recommendation's rating of one strategy for one workload.

Not a cell's survival verdict (``kept``, ``lost``, ...: the ``verdict``
column) nor a change test's outcome (:data:`wsblock.analysis.intervals.OUTCOMES`);
the report's Verdict table and ``advice.json`` call it ``verdict``.
"""

SAFE: Rating = "safe"
SLOW_LOOP: Rating = "slow loop"
DROPS: Rating = "drops connections"
INCONCLUSIVE: Rating = "inconclusive"
CANNOT_TELL: Rating = "cannot tell"
NO_DATA: Rating = "no data"
VERDICTS: tuple[Rating, ...] = (SAFE, SLOW_LOOP, DROPS, INCONCLUSIVE, CANNOT_TELL, NO_DATA)
"""Every rating, from the best to the least known (named as ``advice.json`` records it)."""

MIN_REPEATS = iv.MIN_REPEATS
"""Fewer measured repeats than this in a cell: a ``kept`` is too weak to call ``safe``."""

TRUST_WARNINGS = tuple(c.code for c in cv.CAVEATS if c.direction == cv.SAFER)
"""Warning codes that could make a cell look safer than it is (:mod:`wsblock.schema.caveats`): they block ``safe``."""


@dataclass(frozen=True)
class Quantity:
    """A median over repeats with its interval.

    Attributes:
        value: The median (NaN: nothing recorded).
        low: Lower end of its interval.
        high: Upper end of its interval.
        n: Repeats behind it.
    """

    value: float
    low: float
    high: float
    n: int

    @property
    def known(self) -> bool:
        """Whether a value was recorded."""
        return math.isfinite(self.value)


@dataclass(frozen=True)
class Condition:
    """Where a statement comes from: one cell of the run.

    Attributes:
        cell: The cell's id (without the repeat).
        work_ms: Target work size in ms.
        ping_interval: Seconds, or None.
        ping_timeout: Seconds, or None.
        repeats: Measured repeats of the cell.
    """

    cell: str
    work_ms: float
    ping_interval: float | None
    ping_timeout: float | None
    repeats: int

    def text(self) -> str:
        """``2,500 ms jobs, ping_interval 0.5 s / ping_timeout 2 s``."""
        size = f"{self.work_ms:,.0f}" if float(self.work_ms).is_integer() else f"{self.work_ms:,g}"
        return (f"{size} ms jobs, ping_interval {seconds_label(self.ping_interval)} / "
                f"ping_timeout {seconds_label(self.ping_timeout)}")


@dataclass(frozen=True)
class Advice:
    """The recommendation's rating of one strategy for one workload, and the evidence behind it.

    Attributes:
        workload: The workload (with its parameters, e.g.
            ``pandas (chunksize=10000)``).
        strategy: The strategy.
        verdict: Its :data:`Rating`.
        cells: Measured cells behind the rating.
        kept: Cells whose verdict is ``kept``.
        lost: Cells whose verdict is ``lost``.
        undecided: Cells that lost nothing but could not show survival
            (verdict ``inconclusive``, or none).
        unpinged: Cells without keepalive (verdict ``not_applicable``):
            no connection could time out, so they neither keep nor lose.
        failed: Cells without a measured repeat.
        connections: Original connections lost out of those at risk, pooled
            over every measured cell and repeat, with a Wilson interval.
        loss: The smallest work size (then the longest ping_timeout) that
            lost connections: the cell a "drops connections" comes from.
        loss_count: Connections lost out of those at risk in that cell, with
            its Wilson interval, and ``repeats_lost_any`` of its repeats.
        loss_repeats: ``(repeats that lost any, repeats with counts)`` of that cell.
        reference: The cell the loop figures come from: the largest
            measured work size at the longest ping_timeout (the worst case
            for the loop).
        stall: Longest loop stall in ms of the reference cell.
        stalled_share: Share of the reference cell's window the loop was stalled.
        lag_p99: Loop-lag p99 in ms of the reference cell (NaN when withheld
            under too few probe samples).
        jobs_per_s: Jobs per second of :attr:`rate_reference`.
        rate_reference: The cell the throughput comes from: the smallest
            measured work size at the longest ping_timeout, where the most
            jobs finish inside the window.
        stalled: Cells where the loop stalled in every repeat.
        repeats: ``(fewest, most)`` measured repeats of a cell.
        weak: Why the data cannot support a ``safe`` (empty: they can):
            :attr:`blockers`, then loop figures missing or varying across
            their threshold.
        warnings: Warning codes of any cell, each once.
        loop: The loop-free rule over every cell
            (:func:`wsblock.analysis.rules.combine`); None in an advice not
            made by :func:`advise`.
        figures: The loop figures of the reference cell (best and worst repeat).
        blockers: Caveats that could have made the strategy look safer, too
            few repeats, failed repeats: each stops a ``safe``.
        harsher: The harsher conditions it was measured under, in words
            (empty: none).
        repeat_loss: Repeats that lost any connection in the deciding cell of
            a ``drops connections``, with its Wilson interval over repeats.
        repeats_lost: ``(repeats that lost any, repeats)`` summed over every
            cell with a survival verdict: a description, not a trial count
            of one setting.
        short: Cells kept, but at risk for fewer keepalive cycles than required.
        findings: The caveats of its own cells, by code and direction.
        lag_p50: Loop-lag p50 in ms of the reference cell.
    """

    workload: str
    strategy: str
    verdict: Rating
    cells: int = 0
    kept: tuple[Condition, ...] = ()
    lost: tuple[Condition, ...] = ()
    undecided: tuple[Condition, ...] = ()
    unpinged: tuple[Condition, ...] = ()
    failed: tuple[str, ...] = ()
    connections: iv.Proportion | None = None
    loss: Condition | None = None
    loss_count: iv.Proportion | None = None
    loss_repeats: tuple[int, int] = (0, 0)
    reference: Condition | None = None
    stall: Quantity | None = None
    stalled_share: Quantity | None = None
    lag_p99: Quantity | None = None
    jobs_per_s: Quantity | None = None
    rate_reference: Condition | None = None
    stalled: tuple[Condition, ...] = ()
    repeats: tuple[int, int] = (0, 0)
    weak: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    loop: rules.LoopCheck | None = None
    figures: rules.LoopFigures | None = None
    blockers: tuple[str, ...] = ()
    harsher: str = ""
    repeat_loss: rules.RepeatLoss | None = None
    repeats_lost: tuple[int, int] = (0, 0)
    short: tuple[Condition, ...] = ()
    findings: tuple[rules.Finding, ...] = ()
    lag_p50: Quantity | None = None

    @property
    def loss_kind(self) -> str:
        """``reproducible`` or ``intermittent`` for a ``drops connections``; empty otherwise."""
        return self.repeat_loss.kind if self.repeat_loss is not None else ""


@dataclass
class Recommendation:
    """Every rating of a run, by workload in run order.

    Attributes:
        advice: One :class:`Advice` per workload x strategy.
        workloads: The workloads, in the order of the table.
    """

    advice: list[Advice] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)

    def of(self, workload: str) -> list[Advice]:
        """The advice for one workload, in strategy order."""
        return [a for a in self.advice if a.workload == workload]

    def by_rating(self, workload: str, *ratings: Rating) -> list[Advice]:
        """The advice for one workload whose rating is one of ``ratings``."""
        return [a for a in self.of(workload) if a.verdict in ratings]


_number = rules.number
_count = rules.count
_codes = rules.codes
_flag = rules.flag


def _setting(value: Any) -> float | None:
    return None if is_none(value) else float(value)


def _timeout_key(value: Any) -> float:
    return math.inf if is_none(value) else float(value)


def _quantity(row: Mapping[str, Any], column: str) -> Quantity:
    n = _number(row.get(f"{column}_n"))
    return Quantity(_number(row.get(column)), _number(row.get(f"{column}_low")),
                    _number(row.get(f"{column}_high")), 0 if math.isnan(n) else int(n))


def _condition(row: Mapping[str, Any]) -> Condition:
    cell = row.get("cell")
    return Condition(str(cell), float(row["work_ms"]), _setting(row.get("ping_interval")),
                     _setting(row.get("ping_timeout")), _count(row.get("ok_repeats")))


def _default_variant(row: Mapping[str, Any]) -> bool:
    """Whether a cell has the default keepalive variant (client pings, no handler timeout)."""
    pings = row.get("client_pings")
    return (is_none(pings) or _flag(pings)) and is_none(row.get("handler_ping_timeout"))


def advise(workload: str, strategy: str, rows: list[Mapping[str, Any]], drift: Iterable[str] = (), *,
           stall_ms: float = rules.STALL_MS) -> Advice:
    """The rating of one workload x strategy from its own aggregated cells.

    Args:
        workload: The workload label.
        strategy: The strategy.
        rows: Its aggregated cells (any work size and keepalive setting).
        drift: Ignored: a caveat counts only in the strategy's own cells
            (kept for callers of the earlier signature).
        stall_ms: The run's stall threshold.

    Returns:
        The advice; ``no data`` when no cell has a measured repeat.
    """
    del drift
    measured = [r for r in rows if _count(r.get("ok_repeats")) > 0]
    failed = tuple(str(_condition(r).cell) for r in rows if r not in measured)
    if not measured:
        return Advice(workload, strategy, NO_DATA, failed=failed)
    verdicts = [r.get("verdict") if isinstance(r.get("verdict"), str) else None for r in measured]
    lost_rows = [r for r, v in zip(measured, verdicts) if v == "lost"]
    # A kept cell that was at risk for fewer cycles than required shows no survival.
    short = [r for r, v in zip(measured, verdicts)
             if v == "kept" and _number(r.get("cycles_observed_min", r.get("cycles_observed"))) < rules.REQUIRED_CYCLES]
    kept = tuple(_condition(r) for r, v in zip(measured, verdicts) if v == "kept" and r not in short)
    undecided = tuple(_condition(r) for r, v in zip(measured, verdicts)
                      if v not in ("kept", "lost", "not_applicable") or r in short)
    unpinged = tuple(_condition(r) for r, v in zip(measured, verdicts) if v == "not_applicable")
    k = sum(_count(r.get("lost_k")) for r in measured if _number(r.get("lost_n")) > 0)
    n = sum(_count(r.get("lost_n")) for r in measured if _number(r.get("lost_n")) > 0)
    connections = iv.wilson(k, n) if n else None
    per_repeat = [rules.repeat_loss(r) for r in measured if r.get("verdict") in ("kept", "lost")]
    repeats_lost = (sum(p.lost.k for p in per_repeat), sum(p.repeats for p in per_repeat))

    loss = loss_count = worst_loss = None
    loss_repeats = (0, 0)
    if lost_rows:
        # The cell that lost in the largest share of its repeats; among those,
        # the least demanding: the smallest job, at the longest timeout.
        first = min(lost_rows, key=lambda r: (-rules.repeat_loss(r).lost.share, float(r["work_ms"]),
                                              -_timeout_key(r.get("ping_timeout"))))
        loss = _condition(first)
        worst_loss = rules.repeat_loss(first)
        fk, fn = _number(first.get("lost_k")), _number(first.get("lost_n"))
        if fn > 0:
            loss_count = iv.wilson(_count(fk), _count(fn))
        loss_repeats = (worst_loss.lost.k, worst_loss.repeats)

    # The worst case for the loop: the largest job at the longest timeout
    # (default keepalive variant first, where the run has it).
    ref_row = max(measured, key=lambda r: (float(r["work_ms"]), _timeout_key(r.get("ping_timeout")),
                                           _default_variant(r)))
    # Throughput reads best where most jobs finish in the window: the smallest job.
    rate_row = min(measured, key=lambda r: (float(r["work_ms"]), -_timeout_key(r.get("ping_timeout")),
                                            not _default_variant(r)))
    checks = [(_condition(r).cell, rules.loop_check(rules.figures(r), stall_ms)) for r in measured]
    loop = rules.combine(checks)
    stalled = tuple(_condition(r) for r, (_, c) in zip(measured, checks) if c.stalled)
    counts = [_count(r.get("ok_repeats")) for r in measured]
    codes: dict[str, None] = {}
    for r in rows:
        codes.update((c, None) for c in _codes(r.get("warnings")))
    found = rules.findings(measured)
    safer = [f for f in found if f.direction == cv.SAFER]
    blockers = _weakness(failed, counts) + [f.sentence() for f in safer]
    harsher = rules.harsher_note(found)
    uncertain = [f"the loop figures cannot show it free: {m}" for m in loop.missing] + \
                [f"unstable: {u}" for u in loop.unstable]

    rating: Rating
    if lost_rows:
        rating = DROPS
    elif undecided or not kept:
        rating = INCONCLUSIVE
    elif loop.free is False:
        rating = SLOW_LOOP
    elif blockers or uncertain:
        rating = CANNOT_TELL
    else:
        rating = SAFE
    weak = tuple(blockers + uncertain)
    return Advice(
        workload, strategy, rating, cells=len(measured), kept=kept,
        lost=tuple(_condition(r) for r in lost_rows), undecided=undecided, unpinged=unpinged, failed=failed,
        connections=connections, loss=loss, loss_count=loss_count, loss_repeats=loss_repeats,
        reference=_condition(ref_row), stall=_quantity(ref_row, "stall_max_ms"),
        stalled_share=_quantity(ref_row, "stalled_share"), lag_p99=_quantity(ref_row, "lag_p99_ms"),
        jobs_per_s=_quantity(rate_row, "jobs_per_s"), rate_reference=_condition(rate_row), stalled=stalled,
        repeats=(min(counts), max(counts)), weak=weak, warnings=tuple(codes),
        loop=loop, figures=rules.figures(ref_row), blockers=tuple(blockers), harsher=harsher,
        repeat_loss=worst_loss, repeats_lost=repeats_lost, short=tuple(_condition(r) for r in short),
        findings=tuple(found), lag_p50=_quantity(ref_row, "lag_p50_ms"))


def _some(cells: list[str], most: int = 3) -> str:
    """Cell ids, the first ``most`` of them, then how many more."""
    more = len(cells) - most
    return ", ".join(cells[:most]) + (f" and {more} more" if more > 0 else "")


def _weakness(failed: tuple[str, ...], counts: list[int]) -> list[str]:
    """Why the number of repeats cannot support a ``safe`` (empty: it can)."""
    out = []
    few = [c for c in counts if c < MIN_REPEATS]
    if few and len(few) == len(counts):
        low, high = min(counts), max(counts)
        each = f"{low}" if low == high else f"{low} to {high}"
        out.append(f"{each} measured repeat{'' if high == 1 else 's'} per cell, fewer than {MIN_REPEATS}")
    elif few:
        out.append(f"{len(few)} of {len(counts)} cells have fewer than {MIN_REPEATS} measured repeats "
                   f"(fewest {min(counts)})")
    if failed:
        out.append(f"no measurement in {_some(list(failed))}, whose repeats could have lost connections "
                   "(which could have made it look safer)")
    return out


def _group(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return str(value) if isinstance(value, str) and value else str(row.get("workload"))


def recommend(cells: pd.DataFrame, *, workload_column: str = "variant",
              strategy_order: Iterable[str] | None = None, stall_ms: float = rules.STALL_MS) -> Recommendation:
    """Every verdict of a run.

    Args:
        cells: The aggregated table, one row per cell (columns ``workload``,
            ``strategy``, ``work_ms``, ``ping_interval``, ``ping_timeout``,
            ``ok_repeats``, ``verdict``, ``lost_k``, ``lost_n``,
            ``repeats_lost_any``, ``loss_repeats``, ``unstable``,
            ``warnings`` and the medians with intervals of
            ``stall_max_ms``, ``stalled_share``, ``stalls_count``,
            ``lag_p99_ms``, ``jobs_per_s``; ``cell``).
        workload_column: The column naming a workload with its parameters;
            ``workload`` when the table has no such column (cells of
            different workload parameters, e.g. pandas chunk sizes, are then
            judged together).
        strategy_order: Strategies in the order to list them (others after,
            by name); default: the order of the table.
        stall_ms: The run's stall threshold.

    Returns:
        One :class:`Advice` per workload x strategy, workloads in the order
        of the table.
    """
    out = Recommendation()
    if cells.empty:
        return out
    rows = cells.to_dict("records")
    column = workload_column if workload_column in cells.columns else "workload"
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((_group(row, column), str(row["strategy"])), []).append(row)
    out.workloads = list(dict.fromkeys(w for w, _ in groups))
    order = list(strategy_order) if strategy_order is not None else list(dict.fromkeys(s for _, s in groups))

    def rank(name: str) -> tuple[int, str]:
        return (order.index(name), "") if name in order else (len(order), name)

    for workload in out.workloads:
        for strategy in sorted((s for w, s in groups if w == workload), key=rank):
            # Each strategy is judged on its own cells: a caveat of another
            # strategy's cells says nothing about this one's measurement.
            out.advice.append(advise(workload, strategy, groups[(workload, strategy)], stall_ms=stall_ms))
    return out


__all__ = ["Advice", "CANNOT_TELL", "Condition", "DROPS", "INCONCLUSIVE", "MIN_REPEATS", "NO_DATA", "Quantity",
           "Rating", "Recommendation", "SAFE", "SLOW_LOOP", "TRUST_WARNINGS", "VERDICTS", "advise", "recommend"]
