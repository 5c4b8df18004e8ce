"""A matrix's planned wall time: warm-ups and windows, plus the overhead measured on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsblock.engine.config import CellConfig
from wsblock.matrix import estimate
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.estimate import cell_estimate_s, remember_overheads


def _cell(workload: str = "pure_python", strategy: str = "thread", work_ms: float = 2000.0) -> CellConfig:
    return CellConfig(workload, work_ms, strategy, duration=7.0, warmup=1.0).validate()


@pytest.mark.parametrize("workload,strategy,waits", [
    ("c_holds_gil", "inline", True),       # the call cannot be interrupted
    ("c_holds_gil", "thread", True),       # the loop's thread cannot run until the call ends
    ("pure_python", "inline", False),      # interrupted at the window's end
    ("pure_python", "thread", False),      # the interpreter switches threads
    ("blocking_io", "thread", False),
    ("pure_python", "process", False),
    ("pure_python", "chunked", False),     # the loop runs between steps
])
def test_cells_whose_job_holds_the_loop_wait_for_half_a_job(workload: str, strategy: str, waits: bool) -> None:
    cell = _cell(workload, strategy)
    assert estimate.holds_loop(cell) is waits
    # Half the 2 s job in flight (a job not begun by the window's end is not
    # begun, so none queued behind it is waited for).
    expected = estimate.DEFAULT_OVERHEAD_S + (1.0 if waits else 0.0)
    assert estimate.default_overhead_s(cell) == pytest.approx(expected)


def test_measured_overheads_replace_the_defaults_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "overhead.json"
    history = estimate.History(path)
    cell = _cell()
    assert history.overhead_s(cell) == (pytest.approx(estimate.DEFAULT_OVERHEAD_S), False)
    for value in (0.4, 0.6):
        history.add(cell, value)
    history.save()
    again = estimate.History(path)
    assert again.overhead_s(cell) == (pytest.approx(0.5), True)
    # Another job length of a cell that does not wait for its job: the same overhead.
    assert again.overhead_s(_cell(work_ms=100.0)) == (pytest.approx(0.5), True)
    # One that waits for its job: not inferred from another length.
    again.add(_cell("c_holds_gil", strategy="inline"), 1.5)
    inline = _cell("c_holds_gil", strategy="inline", work_ms=100.0)
    assert again.overhead_s(inline) == (pytest.approx(estimate.default_overhead_s(inline)), False)


def test_only_the_latest_cells_are_kept_and_a_damaged_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "overhead.json"
    history = estimate.History(path)
    cell = _cell()
    for i in range(estimate.KEPT_PER_KEY + 5):
        history.add(cell, 100.0 if i < 5 else 1.0)
    assert history.overhead_s(cell)[0] == pytest.approx(1.0)
    path.write_text("{not json")
    assert estimate.History(path).cells == {}


def test_only_good_serial_local_records_teach_the_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSBLOCK_CACHE_DIR", str(tmp_path))
    params = json.loads(json.dumps(_cell().to_dict()))

    def rec(status: str = "ok", **tag) -> dict:
        return {"status": status, "params": params, "matrix": {"overhead_s": 0.7, "parallel": 1, **tag}}

    history = estimate.History()
    remember_overheads(history, [rec(), rec("failed"), rec(parallel=2), rec(host="elsewhere")])
    assert estimate.History().cells == {"thread/pure_python/2000": [0.7]}


def test_the_estimate_is_warmup_and_window_plus_the_overhead(tmp_path: Path) -> None:
    history = estimate.History(tmp_path / "overhead.json")
    planned = matrix_spec.PlannedCell(repeat=0, cell=_cell("c_holds_gil", strategy="inline"))
    assert cell_estimate_s(planned, history) == pytest.approx(1.0 + 7.0 + estimate.DEFAULT_OVERHEAD_S + 1.0)
    history.add(planned.cell, 0.25)
    assert cell_estimate_s(planned, history) == pytest.approx(8.25)
