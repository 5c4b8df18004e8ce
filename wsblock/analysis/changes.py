"""Changes: is a cell's metric in run B better, worse or unchanged from run A?

Two runs are matched cell by cell (:func:`wsblock.analysis.tidy.cell_ids`)
and, for each compared metric, the repeats of both sides go through the
stated test of :mod:`wsblock.analysis.intervals`:

* a per-repeat metric (lag, latency, throughput) by
  :func:`~wsblock.analysis.intervals.compare_values`, with the direction,
  resolution and minimum effect its declaration gives
  (:mod:`wsblock.schema.metrics`);
* the disconnect outcome by
  :func:`~wsblock.analysis.intervals.compare_repeat_losses`: Fisher's exact
  test over repeats that lost any connection (the repeat is the unit of
  replication), the pooled connection share shown as a description.

Either side with fewer than :data:`~wsblock.analysis.intervals.MIN_REPEATS`
measured repeats gives ``cannot tell``. So does a change whose better side
is only a lower bound (echoes or jobs cut short because connections died or
the window ended: :data:`~wsblock.analysis.aggregate.BOUNDED_BY`): its true
value may be as large as the other side's, so a cell is never ranked better
because its connections died. The result is one :class:`Change`
per (cell, metric); markdown and JSON renderings are built from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import pandas as pd

from wsblock.analysis import intervals as iv
from wsblock.analysis.aggregate import BOUNDED_BY, LOSS, CellRepeats, group, resolution
from wsblock.schema import metrics

COMPARED = tuple(m.column for m in metrics.in_compare())
"""Metrics compared by default: those ``wsblock compare`` shows (the declaration's ``compare``)."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (undeclared columns: lower is better)."""
    declared = metrics.BY_COLUMN.get(metric)
    return declared is not None and declared.better == "higher"


@dataclass(frozen=True)
class Change:
    """One metric of one cell, run A against run B.

    Attributes:
        cell: The cell (its id without the repeat).
        metric: The tidy column compared.
        a: A's median over repeats (for the loss: the pooled share lost).
        b: B's value, likewise.
        a_interval: ``(low, high)`` around ``a``: the order-statistic
            interval of the median, or the Wilson 95 % interval of the share.
        b_interval: Likewise for ``b``.
        a_confidence: Achieved confidence of ``a_interval``.
        b_confidence: Achieved confidence of ``b_interval``.
        a_n: Measured repeats behind ``a``.
        b_n: Measured repeats behind ``b``.
        ratio: ``b / a`` (both raised to the metric's resolution; NaN when
            a side has no value).
        p_value: The test's p-value (NaN when not tested).
        outcome: ``better``, ``worse``, ``no change`` or ``cannot tell``
            (:data:`wsblock.analysis.intervals.OUTCOMES`; ``verdict`` in JSON).
        a_count: For the loss, ``(lost, at risk)`` connections of A.
        b_count: Likewise for B.
        a_lower_bound: A's value is only a lower bound (some repeat's
            echoes or jobs were cut short).
        b_lower_bound: Likewise for B.
    """

    cell: str
    metric: str
    a: float
    b: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    a_confidence: float
    b_confidence: float
    a_n: int
    b_n: int
    ratio: float
    p_value: float
    outcome: str
    a_count: tuple[int, int] | None = None
    b_count: tuple[int, int] | None = None
    a_lower_bound: bool = False
    b_lower_bound: bool = False

    @property
    def changed(self) -> bool:
        """Whether the outcome is ``better`` or ``worse``."""
        return self.outcome in (iv.BETTER, iv.WORSE)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (NaN becomes null)."""
        out: dict[str, Any] = {
            "cell": self.cell, "metric": self.metric, "a": _json(self.a), "b": _json(self.b),
            "a_interval": [_json(x) for x in self.a_interval],
            "b_interval": [_json(x) for x in self.b_interval],
            "ratio": _json(self.ratio), "verdict": self.outcome,
            "a_n": self.a_n, "b_n": self.b_n,
            "a_confidence": _json(self.a_confidence), "b_confidence": _json(self.b_confidence),
            "p_value": _json(self.p_value),
            "a_lower_bound": self.a_lower_bound, "b_lower_bound": self.b_lower_bound,
        }
        if self.a_count is not None or self.b_count is not None:
            out["a_count"] = list(self.a_count) if self.a_count else None
            out["b_count"] = list(self.b_count) if self.b_count else None
        return out


def _json(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@dataclass
class RunComparison:
    """Every change of two runs, and the cells only one of them has.

    Attributes:
        changes: One per (matched cell, metric), in A's cell order.
        only_a: Cells measured in A only.
        only_b: Cells measured in B only.
    """

    changes: list[Change] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Outcome -> how many (cell, metric) pairs got it, for every outcome."""
        out = {v: 0 for v in iv.OUTCOMES}
        for change in self.changes:
            out[change.outcome] += 1
        return out

    def changed(self) -> list[Change]:
        """The ``better`` and ``worse`` changes."""
        return [v for v in self.changes if v.changed]

    def as_json(self) -> list[dict[str, Any]]:
        """One object per cell and metric."""
        return [v.as_dict() for v in self.changes]


class Repeats(Protocol):
    """What the test needs of one cell on one side: its measured repeats.

    :class:`wsblock.analysis.aggregate.CellRepeats` is one; any grouping of
    tidy rows (an asv result, a comparison engine's own) can be another.
    """

    def values(self, metric: str) -> list[float]:
        """The finite values of ``metric``, one per measured repeat that has one."""

    def losses(self) -> list[tuple[int, int]]:
        """``(connections lost, connections at risk)`` of each measured repeat."""

    def step(self, metric: str) -> float:
        """The smallest difference of ``metric`` the cell can show (its resolution)."""

    def flagged(self, label: str) -> bool:
        """Whether any measured repeat sets a label flag (e.g. ``echo_lower_bound``).

        Optional: a grouping without labels is read as having none set.
        """


def lower_bound(side: Repeats, metric: str) -> bool:
    """Whether the side's values of ``metric`` are only lower bounds (:data:`BOUNDED_BY`)."""
    label = BOUNDED_BY.get(metric)
    flagged = getattr(side, "flagged", None)
    return label is not None and flagged is not None and bool(flagged(label))


def compare_metric(cell: str, metric: str, a: Repeats, b: Repeats, *,
                   min_ratio: float | None = None) -> Change:
    """The change test on one metric of one cell.

    Args:
        cell: The cell's name, carried into the result.
        metric: A tidy metric column, or :data:`~wsblock.analysis.aggregate.LOSS`
            for the disconnect outcome (tested as a proportion when both
            sides have connection counts, else on the shares as values).
        a: The cell's repeats in the baseline run.
        b: The same cell's repeats in the other run.
        min_ratio: Smallest ratio of medians that counts, instead of the
            metric's own minimum effect.
    """
    la, lb = (a.losses(), b.losses()) if metric == LOSS else ([], [])
    if la and lb:
        pa = iv.wilson(sum(k for k, _ in la), sum(n for _, n in la))
        pb = iv.wilson(sum(k for k, _ in lb), sum(n for _, n in lb))
        c = iv.compare_repeat_losses(pa, pb, losses_a=la, losses_b=lb)
        return Change(cell, metric, pa.share, pb.share, (pa.low, pa.high), (pb.low, pb.high),
                      c.a.confidence, c.b.confidence, len(la), len(lb), c.ratio, c.p_value, c.outcome,
                      (pa.k, pa.n), (pb.k, pb.n))
    rule = resolution(metric)
    c = iv.compare_values(a.values(metric), b.values(metric), higher_is_better=higher_is_better(metric),
                          floor=max(a.step(metric), b.step(metric)),
                          min_ratio=rule.min_ratio if min_ratio is None else min_ratio)
    bound_a, bound_b = lower_bound(a, metric), lower_bound(b, metric)
    outcome = c.outcome
    if outcome in (iv.BETTER, iv.WORSE) and (bound_a or bound_b):
        # A lower bound may hide a larger value: the order holds only when the
        # bounded side is the larger one already.
        smaller_is_bounded = bound_b if c.b.median < c.a.median else bound_a
        if smaller_is_bounded:
            outcome = iv.CANNOT_TELL
    return Change(cell, metric, c.a.median, c.b.median, (c.a.low, c.a.high), (c.b.low, c.b.high),
                  c.a.confidence, c.b.confidence, c.a.n, c.b.n, c.ratio, c.p_value, outcome,
                  a_lower_bound=bound_a, b_lower_bound=bound_b)


def compare_groups(a: Mapping[str, CellRepeats], b: Mapping[str, CellRepeats],
                   metrics: Sequence[str] = COMPARED) -> RunComparison:
    """Compare two runs already grouped into cells (:func:`wsblock.analysis.aggregate.group`).

    Args:
        a: The baseline run's cells.
        b: The other run's cells.
        metrics: Metrics to compare, in output order.

    Returns:
        The changes of the cells both runs have, and the one-sided cells.
    """
    out = RunComparison()
    for cell, side_a in a.items():
        if cell not in b:
            out.only_a.append(cell)
            continue
        out.changes += [compare_metric(cell, metric, side_a, b[cell]) for metric in metrics]
    out.only_b = [cell for cell in b if cell not in a]
    return out


def compare_tables(tidy_a: pd.DataFrame, tidy_b: pd.DataFrame,
                   metrics: Sequence[str] = COMPARED) -> RunComparison:
    """Compare two runs given as tidy tables (one row per repeat).

    The test needs the repeats themselves, not only their summaries, so
    this takes tidy tables rather than aggregated ones.

    Args:
        tidy_a: The baseline run.
        tidy_b: The other run.
        metrics: Metrics to compare, in output order.
    """
    return compare_groups(group(tidy_a), group(tidy_b), metrics)


def summary_line(result: RunComparison) -> str:
    """``40 pairs compared: 2 worse, 1 better, 30 no change, 7 cannot tell``."""
    counts = result.counts()
    parts = [f"{counts[v]} {v}" for v in (iv.WORSE, iv.BETTER, iv.NO_CHANGE, iv.CANNOT_TELL)]
    return f"{len(result.changes)} (cell, metric) pairs compared: " + ", ".join(parts)


__all__ = ["COMPARED", "Change", "Repeats", "RunComparison", "compare_groups", "compare_metric",
           "compare_tables", "higher_is_better", "lower_bound", "summary_line"]
