"""Compare two runs cell by cell: one engine, one vocabulary of change marks.

Both ``wsblock compare`` (two matrix runs) and the asv comparison (two
websockets versions, commits or machines) feed this module the same thing:
per side, per cell, the values of each metric over the cell's measured
repeats, as tidy-table rows hold them. :func:`decide` is the only place that
says whether a metric changed; renderers only lay its verdicts out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping

import pandas as pd

from wsblock.schema import metrics
from wsblock.schema.metrics import Metric

NOW_DISCONNECTS = "⚠ now disconnects"
NOW_SURVIVES = "✓ now survives"
FAILED_A = "✗ failed in A"
FAILED_B = "✗ failed in B"
FAILED_BOTH = "✗ failed in both"
WORSE = "+ worse"
BETTER = "- better"
NO_CHANGE = ""

MARKS: dict[str, str] = {
    NOW_DISCONNECTS: "every repeat of A kept every connection and B lost some",
    NOW_SURVIVES: "the reverse",
    FAILED_A: "no measurement in A",
    FAILED_B: "no measurement in B",
    FAILED_BOTH: "no measurement on either side",
    WORSE: "B is worse than A by more than the factor",
    BETTER: "B is better than A by more than the factor",
}
"""Every change mark, with what it means (for legends)."""

FAILED = (FAILED_A, FAILED_B, FAILED_BOTH)

SURVIVAL = metrics.get("disconnect_share")
"""The metric whose zero matters: a cell survives when no repeat lost a connection."""


@dataclass
class Side:
    """One cell on one side of a comparison.

    Attributes:
        row: A row of the cell (its parameters, for display).
        values: Metric column -> the values of the measured repeats (NaN
            where a repeat recorded nothing).
        repeats: Rows seen for the cell, measured or not.
    """

    row: Mapping[str, Any]
    values: dict[str, list[float]] = field(default_factory=dict)
    repeats: int = 0

    @property
    def measured(self) -> bool:
        """Whether any repeat of the cell produced a measurement."""
        return any(len(v) for v in self.values.values())


def sides(df: pd.DataFrame, key: Callable[[Mapping[str, Any]], Hashable],
          columns: Iterable[str] | None = None) -> dict[Hashable, Side]:
    """Group tidy rows by cell.

    Args:
        df: Tidy-table rows (a matrix run, or asv results of one side).
        key: The identity of a row's cell.
        columns: Metric columns to collect (default: every declared metric
            the frame has).

    Returns:
        Cell key -> :class:`Side`, in the frame's order. Only rows with
        ``status`` ``ok`` contribute values.
    """
    wanted = [c for c in (columns or metrics.COLUMNS) if c in df.columns]
    out: dict[Hashable, Side] = {}
    for row in df.to_dict("records"):
        side = out.setdefault(key(row), Side(row=row))
        side.repeats += 1
        if row.get("status", "ok") != "ok":
            continue
        for column in wanted:
            side.values.setdefault(column, []).append(metrics.number(row.get(column)))
    return out


@dataclass(frozen=True)
class Verdict:
    """What :func:`decide` found for one metric of one matched cell.

    Attributes:
        mark: A key of :data:`MARKS`, or :data:`NO_CHANGE`.
        a: A's summary of the metric (NaN: none).
        b: B's summary of the metric (NaN: none).
    """

    mark: str
    a: float
    b: float

    @property
    def ratio(self) -> float:
        """``b / a`` (NaN when undefined, inf when only A is 0)."""
        if math.isnan(self.a) or math.isnan(self.b):
            return math.nan
        if self.a == 0:
            return 1.0 if self.b == 0 else math.inf
        return self.b / self.a


def _survived(values: list[float]) -> bool | None:
    finite = [v for v in values if not math.isnan(v)]
    return all(v == 0 for v in finite) if finite else None


def decide(metric: Metric, a: Side | None, b: Side | None, *, factor: float | None = None) -> Verdict:
    """Whether a metric of a cell changed from A to B: the one rule.

    Args:
        metric: The metric.
        a: The cell in A (``None``: not in A).
        b: The cell in B (``None``: not in B).
        factor: A summary that grew or shrank by more than this factor is
            marked worse or better, by the metric's direction; ``None``
            marks only survival and missing measurements.

    Returns:
        The verdict: a side with no measurement is marked failed; for the
        survival metric a cell that went from no lost connection to some is
        marked (or back); otherwise the factor rule.
    """
    va = a.values.get(metric.column, []) if a is not None else []
    vb = b.values.get(metric.column, []) if b is not None else []
    sa, sb = metric.summarise(va), metric.summarise(vb)
    measured_a = a is not None and a.measured
    measured_b = b is not None and b.measured
    if not measured_a or not measured_b:
        mark = FAILED_BOTH if not (measured_a or measured_b) else (FAILED_A if not measured_a else FAILED_B)
        return Verdict(mark, sa, sb)
    if metric is SURVIVAL:
        before, after = _survived(va), _survived(vb)
        if before is True and after is False:
            return Verdict(NOW_DISCONNECTS, sa, sb)
        if before is False and after is True:
            return Verdict(NOW_SURVIVES, sa, sb)
    if factor is None or metric.better == "none" or math.isnan(sa) or math.isnan(sb):
        return Verdict(NO_CHANGE, sa, sb)
    ratio = Verdict(NO_CHANGE, sa, sb).ratio
    grew, shrank = ratio > factor, ratio < 1 / factor
    if not (grew or shrank):
        return Verdict(NO_CHANGE, sa, sb)
    worse = grew if metric.better == "lower" else shrank
    return Verdict(WORSE if worse else BETTER, sa, sb)


def cell_mark(a: Side | None, b: Side | None) -> str:
    """The mark of a matched cell as a whole: measurement and survival."""
    return decide(SURVIVAL, a, b).mark


def legend(marks: Iterable[str]) -> str:
    """``mark`` = meaning, for the marks given, as one markdown sentence."""
    return "; ".join(f"`{m}` = {MARKS[m]}" for m in marks) + "."
