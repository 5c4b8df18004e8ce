"""Compare two runs cell by cell: one engine, one vocabulary of change marks.

Both ``wsblock compare`` (two matrix runs) and the asv comparison (two
websockets versions, commits or machines) feed this module the same thing:
per side, per cell, the values of each metric over the cell's measured
repeats, as tidy-table rows hold them. :func:`decide` is the only place that
says whether a metric changed: it runs the stated test of
:mod:`wsblock.analysis.changes` (a change beyond noise, ``cannot tell``
below 3 repeats a side) and turns its outcome into a mark; renderers only lay
the changes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping

import pandas as pd

from wsblock.analysis import aggregate
from wsblock.analysis import intervals as iv
from wsblock.analysis import changes
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
    NOW_DISCONNECTS: "B lost more connections than A beyond noise, and every repeat of A kept every connection "
                     "(verdict kept)",
    NOW_SURVIVES: "the reverse: every repeat of B kept every connection (verdict kept)",
    FAILED_A: "no measurement in A",
    FAILED_B: "no measurement in B",
    FAILED_BOTH: "no measurement on either side",
    WORSE: "B is worse than A beyond noise (the change test)",
    BETTER: "B is better than A beyond noise (the change test)",
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
        flags: Labels (:data:`wsblock.schema.metrics.LABEL_COLUMNS`) that
            some measured repeat sets, e.g. ``echo_lower_bound``.
        verdicts: The survival verdict of each measured repeat whose row
            has one (``survival.verdict``).
    """

    row: Mapping[str, Any]
    values: dict[str, list[float]] = field(default_factory=dict)
    repeats: int = 0
    flags: set[str] = field(default_factory=set)
    verdicts: list[Any] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """Whether any repeat of the cell produced a measurement."""
        return any(len(v) for v in self.values.values())


class _Repeats:
    """A :class:`Side` as the change test reads it (:class:`wsblock.analysis.changes.Repeats`)."""

    def __init__(self, side: Side | None) -> None:
        self.side = side

    def values(self, metric: str) -> list[float]:
        raw = self.side.values.get(metric, []) if self.side is not None else []
        return [v for v in raw if math.isfinite(v)]

    def losses(self) -> list[tuple[int, int]]:
        if self.side is None:
            return []
        # One value per measured repeat in every collected column.
        present = {c: self.side.values[c] for c in aggregate.LOSS_COLUMNS if c in self.side.values}
        if not present or len({len(v) for v in present.values()}) != 1:
            return []
        rows = (dict(zip(present, values)) for values in zip(*present.values()))
        return [kn for kn in map(aggregate.lost_of, rows) if kn is not None]

    def step(self, metric: str) -> float:
        return aggregate.step(metric, [self.side.row] if self.side is not None else [])

    def flagged(self, label: str) -> bool:
        return self.side is not None and label in self.side.flags


def sides(df: pd.DataFrame, key: Callable[[Mapping[str, Any]], Hashable],
          columns: Iterable[str] | None = None) -> dict[Hashable, Side]:
    """Group tidy rows by cell.

    Args:
        df: Tidy-table rows (a matrix run, or asv results of one side).
        key: The identity of a row's cell.
        columns: Metric columns to collect (default: every declared metric
            the frame has). The loss counts
            (:data:`wsblock.analysis.aggregate.LOSS_COLUMNS`) are always
            collected when present: the test of the loss needs them.

    Returns:
        Cell key -> :class:`Side`, in the frame's order. Only rows with
        ``status`` ``ok`` contribute values.
    """
    wanted = [c for c in (columns or metrics.COLUMNS) if c in df.columns]
    wanted += [c for c in aggregate.LOSS_COLUMNS if c in df.columns and c not in wanted]
    out: dict[Hashable, Side] = {}
    for row in df.to_dict("records"):
        side = out.setdefault(key(row), Side(row=row))
        side.repeats += 1
        if row.get("status", "ok") != "ok":
            continue
        for column in wanted:
            side.values.setdefault(column, []).append(metrics.number(row.get(column)))
        side.flags.update(label for label in metrics.LABEL_COLUMNS if aggregate.any_flag([row.get(label)]))
        if "verdict" in row:
            side.verdicts.append(row.get("verdict"))
    return out


