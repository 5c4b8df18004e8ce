"""Fault injection: kills in every phase, foreign records, a vanishing results folder.

Properties kept here: nothing a run starts outlives it (whatever kills it and
whatever its server is doing), a matrix never counts a record that is not its
own, its exit status says whether every cell has a good record, and a killed
matrix resumes losing at most the cell in flight.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import FIXTURES, alive, descendants, run_cli
from wsblock import paths
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.reuse import expected_params

FIXTURE_RECORD = next((FIXTURES / "run_a" / "cells").glob("*.json"))

TINY = (
    'workloads = ["blocking_io"]\nwork_ms = [50]\nstrategies = ["inline", "thread", "process"]\n'
    "ping_interval = [1]\nping_timeout = [1]\nduration = 1\nwarmup = 0.5\nclose_timeout = 1\n"
    "job_connections = 1\nobservers = 1\n"
)


def _cmdlines(pids: set[int]) -> str:
    text = []
    for pid in pids:
        try:
            text.append(" ".join(psutil.Process(pid).cmdline()))
        except psutil.Error:
            pass
    return " ".join(text)


@pytest.fixture
def short_tmp() -> Path:
    """A temporary directory with a short path (Unix sockets live under it)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="wsf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _start_run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "wsblock", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(proc: subprocess.Popen[str], names: tuple[str, ...], timeout: float = 90) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        kids = descendants(proc.pid)
        if all(n in _cmdlines(kids) for n in names):
            return kids
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"run did not start {names}: {proc.communicate()[1][-2000:]}")


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


LONG = ["--duration", "30", "--warmup", "0.5", "--close-timeout", "1", "--observers", "1",
        "--job-connections", "1"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "workload,strategy,engine",
    [
        ("pure_python", "inline", ()),
        ("pure_python", "thread", ()),
        ("c_holds_gil", "thread", ()),
        ("pure_python", "process", ("forkserver",)),
    ],
)
def test_sigkill_of_a_run_leaves_nothing_even_with_a_blocked_loop(short_tmp, workload, strategy, engine) -> None:
    tmp_path = short_tmp
    proc = _start_run(tmp_path, "--workload", workload, "--work-ms", "15000", "--strategy", strategy, *LONG)
    pids = _wait_for(proc, ("wsblock.engine.server", "wsblock.engine.load", *engine))
    time.sleep(1.5)  # the window is open and a 15 s job is in flight
    pids |= descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not _gone_within(pids, 3.0), _cmdlines(alive(pids))
    # Its temporary directory (with the pool's pymp-* inside) is left behind,
    # owned by the command's worker process (see wsblock.engine.reaper),
    # and the next start removes it.
    left = [p for p in tmp_path.iterdir() if p.name.startswith("wsblock-cell-")]
    assert left and int((left[0] / paths.OWNER_FILE).read_text().partition("-")[0]) in pids
    assert set(paths.clean_stale(str(tmp_path))) >= {str(p) for p in left}
    assert not any(p.name.startswith(("wsblock-cell-", "pymp-")) for p in tmp_path.iterdir())


