"""Extra repeats where the repeats of a cell disagree.

Three repeats settle most cells. A cell at its survival boundary loses
connections in some repeats and none in others, and on a busy machine a
cell's loop lag can scatter; more repeats narrow what is known about those.
With ``wsblock matrix --extra-repeats N``, once every planned repeat has
run, each *unsettled* cell is measured once more, checked again, and so on,
until it settles or has N extra repeats. The bound is per cell, so a matrix
runs at most ``N x cells`` extra cells.

Unsettled means (:meth:`wsblock.analysis.aggregate.CellRepeats.instability`
restricted to :data:`SETTLE_ON`): some repeats lost connections and others
did not, or the coefficient of variation of loop lag p99 over the repeats
exceeds :data:`wsblock.analysis.aggregate.CV_LIMIT`. Extra repeats are
ordinary records (``<cell>-r<k>.json``, ``k`` from the planned count up);
every summary uses them like the planned ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from wsblock.analysis import aggregate, tidy
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.schema import axes, record

SETTLE_ON = ("lag_p99_ms",)
"""Metrics whose spread over repeats calls for another repeat (besides disagreeing losses)."""


@dataclass(frozen=True)
class Unsettled:
    """A cell that needs another repeat.

    Attributes:
        next: The repeat to run next.
        reasons: Why (as :meth:`~wsblock.analysis.aggregate.CellRepeats.instability` says).
    """

    next: PlannedCell
    reasons: list[str]


def _base_id(planned: PlannedCell) -> str:
    return axes.cell_id(planned.cell.to_dict(), settings=False)


def _records(cells_dir: Path, base: str) -> dict[int, dict[str, Any]]:
    """Repeat -> record, for every readable record of one cell."""
    out = {}
    for path in cells_dir.glob(f"{base}-r*.json"):
        suffix = path.stem[len(base) + 2:]
        if not suffix.isdigit():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record.validate(data)
        except (OSError, ValueError):
            continue
        out[int(suffix)] = data
    return out


def unsettled(matrix: Matrix, cells_dir: Path, extra: int) -> list[Unsettled]:
    """The cells of ``matrix`` that should get another repeat.

    Args:
        matrix: The matrix.
        cells_dir: Where its records are.
        extra: Extra repeats allowed per cell.

    Returns:
        Cells whose planned repeats all ran, with at least two measured,
        that are unsettled and have had fewer than ``extra`` extra repeats;
        in matrix order.
    """
    planned_of: dict[str, list[PlannedCell]] = {}
    for planned in matrix.cells:
        planned_of.setdefault(_base_id(planned), []).append(planned)
    out = []
    for base, group in planned_of.items():
        first, planned_count = group[0], len(group)
        found = _records(cells_dir, base)
        if any(p.repeat not in found for p in group):
            continue  # a planned repeat is missing: not ours to judge yet
        if sum(1 for r in found if r >= planned_count) >= extra:
            continue
        rows = tuple(tidy.flatten(found[r]) for r in sorted(found))
        if sum(1 for row in rows if row["status"] == "ok") < 2:
            continue
        reasons = aggregate.CellRepeats(base, rows).instability(SETTLE_ON)
        if reasons:
            out.append(Unsettled(PlannedCell(first.cell, max(found) + 1), reasons))
    return out


def run_extra(matrix: Matrix, cells_dir: Path, extra: int,
              run_cell: Callable[[PlannedCell, Path], dict[str, Any]],
              say: Callable[[str], None] = print) -> tuple[int, int]:
    """Run extra repeats until every cell settles or reaches ``extra``.

    Args:
        matrix: The matrix (its planned repeats have run).
        cells_dir: Where its records are.
        extra: Extra repeats allowed per cell (0: none).
        run_cell: Runs one planned cell and writes its record to the path
            (:func:`wsblock.matrix.run.run_one`).
        say: Where to report each extra repeat and why.

    Returns:
        ``(cells run, cells failed)``.
    """
    ran = failed = 0
    for _ in range(max(0, extra)):
        todo = unsettled(matrix, cells_dir, extra)
        if not todo:
            break
        for item in todo:
            say(f"extra repeat {item.next.cell_id}: {'; '.join(item.reasons)}")
            rec = run_cell(item.next, cells_dir / f"{item.next.cell_id}.json")
            ran += 1
            if rec.get("status") != "ok":
                failed += 1
    return ran, failed


__all__ = ["SETTLE_ON", "Unsettled", "run_extra", "unsettled"]
