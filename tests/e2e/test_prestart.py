"""A serial matrix starts the next cell's processes ahead, idle until its turn, and stops them on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import alive, cmdline, descendants
from wsblock.engine.config import CellConfig
from wsblock.engine.proc import AWAIT_ARG
from wsblock.engine.ahead import LOAD_MODULE, SERVER_MODULE
from wsblock.matrix import spec as matrix_spec
from wsblock.matrix.cellproc import CellProcess
from wsblock.matrix.measure import run_serial

SHORT = """
workloads = ["blocking_io"]
work_ms = [100]
strategies = ["thread"]
ping_interval = [0.5, 1.0]
ping_timeout = [0.5]
duration = {duration}
warmup = 0.5
repeats = 1
job_connections = 1
observers = 2
echo_interval_ms = 20
close_timeout = 1
"""


def _planned(duration: float = 1.0) -> matrix_spec.PlannedCell:
    cell = CellConfig("blocking_io", 100.0, "thread", ping_interval=0.5, ping_timeout=0.5, duration=duration,
                      warmup=0.5, job_connections=1, observers=2, close_timeout=1.0).validate()
    return matrix_spec.PlannedCell(cell=cell, repeat=0)


def _waiting_only(standby: psutil.Process, *, started: bool = True) -> list[psutil.Process]:
    # A standby cell's only processes: its server and load interpreters,
    # started ahead (both, or, while the standby still imports, perhaps not
    # yet) and waiting for their configs, with no socket and no process
    # (pool) of their own.
    # Its guardian and worker processes carry its own command line (see
    # wsblock.engine.reaper): the others are what it started.
    kids = [k for k in standby.children(recursive=True) if k.cmdline() != standby.cmdline()]
    modules = sorted(k.cmdline()[k.cmdline().index("-m") + 1] for k in kids)
    assert modules == sorted([SERVER_MODULE, LOAD_MODULE]) or (not started and len(modules) < 2 and
                                                               set(modules) <= {SERVER_MODULE, LOAD_MODULE}), \
        [k.cmdline() for k in kids]
    for kid in kids:
        command = kid.cmdline()
        assert command[command.index("-m") + 2] == AWAIT_ARG, command
        assert kid.children() == [] and kid.net_connections("inet") == [], kid.cmdline()
    return kids


@pytest.mark.e2e
def test_a_standby_process_starts_nothing_and_leaves_nothing_when_cancelled() -> None:
    process = CellProcess(_planned(), standby=True)
    temp = process.record_path.parent
    try:
        time.sleep(2.0)  # past its imports, waiting for its turn
        assert process.proc.poll() is None
        kids = _waiting_only(psutil.Process(process.proc.pid))
        # Idle: they wait on stdin, using no CPU.
        before = [sum(k.cpu_times()[:2]) for k in kids]
        time.sleep(0.5)
        after = [sum(k.cpu_times()[:2]) for k in kids]
        assert all(b - a < 0.05 for a, b in zip(before, after)), (before, after)
        assert process.record() is None
    finally:
        process.cancel()
    assert process.proc.returncode == 0
    assert not temp.exists()
    assert not alive({k.pid for k in kids})


@pytest.mark.e2e
def test_the_next_cell_waits_idle_until_the_previous_one_has_ended(tmp_path: Path) -> None:
    todo = [_planned(), _planned()]
    seen: list[dict] = []
    me = psutil.Process()

    def finish(planned: matrix_spec.PlannedCell, rec: dict) -> None:
        # The cell's own processes have ended; the next one's exists, started
        # ahead, but has started nothing: no server, no load, no traffic.
        waiting = [p for p in me.children() if "--standby" in " ".join(p.cmdline())]
        seen.append({"status": rec["status"], "prestarted": rec["matrix"]["prestarted"],
                     "waiting": len(waiting),
                     "their_children": sum(len(_waiting_only(p, started=False)) for p in waiting)})

    run_serial(todo, finish)
    assert [s["status"] for s in seen] == ["ok", "ok"], seen
    assert [s["prestarted"] for s in seen] == [False, True]
    assert seen[0]["waiting"] == 1 and seen[0]["their_children"] <= 2
    assert seen[1]["waiting"] == 0  # nothing follows the last cell


@pytest.mark.e2e
def test_ctrl_c_stops_the_running_cell_and_the_one_started_ahead(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(SHORT.format(duration=1))
    cmd = [sys.executable, "-m", "wsblock", "matrix", "--config", str(config), "--out", str(tmp_path / "s"), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 120
    pids: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        pids |= descendants(proc.pid)
        if any("--standby" in cmdline(p) for p in alive(pids)):
            break
        time.sleep(0.02)
    else:
        proc.kill()
        raise AssertionError(f"no cell was started ahead: {proc.communicate()[1]}")
    pids |= descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not alive(pids)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["planned"] == 2