@pytest.mark.e2e
@pytest.mark.parametrize(
    "sig,phase,workload,strategy",
    [
        (signal.SIGTERM, "start", "pure_python", "process"),
        (signal.SIGINT, "window", "c_holds_gil", "thread"),
        # A call that never releases the GIL, inline or in a thread, keeps
        # the server from writing its measurements (a pure-Python job no
        # longer does: inline it is interrupted at the window's end; in a
        # thread the server writes them and its group is ended, job and all).
        (signal.SIGINT, "shutdown", "c_holds_gil", "inline"),
        (signal.SIGTERM, "shutdown", "c_holds_gil", "thread"),
    ],
)
def test_interrupt_in_any_phase_stops_everything_at_once(short_tmp, sig, phase, workload, strategy) -> None:
    tmp_path = short_tmp
    duration = "30" if phase != "shutdown" else "1.5"
    args = ["--workload", workload, "--work-ms", "15000", "--strategy", strategy, "--duration", duration,
            "--warmup", "0.5", "--close-timeout", "1", "--observers", "1", "--job-connections", "1"]
    proc = _start_run(tmp_path, *args)
    names = ("wsblock.engine.server",) if phase == "start" else ("wsblock.engine.server", "wsblock.engine.load")
    pids = _wait_for(proc, names)
    if phase == "window":
        time.sleep(1.5)
    elif phase == "shutdown":
        # The window closed; the runner now waits for a server stuck in its job.
        deadline = time.monotonic() + 30
        while "wsblock.engine.load" in _cmdlines(descendants(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    pids |= descendants(proc.pid)
    sent = time.monotonic()
    proc.send_signal(sig)
    if phase == "shutdown" and sig == signal.SIGINT:
        time.sleep(0.3)
        proc.send_signal(sig)  # a second Ctrl-C must not cut the stop short
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; every process of the run was stopped", err
    assert not alive(pids), _cmdlines(alive(pids))
    assert took < 8.0, f"took {took:.1f} s to stop"  # not the 15 s the job would take


@pytest.mark.e2e
def test_a_cell_runs_from_a_directory_that_shadows_modules(tmp_path) -> None:
    hostile = tmp_path / "here"
    (hostile / "workloads").mkdir(parents=True)
    for name in ("inspect.py", "json.py", "workloads/__init__.py"):
        (hostile / name).write_text(f'raise ImportError("{name} from the working directory")\n')
    out = tmp_path / "r.json"
    # The command itself started without the cwd on sys.path, as the
    # installed `wsblock` script is; its children must be isolated too.
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "wsblock", "run", "--quiet", "--workload", "numpy", "--work-ms", "20",
         "--strategy", "process", "--duration", "1", "--warmup", "0.5", "--close-timeout", "1",
         "--observers", "1", "--job-connections", "1", "--out", str(out)],
        cwd=hostile, capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["throughput"]["jobs_per_s"] > 0


def _matrix_file(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def _records(out: Path) -> dict[str, Path]:
    return {p.stem: p for p in (out / "cells").glob("*.json")}


def _fake_record(planned: matrix_spec.PlannedCell, **changes: object) -> dict:
    rec = json.loads(FIXTURE_RECORD.read_text())
    rec["params"] = {**expected_params(planned), **changes}
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
    return rec


@pytest.mark.e2e
def test_a_record_with_other_parameters_is_never_counted(tmp_path) -> None:
    config = _matrix_file(tmp_path)
    matrix = matrix_spec.load_file(config)
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    first = matrix.cells[0]
    # Same cell id, a 3 s window instead of 1 s, and no manifest.
    path = out / "cells" / f"{first.cell_id}.json"
    path.write_text(json.dumps(_fake_record(first, duration=3.0)))
    proc = run_cli("matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and first.cell_id in lines[0], proc.stderr
    assert "duration" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["cells"]  # nothing written
    # A file that is not a planned cell at all, next to matching records.
    path.unlink()
    (out / "cells" / "numpy-10ms-inline-pi20-pt20-r0.json").write_text(FIXTURE_RECORD.read_text())
    proc = run_cli("matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert proc.returncode == 2 and "numpy-10ms-inline-pi20-pt20-r0.json" in proc.stderr


@pytest.mark.e2e
def test_a_damaged_manifest_is_kept_and_only_matching_records_reused(tmp_path) -> None:
    config = _matrix_file(tmp_path)
    matrix = matrix_spec.load_file(config)
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    for planned in matrix.cells:
        (out / "cells" / f"{planned.cell_id}.json").write_text(json.dumps(_fake_record(planned)))
    (out / "manifest.json").write_text('{"schema_version": 1, "sessions": [')  # cut short
    proc = run_cli("matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"0 cells measured, {len(matrix.cells)} already recorded" in proc.stdout
    kept = [p for p in out.iterdir() if p.name.startswith("manifest.json.damaged-")]
    assert len(kept) == 1 and kept[0].read_text() == '{"schema_version": 1, "sessions": ['
    assert "kept as" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recovered_from"]["damaged_manifest"] == kept[0].name
    with open(out / "cells.csv", newline="") as handle:
        assert sorted(r["cell_id"] for r in csv.DictReader(handle)) == sorted(p.cell_id for p in matrix.cells)


@pytest.mark.e2e
def test_a_matrix_with_failed_cells_exits_1_with_a_summary(tmp_path) -> None:
    config = _matrix_file(tmp_path, TINY.replace('"inline", "thread", "process"', '"inline", "thread"'))
    out = tmp_path / "out"
    env = {**os.environ, "WSBLOCK_CACHE_DIR": "/proc/no-such-cache"}  # every cell fails at calibration
    proc = subprocess.run([sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 of 2 cells have no good record: 2 failed")
    assert all(json.loads(p.read_text())["status"] == "failed" for p in _records(out).values())


@pytest.mark.e2e
def test_kill_9_of_a_matrix_then_resume(tmp_path) -> None:
    config = _matrix_file(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not _records(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert _records(out), proc.communicate()[1][-2000:]
    _wait_for(proc, ("wsblock.engine.server",))  # the next cell is in flight
    pids = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _gone_within(pids, 3.0), _cmdlines(alive(pids))
    before = {name: path.read_bytes() for name, path in _records(out).items()}
    assert 1 <= len(before) < 3
    for content in before.values():
        json.loads(content)  # no half-written record
    assert not [p for p in (out / "cells").iterdir() if p.suffix != ".json"]

    proc2 = run_cli("matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert proc2.returncode == 0, proc2.stderr
    assert f"{3 - len(before)} cells measured, {len(before)} already recorded" in proc2.stdout
    after = _records(out)
    assert len(after) == 3 and all(after[n].read_bytes() == c for n, c in before.items())
    with open(out / "cells.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["cell_id"] for r in rows) == sorted(after)
    assert {r["status"] for r in rows} == {"ok"}
    assert len(json.loads((out / "manifest.json").read_text())["sessions"]) == 2


@pytest.mark.e2e
def test_a_results_folder_removed_mid_run_is_an_error_not_recreated(tmp_path) -> None:
    config = _matrix_file(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not _records(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert _records(out), proc.communicate()[1][-2000:]
    shutil.rmtree(out)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "removed or replaced during the run" in err.strip().splitlines()[-1]
    assert not out.exists()


@pytest.mark.e2e
def test_stale_temporary_directories_and_partial_files_of_dead_runs_are_removed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WSBLOCK_CACHE_DIR", str(tmp_path / "cache"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_tag = f"{dead.pid}-{int(time.time())}"
    stale = tmp_path / "wsblock-cell-stale"
    (stale / "pymp-abc").mkdir(parents=True)
    (stale / paths.OWNER_FILE).write_text(dead_tag)
    live = tmp_path / "wsblock-matrix-live"
    live.mkdir()
    (live / paths.OWNER_FILE).write_text(paths.owner_tag())
    unmarked = tmp_path / "wsblock-cell-unmarked"  # not ours to judge
    unmarked.mkdir()
    other = tmp_path / "pymp-foreign"
    other.mkdir()
    data = paths.data_dir()
    partial = data / f"pandas-v1-1048576.csv.{dead_tag}.partial"
    partial.write_text("key,city\n1,")
    mine = Path(paths.partial_name(str(data / "pandas-v1-1048576.csv")))
    mine.write_text("key,city\n")

    removed = paths.clean_stale(str(tmp_path))
    assert sorted(removed) == sorted([str(stale), str(partial)])
    assert live.exists() and unmarked.exists() and other.exists() and mine.exists()


def test_pandas_data_is_written_under_a_partial_name_then_renamed(tmp_path, monkeypatch) -> None:
    from workloads import pandas_csv

    seen = []
    real_replace = os.replace

    def spy(src, dst):  # type: ignore[no-untyped-def]
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(pandas_csv.os, "replace", spy)
    target = tmp_path / "data.csv"
    pandas_csv._generate(str(target), 10)
    assert target.read_text().startswith("key,city,value,count")
    assert len(seen) == 1 and seen[0].endswith(".partial") and seen[0].startswith("data.csv.")
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]
