"""Matrices: validation up front, and the smoke profile end to end with a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import alive, descendants, run_cli
from wsblock.matrix import spec as matrix_spec
from wsblock.errors import UsageError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


BASE = 'workloads = ["numpy"]\nwork_ms = [10]\nstrategies = ["inline"]\n'


def test_profiles_expand_to_the_documented_grids() -> None:
    smoke = matrix_spec.load_profile("smoke")
    quick = matrix_spec.load_profile("quick")
    default = matrix_spec.load_profile("default")
    assert len(smoke.cells) == 4
    # quick: two workloads, every strategy, one keepalive setting, three repeats.
    assert {c.cell.workload for c in quick.cells} == {"pure_python", "c_holds_gil"}
    assert {c.cell.strategy for c in quick.cells} == {"inline", "chunked", "thread", "process"}
    assert len(quick.cells) == (4 + 3) * 3
    # Profiles used for conclusions measure every cell at least three times.
    assert quick.definition["repeats"] >= 3 and default.definition["repeats"] >= 3
    # default: 5 workloads x 4 strategies x 2 work sizes x 2 ping timeouts
    # minus chunked x c_holds_gil, three repeats.
    assert len(default.cells) == (5 * 4 * 2 * 2 - 2 * 2) * 3
    assert len(default.skipped) == 4 and all("single call" in r for _, r in default.skipped)


def test_workload_parameter_lists_are_an_axis_for_that_workload_only(tmp_path) -> None:
    m = matrix_spec.load_file(_write(tmp_path, 'workloads = ["pandas", "numpy"]\nwork_ms = [10]\n'
                                     'strategies = ["inline"]\npandas_chunksize = [1000, 5000]\nrepeats = 2\n'))
    ids = [c.cell_id for c in m.cells]
    assert len(ids) == (2 + 1) * 2 and len(set(ids)) == len(ids)
    assert "pandas-10ms-inline-pi20-pt20-chunksize1000-r1" in ids


@pytest.mark.parametrize(
    "text,message",
    [
        (BASE + "colour = 3\n", "unknown key 'colour'"),
        ('workloads = ["nope"]\nwork_ms = [10]\nstrategies = ["inline"]\n', "workloads: unknown workload"),
        ('workloads = ["numpy"]\nwork_ms = [10]\nstrategies = ["fork"]\n', "strategies: unknown strategy"),
        ('workloads = ["numpy"]\nwork_ms = [-1]\nstrategies = ["inline"]\n', "work_ms: expected positive"),
        (BASE + 'ping_timeout = ["never"]\n', "ping_timeout"),
        (BASE + "duration = 0\n", "duration"),
        (BASE + "repeats = 0\n", "repeats"),
        (BASE + "pandas_chunksize = 1\n", "chunksize"),
        ('workloads = ["numpy"]\n', "needs the key 'work_ms'"),
        ("workloads = [\n", "invalid TOML"),
    ],
)
def test_bad_matrix_files_name_the_key(tmp_path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        matrix_spec.load_file(_write(tmp_path, text))


@pytest.mark.e2e
def test_bad_matrix_input_is_exit_2_and_starts_nothing(tmp_path) -> None:
    out = tmp_path / "out"
    proc = run_cli("matrix", "--config", str(_write(tmp_path, BASE + "colour = 3\n")), "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown key 'colour'")
    assert not out.exists()
    proc = run_cli("matrix", "--profile", "huge", "--out", str(out))
    assert proc.returncode == 2 and "unknown profile" in proc.stderr


def _records(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in (directory / "cells").glob("*.json")}


@pytest.mark.e2e
def test_smoke_matrix_killed_mid_run_resumes_without_redoing_cells(tmp_path) -> None:
    out = tmp_path / "smoke"
    cmd = [sys.executable, "-m", "wsblock", "matrix", "--profile", "smoke", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 180
    while len(_records(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(_records(out)) >= 2, proc.stderr.read() if proc.poll() is not None else "too slow"
    time.sleep(1.0)  # the third cell is now in flight
    pids = descendants(proc.pid)
    assert pids, "no cell in flight"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The cell in flight and its server and load processes end with the matrix.
    deadline = time.monotonic() + 60
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pids)

    before = {name: path.read_bytes() for name, path in _records(out).items()}
    assert 2 <= len(before) < 4
    proc = run_cli("matrix", "--profile", "smoke", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"{4 - len(before)} cells measured, {len(before)} already recorded" in proc.stdout
    after = _records(out)
    assert len(after) == 4
    for name, content in before.items():
        assert after[name].read_bytes() == content  # not redone

    records = [json.loads(p.read_text()) for p in after.values()]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    by_id = {r["matrix"]["cell_id"]: r for r in records}
    # The physics the smoke profile exists to show.
    assert by_id["pure_python-1500ms-inline-pi0.5-pt0.5-r0"]["disconnects"]["total"] > 0
    assert by_id["blocking_io-1500ms-thread-pi0.5-pt0.5-r0"]["disconnects"]["total"] == 0

    with open(out / "cells.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # cells x repeats
    for column in ("cell_id", "repeat", "workload", "strategy", "ping_timeout", "disconnect_share",
                   "lag_p99_ms", "echo_p99_ms", "jobs_per_s"):
        assert column in rows[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["finished_utc"]
    assert len(manifest["sessions"]) == 2
    assert manifest["environment"]["cpu"]["count"]


def test_repeats_are_interleaved_so_each_cell_samples_the_whole_run(tmp_path, monkeypatch) -> None:
    from wsblock.engine import meta
    from wsblock.matrix import measure as matrix_measure
    from wsblock.matrix import run as matrix_run
    from wsblock.schema import record

    m = matrix_spec.load_file(_write(tmp_path, 'workloads = ["numpy"]\nwork_ms = [10, 20]\n'
                                     'strategies = ["inline", "thread"]\nrepeats = 3\n'))
    order: list[tuple[str, int]] = []

    def fake(planned, **_):  # records what ran, measures nothing
        order.append((planned.cell.strategy + str(planned.cell.work_ms), planned.repeat))
        rec = record.failed(params=planned.cell.to_dict(), error="not measured", exit_code=1, stderr_tail=[],
                            meta=meta.environment())
        rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
        return rec

    monkeypatch.setattr(matrix_measure, "measure_one", fake)
    matrix_run.run_matrix(m, tmp_path / "out", command="test", show_progress=False)
    assert [r for _, r in order] == [0] * 4 + [1] * 4 + [2] * 4
    assert order[:4] == [(c, 0) for c, _ in order[4:8]]
