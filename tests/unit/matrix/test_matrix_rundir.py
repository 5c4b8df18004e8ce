"""The matrix's run directory, record reuse and manifest, one piece at a time, in process.

No cell is measured: records are built from a fixture record with the
planned cell's parameters, as a finished cell would have written them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIXTURES

from wsblock import atomic
from wsblock.engine import meta
from wsblock.durations import format_duration
from wsblock.errors import HarnessError, UsageError
from wsblock.matrix import manifest, overhead, reuse
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.directory import Guard, check_directory, remove_if_only_lock, unfinished
from wsblock.schema import record, rundir

FIXTURE_RECORD = next((FIXTURES / "run_a" / "cells").glob("*.json"))

TINY = {"workloads": ["blocking_io"], "work_ms": [50, 60], "strategies": ["inline"], "duration": 1,
        "warmup": 0.5}


def _matrix(**changes: Any) -> matrix_spec.Matrix:
    return matrix_spec.expand({**TINY, **changes}, source="tiny.toml")


def _record(planned: matrix_spec.PlannedCell, status: str = "ok") -> dict[str, Any]:
    if status == "ok":
        rec = json.loads(FIXTURE_RECORD.read_text())
        rec["params"] = reuse.expected_params(planned)
    else:
        rec = record.failed(params=planned.cell.to_dict(), error="not measured", exit_code=1, stderr_tail=[],
                            meta=meta.environment())
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
    return rec


def _write(directory: Path, planned: matrix_spec.PlannedCell, rec: dict[str, Any]) -> Path:
    path = directory / rundir.CELLS / f"{planned.cell_id}.json"
    atomic.write_json(path, rec)
    return path


def test_a_cell_without_a_file_is_missing(tmp_path: Path) -> None:
    planned = _matrix().cells[0]
    assert reuse.read_record(tmp_path / f"{planned.cell_id}.json", planned) == ("missing", None)


def test_a_record_is_reused_only_when_it_is_this_cells_and_ok(tmp_path: Path) -> None:
    first, second = _matrix().cells
    path = _write(tmp_path, first, _record(first))
    status, data = reuse.read_record(path, first)
    assert status == "ok" and data is not None and reuse.existing_record(path, first) == data

    # The same file read as another planned cell: its params differ, so it is not that cell's.
    status, data = reuse.read_record(path, second)
    assert status.startswith("foreign: work_ms is 50") and data is None
    assert reuse.existing_record(path, second) is None

    # A failed attempt at this very cell is recognised, but not reused.
    _write(tmp_path, first, _record(first, status="failed"))
    assert reuse.read_record(path, first)[0] == "failed"
    assert reuse.existing_record(path, first) is None

    # Right params, but tagged as another cell of the matrix.
    rec = _record(first)
    rec["matrix"]["repeat"] = 3
    _write(tmp_path, first, rec)
    assert reuse.read_record(path, first)[0] == f"foreign: recorded as {first.cell_id} repeat 3"

    path.write_text("{not json")
    assert reuse.read_record(path, first)[0].startswith("damaged: ")


def test_the_directory_check_plans_only_cells_without_a_good_record(tmp_path: Path) -> None:
    m = _matrix()
    first, second = m.cells
    assert [p.cell_id for p in check_directory(m, tmp_path / "new").todo] == [first.cell_id, second.cell_id]
    assert not (tmp_path / "new").exists()  # checking writes nothing
    _write(tmp_path, first, _record(first))
    _write(tmp_path, second, _record(second, status="failed"))
    plan = check_directory(m, tmp_path)
    assert plan.reused == 1 and [p.cell_id for p in plan.todo] == [second.cell_id]
    assert unfinished(m, tmp_path) == ([second.cell_id], [])
    (tmp_path / rundir.CELLS / f"{second.cell_id}.json").unlink()
    assert unfinished(m, tmp_path) == ([], [second.cell_id])


def test_a_file_that_is_no_planned_cells_record_stops_the_run(tmp_path: Path) -> None:
    m = _matrix()
    other = _matrix(work_ms=[70]).cells[0]
    _write(tmp_path, other, _record(other))
    with pytest.raises(UsageError, match=f"{other.cell_id}.json: not a cell of this matrix"):
        check_directory(m, tmp_path)
    # A hidden file is an atomic write cut short: never read, never refused.
    (tmp_path / rundir.CELLS / f"{other.cell_id}.json").rename(tmp_path / rundir.CELLS / ".tmp-x")
    assert len(check_directory(m, tmp_path).todo) == 2


def test_another_matrix_is_refused_but_more_repeats_resume(tmp_path: Path) -> None:
    m = _matrix()
    atomic.write_json(tmp_path / rundir.MANIFEST, manifest.new_manifest(m, "wsblock matrix", None))
    assert len(check_directory(_matrix(repeats=2), tmp_path).todo) == 4
    with pytest.raises(UsageError, match="holds a different matrix"):
        check_directory(_matrix(strategies=["thread"]), tmp_path)


def test_the_manifest_round_trips_and_a_resume_adds_a_session(tmp_path: Path) -> None:
    m = _matrix()
    said: list[str] = []
    first = manifest.begin(m, tmp_path, command="wsblock matrix a", parallel=1, slots=[], dask=None, say=said.append)
    manifest.note_host(first, m.cells[0].cell_id, {"matrix": {"host": "box-1"}})
    manifest.note_host(first, m.cells[1].cell_id, {"matrix": {"host": None}})
    summary = overhead.overhead_summary(10.0, [{"timing": {"warmup_s": 0.5, "window_s": 1.0}}])
    manifest.finish(tmp_path, first, complete=False, overhead=summary)
    read, damage = rundir.read_manifest(tmp_path)
    assert damage is None and read is not None
    assert read["kind"] == rundir.MANIFEST_KIND and read["config_path"] == "tiny.toml" and read["planned"] == 2
    assert read["hosts"] == {m.cells[0].cell_id: "box-1"} and read["complete"] is False
    assert read["overhead"]["cells"] == 1 and read["overhead"]["measured_s"] == 1.5

    second = manifest.begin(m, tmp_path, command="wsblock matrix b", parallel=2, slots=[[0], [1]], dask=None,
                            say=said.append)
    manifest.finish(tmp_path, second, complete=True, overhead=summary)
    read, _ = rundir.read_manifest(tmp_path)
    assert read is not None and not said
    assert [s["command"] for s in read["sessions"]] == ["wsblock matrix a", "wsblock matrix b"]
    assert read["sessions"][1]["core_slots"] == [[0], [1]] and read["started_utc"] == first["started_utc"]
    assert read["hosts"] == {m.cells[0].cell_id: "box-1"}  # kept on resume
    assert read["overhead"]["sessions"] == 2 and read["overhead"]["wall_s"] == 20.0


def test_a_damaged_manifest_is_kept_aside_not_destroyed(tmp_path: Path) -> None:
    (tmp_path / rundir.MANIFEST).write_text("{broken")
    said: list[str] = []
    fresh = manifest.begin(_matrix(), tmp_path, command="c", parallel=1, slots=[], dask=None, say=said.append)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(f"{rundir.MANIFEST}.damaged-")]
    assert len(kept) == 1 and kept[0].read_text() == "{broken"
    assert fresh["recovered_from"]["damaged_manifest"] == kept[0].name
    assert len(said) == 1 and "unreadable" in said[0]
    assert rundir.read_manifest(tmp_path)[0] is not None


def test_the_guard_sees_a_replaced_directory(tmp_path: Path) -> None:
    directory = tmp_path / "out"
    (directory / rundir.CELLS).mkdir(parents=True)
    guard = Guard(directory)
    guard.check("nothing")
    os.rename(directory, tmp_path / "moved")
    (directory / rundir.CELLS).mkdir(parents=True)
    assert not guard.intact()
    with pytest.raises(HarnessError, match="removed or replaced during the run; the record was not written"):
        guard.check("the record was not written")


def test_a_directory_made_for_a_refused_run_is_removed_only_if_empty(tmp_path: Path) -> None:
    only_lock = tmp_path / "a"
    only_lock.mkdir()
    (only_lock / rundir.LOCK_NAME).write_text("")
    remove_if_only_lock(only_lock)
    assert not only_lock.exists()
    more = tmp_path / "b"
    more.mkdir()
    (more / rundir.LOCK_NAME).write_text("")
    (more / "notes.txt").write_text("mine")
    remove_if_only_lock(more)
    assert (more / "notes.txt").exists()


@pytest.mark.parametrize("seconds, text", [(40.4, "40 s"), (205, "3 min 25 s"), (720, "12 min"), (3900, "1 h 05 min")])
def test_durations_are_said_in_the_shortest_readable_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