@dataclass(frozen=True)
class MarkedChange:
    """What :func:`decide` found for one metric of one matched cell.

    Attributes:
        mark: A key of :data:`MARKS`, or :data:`NO_CHANGE`.
        test: The change test's result: both values with their intervals
            and repeats, the ratio, the p-value and the outcome.
    """

    mark: str
    test: changes.Change

    @property
    def a(self) -> float:
        """A's value: the median over repeats (for the loss, the pooled share)."""
        return self.test.a

    @property
    def b(self) -> float:
        """B's value, likewise."""
        return self.test.b

    @property
    def ratio(self) -> float:
        """``b / a``, both raised to the metric's resolution (NaN when a side has no value)."""
        return self.test.ratio

    @property
    def outcome(self) -> str:
        """``better``, ``worse``, ``no change`` or ``cannot tell``."""
        return self.test.outcome


def _survived(side: _Repeats) -> bool | None:
    """Whether every repeat kept every connection, as a claim of survival may say.

    Where the rows carry survival verdicts, only the verdict ``kept`` over
    the repeats counts: a window too short to show survival makes no claim.
    """
    if side.side is not None and side.side.verdicts:
        return aggregate.verdict_over(side.side.verdicts) == "kept"
    losses = side.losses()
    if losses:
        return all(k == 0 for k, _ in losses)
    shares = side.values(SURVIVAL.column)
    return all(v == 0 for v in shares) if shares else None


def decide(metric: Metric, a: Side | None, b: Side | None, *, factor: float | None = None,
           cell: str = "") -> MarkedChange:
    """Whether a metric of a cell changed from A to B: the one rule.

    Args:
        metric: The metric.
        a: The cell in A (``None``: not in A).
        b: The cell in B (``None``: not in B).
        factor: The smallest ratio of medians that counts as a change,
            instead of the metric's own minimum effect
            (:attr:`~wsblock.schema.metrics.Metric.min_effect`).
        cell: The cell's name, carried into the result.

    Returns:
        The marked change: a side with no measurement is marked failed; otherwise
        the change test decides (``cannot tell`` with fewer than 3 measured
        repeats on a side). A ``worse`` loss is marked
        :data:`NOW_DISCONNECTS` when every repeat of A kept every
        connection, a ``better`` one :data:`NOW_SURVIVES` when every repeat
        of B did. Descriptive metrics (``better`` ``none``) are never marked.
    """
    ra, rb = _Repeats(a), _Repeats(b)
    test = changes.compare_metric(cell, metric.column, ra, rb, min_ratio=factor)
    measured_a = a is not None and a.measured
    measured_b = b is not None and b.measured
    if not measured_a or not measured_b:
        mark = FAILED_BOTH if not (measured_a or measured_b) else (FAILED_A if not measured_a else FAILED_B)
        return MarkedChange(mark, test)
    if metric.better == "none":
        return MarkedChange(NO_CHANGE, test)
    if test.outcome == iv.WORSE:
        mark = NOW_DISCONNECTS if metric is SURVIVAL and _survived(ra) else WORSE
    elif test.outcome == iv.BETTER:
        mark = NOW_SURVIVES if metric is SURVIVAL and _survived(rb) else BETTER
    else:
        mark = NO_CHANGE
    return MarkedChange(mark, test)


def cell_mark(a: Side | None, b: Side | None) -> str:
    """The mark of a matched cell as a whole: measurement and survival."""
    return decide(SURVIVAL, a, b).mark


def legend(marks: Iterable[str]) -> str:
    """``mark`` = meaning, for the marks given, as one markdown sentence."""
    return "; ".join(f"`{m}` = {MARKS[m]}" for m in marks) + "."


TEST = ("Verdicts come from a stated test (`docs/comparisons.md`): `cannot tell` when a side has fewer "
        "than 3 measured repeats; a metric changed (`better`/`worse`) only when Welch's t-test on the "
        "logarithms of the repeats gives p < 0.05, the two sides' ranges do not overlap, and the ratio of "
        "medians is beyond the metric's minimum effect and its difference beyond the metric's resolution; "
        "survival changed only when Fisher's exact test over repeats (repeats that lost any connection of "
        "repeats: the repeat is the unit, its connections are lost together) gives p < 0.05, and `cannot "
        "tell` when the repeats could not have shown it (3 against 3 repeats reach p = 0.1 at best). Anything "
        "else is `no change`: no difference beyond noise was shown.")
"""The test, in one paragraph, for the legends of comparison tables."""
