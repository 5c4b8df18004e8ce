"""The survival boundary: the largest job that every connection outlived.

For each workload, strategy and keepalive setting, the boundary is the
largest work size whose cell has the verdict ``kept`` over its repeats: every
repeat kept every connection for long enough to show it (``survival.verdict``,
:func:`wsblock.analysis.aggregate.verdict_over`). A cell that lost no
connection in a window too short to show survival is ``inconclusive`` and
never counts as kept. It is the number behind "raise ping_timeout" and
"move it to a thread": where the boundary moves, the advice works.

This module finds the boundaries; :mod:`wsblock.report.survival` writes them
as a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from wsblock.analysis import cells as cellmod

NO_DATA = "no data"
NONE_SURVIVED = "none survived"
INCONCLUSIVE = "inconclusive"
DECIDED = ("kept", "lost")
"""Verdicts that say something about survival; the others leave the size undecided."""


@dataclass(frozen=True)
class Boundary:
    """The boundary of one workload variant x strategy x keepalive.

    Attributes:
        variant: Workload label (:func:`wsblock.analysis.cells.variant`).
        strategy: Strategy name.
        keepalive: The keepalive setting.
        max_ms: Largest surviving work size in ms; NaN if none survived or
            nothing was measured.
        measured: Work sizes with at least one measured repeat.
        not_monotone: A smaller measured size lost connections although a
            larger one survived (noise, or a finding worth a look).
        unknown_above: Larger sizes of the run without a measurement
            (failed, skipped or not run): the boundary may lie higher.
        undecided: Measured sizes above the boundary whose verdict is
            ``inconclusive`` or ``not_applicable``: they lost nothing, but
            their window could not show survival, so the boundary may lie
            higher.
    """

    variant: str
    strategy: str
    keepalive: cellmod.Keepalive
    max_ms: float
    measured: tuple[float, ...]
    not_monotone: bool
    unknown_above: tuple[float, ...] = ()
    undecided: tuple[float, ...] = ()
    lost_any: bool = False

    @property
    def status(self) -> str:
        """``ok``, ``none survived`` (some size lost, none was kept), ``inconclusive`` or ``no data``."""
        if not self.measured:
            return NO_DATA
        if not math.isnan(self.max_ms):
            return "ok"
        return NONE_SURVIVED if self.lost_any else INCONCLUSIVE


def boundaries(cells: pd.DataFrame) -> list[Boundary]:
    """Compute every boundary of a run.

    Args:
        cells: Aggregated cells (:func:`wsblock.analysis.cells.aggregate`).

    Returns:
        One :class:`Boundary` per variant x strategy x keepalive present in
        ``cells``, in report order. Cells of a function called once per
        job have no work size (``work_ms`` is empty) and no boundary.
    """
    out = []
    cells = cells[cells["work_ms"].notna()] if "work_ms" in cells else cells
    if cells.empty:
        return out
    pairs = cellmod.keepalives(cells)
    variants = _variants(cells)
    all_sizes = sorted({float(s) for s in cells["work_ms"]})
    for name in variants:
        of_variant = cells[cells["variant"] == name]
        for strategy in cellmod.ordered(of_variant["strategy"], cellmod.strategy_key):
            rows = of_variant[of_variant["strategy"] == strategy]
            for setting in pairs:
                here = cellmod.lookup_keepalive(rows, setting)
                if here.empty:
                    continue
                measured = here[here["verdict"].map(lambda v: isinstance(v, str))]
                sizes = tuple(sorted(float(s) for s in measured["work_ms"]))
                verdicts = {float(s): v for s, v in zip(measured["work_ms"], measured["verdict"])}
                alive = [s for s, v in verdicts.items() if v == "kept"]
                lost = [s for s, v in verdicts.items() if v == "lost"]
                best = max(alive) if alive else math.nan
                lost_below = any(s < best for s in lost)
                unknown = tuple(s for s in all_sizes if s not in sizes and (math.isnan(best) or s > best))
                undecided = tuple(s for s in sizes if verdicts[s] not in DECIDED
                                  and (math.isnan(best) or s > best))
                if math.isnan(best) and lost:
                    # Nothing was kept: only sizes below the smallest lost
                    # one could still be kept; larger ones cannot matter.
                    unknown = tuple(s for s in unknown if s < min(lost))
                    undecided = tuple(s for s in undecided if s < min(lost))
                out.append(Boundary(name, strategy, setting, best, sizes, lost_below, unknown, undecided,
                                    bool(lost)))
    return out


def _variants(cells: pd.DataFrame) -> list[str]:
    # Variants keep the order of the (already sorted) cells.
    return list(dict.fromkeys(cells["variant"]))
