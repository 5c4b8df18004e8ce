"""Extra repeats where repeats disagree: which cells get one, and the bound (no cells run)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from wsblock.matrix import adaptive
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.spec import PlannedCell

TEMPLATE = Path(__file__).parent / "fixtures" / "run_a" / "cells" / "pure_python-200ms-inline-pi0.5-pt0.5-r0.json"


def _matrix() -> matrix_spec.Matrix:
    return matrix_spec.expand({"workloads": ["pure_python"], "work_ms": [200], "strategies": ["inline", "thread"],
                               "ping_interval": [0.5], "ping_timeout": [0.5], "repeats": 3}, source="test")


def _record(planned: PlannedCell, *, lag: float, lost: int) -> dict[str, Any]:
    rec = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    rec["params"] = planned.cell.to_dict()
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
    rec["loop_lag_ms"]["p99"] = lag
    rec["disconnects"]["total"] = lost
    rec["disconnects"]["share"] = lost / rec["connections"]["opened_total"]
    return rec


def _write(cells: Path, planned: PlannedCell, **kw: Any) -> None:
    (cells / f"{planned.cell_id}.json").write_text(json.dumps(_record(planned, **kw)))


def test_only_disagreeing_cells_get_extra_repeats_up_to_the_bound(tmp_path: Path) -> None:
    matrix = _matrix()
    inline = [p for p in matrix.cells if p.cell.strategy == "inline"]
    thread = [p for p in matrix.cells if p.cell.strategy == "thread"]
    # inline: a boundary cell (one repeat lost connections); thread: steady.
    for p, lost in zip(inline, (0, 3, 0)):
        _write(tmp_path, p, lag=500.0, lost=lost)
    for p in thread:
        _write(tmp_path, p, lag=40.0 + p.repeat, lost=0)
    todo = adaptive.unsettled(matrix, tmp_path, extra=2)
    assert [u.next.cell_id for u in todo] == ["pure_python-200ms-inline-pi0.5-pt0.5-r3"]
    assert "1 of 3 repeats lost connections" in todo[0].reasons[0]

    said: list[str] = []

    def still_disagrees(planned: PlannedCell, path: Path) -> dict[str, Any]:
        rec = _record(planned, lag=500.0, lost=planned.repeat % 2)
        path.write_text(json.dumps(rec))
        return rec

    ran, failed = adaptive.run_extra(matrix, tmp_path, 2, still_disagrees, say=said.append)
    assert (ran, failed) == (2, 0)
    assert sorted(p.name for p in tmp_path.glob("*inline*")) == [
        f"pure_python-200ms-inline-pi0.5-pt0.5-r{k}.json" for k in range(5)]
    assert len(said) == 2 and all("extra repeat" in line for line in said)
    # The bound is reached: nothing more to do.
    assert adaptive.unsettled(matrix, tmp_path, extra=2) == []


def test_scattered_loop_lag_asks_for_a_repeat_and_missing_repeats_wait(tmp_path: Path) -> None:
    matrix = _matrix()
    inline = [p for p in matrix.cells if p.cell.strategy == "inline"]
    for p, lag in zip(inline, (100.0, 400.0, 900.0)):
        _write(tmp_path, p, lag=lag, lost=0)
    thread = [p for p in matrix.cells if p.cell.strategy == "thread"]
    _write(tmp_path, thread[0], lag=100.0, lost=0)
    _write(tmp_path, thread[1], lag=900.0, lost=0)
    todo = adaptive.unsettled(matrix, tmp_path, extra=1)
    assert [u.next.cell.strategy for u in todo] == ["inline"]
    assert "lag_p99_ms varies" in todo[0].reasons[0]
    assert adaptive.unsettled(matrix, tmp_path, extra=0) == []
