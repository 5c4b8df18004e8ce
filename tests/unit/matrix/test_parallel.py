"""``wsblock matrix --parallel N``: cells side by side on cores of their own, or refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import alive, cmdline, descendants, run_cli
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import cores as matrix_cores
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.overhead import overhead_summary

# Two cells that each need one core: work that waits, in a thread pool.
ONE_CORE = """
workloads = ["blocking_io"]
work_ms = [100]
strategies = ["thread"]
ping_interval = [0.5, 1.0]
ping_timeout = [0.5]
duration = {duration}
warmup = 0.5
repeats = 1
job_connections = 2
observers = 2
echo_interval_ms = 20
close_timeout = 1
"""

needs_two_cores = pytest.mark.skipif(len(matrix_cores.available_cores()) < 2, reason="needs 2 cores")


@pytest.mark.parametrize("workload,strategy,jobs,need", [
    ("blocking_io", "thread", 2, 1),     # waits: only the loop and the load
    ("blocking_io", "inline", 2, 1),
    ("pure_python", "inline", 2, 2),     # the loop itself is busy
    ("pure_python", "thread", 4, 2),     # holds the GIL: one job advances at a time
    ("numpy", "thread", 3, 4),           # releases the GIL: every job in flight
    ("pure_python", "process", 3, 4),
])
def test_cores_a_cell_needs(workload: str, strategy: str, jobs: int, need: int) -> None:
    cell = CellConfig(workload, 100.0, strategy, job_connections=jobs).validate()
    assert matrix_cores.cores_needed(cell) == need


def test_core_slots_are_disjoint_and_refused_beyond_the_cores() -> None:
    light = [CellConfig("blocking_io", 100.0, "thread").validate()]
    heavy = light + [CellConfig("pure_python", 100.0, "inline").validate()]
    assert matrix_cores.core_slots(2, light, cores=[0, 1]) == [[0], [1]]
    assert matrix_cores.core_slots(2, heavy, cores=[0, 1, 2, 3]) == [[0, 1], [2, 3]]
    with pytest.raises(UsageError, match=r"--parallel 2 needs 4 cores, 2 for each cell \(pure_python x "
                                         r"inline needs 2\).*may use 2; at most --parallel 1"):
        matrix_cores.core_slots(2, heavy, cores=[0, 1])


def test_overhead_is_the_wall_time_outside_warmups_and_windows() -> None:
    recs = [{"timing": {"warmup_s": 1.0, "window_s": 4.0, "calibrate_s": 2.5}}, {"status": "failed", "error": "x"}]
    summary = overhead_summary(12.0, recs)
    assert summary == {"cells": 2, "wall_s": 12.0, "measured_s": 5.0, "overhead_s": 7.0,
                       "overhead_share": round(7 / 12, 4), "calibrate_s": 2.5}


@pytest.mark.e2e
def test_parallel_beyond_the_machine_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m"
    proc = run_cli("matrix", "--profile", "smoke", "--out", str(out), "--parallel", "256")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --parallel 256 needs") and "for each cell" in proc.stderr
    assert not out.exists()


@pytest.mark.e2e
@needs_two_cores
def test_two_cells_at_once_give_complete_records_pinned_apart(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(ONE_CORE.format(duration=2))
    out = tmp_path / "p"
    proc = run_cli("matrix", "--config", str(config), "--out", str(out), "--parallel", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning: 2 cells at once" in proc.stderr and "overhead" in proc.stdout
    planned = {p.cell_id: p for p in matrix_spec.load_file(str(config)).cells}
    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert set(records) == set(planned)
    used = []
    for cell_id, rec in records.items():
        assert rec["status"] == "ok", rec.get("error")
        assert rec["params"] == json.loads(json.dumps(planned[cell_id].cell.to_dict()))
        tag = rec["matrix"]
        assert tag["parallel"] == 2 and len(tag["cores"]) == 1
        assert rec["meta"]["cpu"]["affinity"] == 1  # the cell saw only its own core
        assert tag["overhead_s"] == pytest.approx(tag["wall_s"] - 2.5, abs=0.01)
        used.append(tag["cores"][0])
    assert len(set(used)) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parallel"] == 2 and manifest["complete"]
    assert manifest["overhead"]["cells"] == 2 and 0 < manifest["overhead"]["overhead_share"] < 1


@pytest.mark.e2e
@needs_two_cores
def test_interrupted_parallel_matrix_stops_every_process(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(ONE_CORE.format(duration=30))
    cmd = [sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out", str(tmp_path / "p"),
           "--parallel", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    deadline = time.monotonic() + 120
    pids: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        pids = descendants(proc.pid)
        servers = [p for p in alive(pids) if "wsblock.engine.server" in cmdline(p)]
        loads = [p for p in alive(pids) if "wsblock.engine.load" in cmdline(p)]
        if len(servers) == 2 and len(loads) == 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(f"two cells never ran at once: {proc.communicate()[1]}")
    time.sleep(1.0)
    pids |= descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "every process of the run was stopped" in err
    time.sleep(0.5)
    assert not alive(pids)


def _local_cluster(**kwargs):  # type: ignore[no-untyped-def]
    distributed = pytest.importorskip("distributed")
    return distributed.LocalCluster(processes=True, host="127.0.0.1", dashboard_address=None,
                                    threads_per_worker=2, **kwargs)


def test_a_cluster_without_cell_slots_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wsblock.cli import main

    with _local_cluster(n_workers=1) as cluster:
        code = main(["matrix", "--profile", "smoke", "--out", str(tmp_path / "d"), "--dask",
                     cluster.scheduler_address, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "advertises a cell slot" in err and "--resources cells=1" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.e2e
def test_cells_on_a_dask_worker_come_back_complete_with_their_host(tmp_path: Path) -> None:
    from wsblock.cli import main

    config = tmp_path / "m.toml"
    config.write_text(ONE_CORE.format(duration=2))
    out = tmp_path / "d"
    with _local_cluster(n_workers=1, resources={"cells": 1}) as cluster:
        assert main(["matrix", "--config", str(config), "--out", str(out), "--dask",
                     cluster.scheduler_address, "--quiet"]) == 0
    planned = {p.cell_id: p for p in matrix_spec.load_file(str(config)).cells}
    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert set(records) == set(planned)
    manifest = json.loads((out / "manifest.json").read_text())
    for cell_id, rec in records.items():
        assert rec["status"] == "ok", rec.get("error")
        assert rec["params"] == json.loads(json.dumps(planned[cell_id].cell.to_dict()))
        assert rec["matrix"]["host"] == rec["meta"]["platform"]["hostname"]
        assert rec["matrix"]["worker"].startswith("tcp://127.0.0.1:")
        assert manifest["hosts"][cell_id] == rec["matrix"]["host"]
    assert manifest["complete"] and manifest["sessions"][-1]["dask"]


@pytest.mark.e2e
def test_a_dask_worker_killed_mid_cell_costs_only_that_cell(tmp_path: Path) -> None:
    cell_command = "-m wsblock.engine.cell_main"
    config = tmp_path / "m.toml"
    config.write_text(ONE_CORE.format(duration=4))
    out = tmp_path / "d"
    with _local_cluster(n_workers=2, resources={"cells": 1}) as cluster:
        proc = subprocess.Popen([sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out",
                                 str(out), "--dask", cluster.scheduler_address, "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            for pid in alive(descendants(os.getpid())):
                parent = psutil_parent(pid)
                # The cell's process (the first of its processes that carry
                # that command line: its guardian and worker follow).
                if cell_command in cmdline(pid) and parent and cell_command not in cmdline(parent):
                    victim = parent  # the worker process running that cell
                    break
            time.sleep(0.2)
        assert victim is not None, "no cell started on a worker"
        time.sleep(2.0)  # the cell is in its window
        cell_pids = descendants(victim)
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    # The killed worker's cell (its process, server and load) died with it.
    assert cell_pids and not alive(cell_pids)


def psutil_parent(pid: int) -> int | None:
    import psutil

    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return None
