"""The matrix's progress display: a bar that fits 80 columns, one line per cell off a terminal."""

from __future__ import annotations

import io
import os
import re

from wsblock.engine import meta
from wsblock.matrix import measure as matrix_measure
from wsblock.matrix import progress as matrix_progress
from wsblock.matrix import run as matrix_run
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import record


def _fake_measure(fail: set[int]):  # returns records, measures nothing: the display is under test
    calls: list[str] = []

    def measure(planned, **_):
        calls.append(planned.cell_id)
        rec = record.failed(params=planned.cell.to_dict(), error="not measured", exit_code=1, stderr_tail=[],
                            meta=meta.environment())
        if len(calls) - 1 not in fail:
            rec["status"] = "ok"
        rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
        return rec
    return measure, calls


def test_off_a_terminal_each_finished_cell_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    spec = matrix_spec.load_profile("smoke")
    measure, calls = _fake_measure(fail={1})
    monkeypatch.setattr(matrix_measure, "measure_one", measure)
    matrix_run.run_matrix(spec, tmp_path / "out", command="test", show_progress=True)
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == len(calls) == 4
    for n, (line, cell_id) in enumerate(zip(lines, calls), start=1):
        assert line.startswith(f"wsblock: [{n}/4] {cell_id} ")
        assert f"failed {0 if n < 2 else 1}" in line
        assert ("eta " in line) == (n < 4)  # nothing left to estimate after the last cell
    assert " failed: not measured " in lines[1] and " ok " in lines[0]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:  # asked for its size, answered by the patched get_terminal_size
        return 2


def test_on_a_terminal_the_bar_fits_80_columns_with_counts_and_one_eta(monkeypatch) -> None:
    monkeypatch.setattr(os, "get_terminal_size", lambda *_: os.terminal_size((80, 24)))
    spec = matrix_spec.load_profile("default")  # the longest cell ids
    cells = sorted(spec.cells, key=lambda p: -len(p.cell_id))[:3]
    assert len(cells[0].cell_id) > 40
    stream = _Terminal()
    progress = matrix_progress.Progress(total=10, done=4, per_cell=[60.0] * 3, stream=stream)
    for planned, status in zip(cells, ("ok", "failed", "ok")):
        progress.starting(planned)
        progress.finished(planned, {"status": status, "error": "boom"})
    progress.close()
    text = stream.getvalue()
    frames = [f for line in text.split("\n") for f in line.split("\r") if "%|" in f]
    assert frames
    for frame in frames:
        assert 70 <= len(frame.rstrip()) <= 80, frame  # the bar takes the width left
        assert "failed " in frame
        assert frame.count("eta") <= 1 and "<" not in frame  # no second, tqdm-made estimate
    # The count on the bar and the failures agree with what finished.
    last = frames[-1]
    assert re.search(r"\b7/10\b", last) and "failed 1" in last
    assert any(re.search(r"\b5/10\b", f) and "failed 0" in f for f in frames)
    assert any(re.search(r"\b6/10\b", f) and "failed 1" in f for f in frames)
    assert f"cell {cells[1].cell_id} failed: boom" in text


def test_short_labels_fit_and_name_strategy_workload_and_repeat() -> None:
    for planned in matrix_spec.load_profile("default").cells:
        label = matrix_progress.short_label(planned)
        assert len(label) <= matrix_progress.LABEL_WIDTH
        assert label.startswith(planned.cell.strategy)
