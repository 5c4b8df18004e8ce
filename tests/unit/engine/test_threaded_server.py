"""The server as an axis: the asyncio websockets server or the threaded one."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import record
from wsblock.schema.axes import cell_id, normal
from tests.helpers import alive, descendants, run_cell, run_cli


def test_the_default_server_leaves_ids_and_old_records_as_they_were() -> None:
    cell = CellConfig("pure_python", 200, "inline", ping_interval=0.5, ping_timeout=0.5).validate()
    assert cell.server == "asyncio"
    assert cell_id(cell.to_dict(), repeat=0, settings=False) == "pure_python-200ms-inline-pi0.5-pt0.5-r0"
    threaded = CellConfig("pure_python", 200, "inline", ping_interval=0.5, ping_timeout=0.5, server="threaded")
    assert cell_id(threaded.validate().to_dict(), repeat=0, settings=False) == \
        "pure_python-200ms-inline-pi0.5-pt0.5-threaded-r0"
    # A record written before the axis existed ran the asyncio server.
    assert normal({"workload": "pure_python", "work_ms": 200, "strategy": "inline"})["server"] == "asyncio"


def test_pairs_without_meaning_on_the_threaded_server_are_refused() -> None:
    with pytest.raises(UsageError, match="chunked x server threaded is not supported: .*no event loop"):
        CellConfig("pure_python", 200, "chunked", server="threaded").validate()
    with pytest.raises(UsageError, match="loop uvloop x server threaded is not supported"):
        CellConfig("pure_python", 200, "thread", server="threaded", loop="uvloop").validate()
    with pytest.raises(UsageError, match="unknown server 'tornado'"):
        CellConfig("pure_python", 200, "inline", server="tornado").validate()
    # A matrix lists them as skipped, with the reason, and runs the rest.
    matrix = matrix_spec.expand({"workloads": ["pure_python"], "work_ms": 1, "strategies": ["inline", "chunked"],
                                 "server": ["asyncio", "threaded"]}, source="t")
    assert sorted(p.cell_id for p in matrix.cells) == ["pure_python-1ms-chunked-pi20-pt20-r0",
                                                      "pure_python-1ms-inline-pi20-pt20-r0",
                                                      "pure_python-1ms-inline-pi20-pt20-threaded-r0"]
    assert [reason.split(":")[0] for _, reason in matrix.skipped] == ["chunked x server threaded is not supported"]


def test_a_websockets_without_threaded_keepalive_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import websockets.sync.server

    def serve(handler, host=None, port=None, *, close_timeout=10, **kwargs):  # type: ignore[no-untyped-def]
        """The threaded server of websockets before 15.0: no ping_interval, no ping_timeout."""

    monkeypatch.setattr(websockets.sync.server, "serve", serve)
    with pytest.raises(UsageError, match=r"server threaded is not supported: the threaded server of "
                                         r"websockets \S+ has no keepalive pings \(added in websockets 15\.0\)"):
        CellConfig("pure_python", 200, "thread", server="threaded").validate()
    matrix = matrix_spec.expand({"workloads": ["pure_python"], "work_ms": 1, "strategies": ["thread"],
                                 "server": ["asyncio", "threaded"]}, source="t")
    assert [p.cell.server for p in matrix.cells] == ["asyncio"] and len(matrix.skipped) == 1
    # The asv suite shows those cells as skipped rather than failing.
    from benchmarks import common

    grid = common.build_grid("t", matrix)
    assert grid.param_names[-1] == "server"
    with pytest.raises(NotImplementedError, match="has no keepalive pings"):
        grid.planned(grid.key(["pure_python", 1, "thread", 20, 20, "threaded"]))


@pytest.mark.e2e
def test_refused_pairs_exit_2_before_anything_runs() -> None:
    proc = run_cli("run", "--workload", "pure_python", "--work-ms", "100", "--strategy", "chunked",
                   "--server", "threaded", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: chunked x server threaded is not supported")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_an_inline_job_in_a_handler_thread_shows_in_the_probe_thread(tmp_path: Path) -> None:
    # A C call that holds the GIL for 300 ms: every thread of the server,
    # the probe thread included, waits for it.
    blocked = run_cell(tmp_path, "--workload", "c_holds_gil", "--work-ms", "300", "--strategy", "inline",
                       "--server", "threaded", "--ping-interval", "none", "--duration", "2", "--warmup", "0.5",
                       name="inline.json")
    record.validate(blocked)
    assert blocked["status"] == "ok"
    assert blocked["params"]["server"] == "threaded"
    assert blocked["meta"]["probe"]["kind"] == "thread" and blocked["meta"]["event_loop"] is None
    assert blocked["job_ms"]["completed"] > 0 and blocked["echo_latency_ms"]["answered"] > 0
    assert blocked["stalls"]["count"] >= 1 and blocked["stalls"]["max_ms"] >= 150
    # The same job in a process pool leaves the server's threads free.
    free = run_cell(tmp_path, "--workload", "c_holds_gil", "--work-ms", "300", "--strategy", "process",
                    "--server", "threaded", "--ping-interval", "none", "--duration", "2", "--warmup", "0.5",
                    name="process.json")
    assert free["params"]["server"] == "threaded" and free["job_ms"]["completed"] > 0
    assert free["loop_lag_ms"]["samples"] > 10 * max(1, blocked["loop_lag_ms"]["samples"]) or \
        free["stalls"]["max_ms"] < blocked["stalls"]["max_ms"] / 3


@pytest.mark.e2e
def test_an_interrupted_threaded_cell_leaves_nothing_running() -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "wsblock", "run", "--workload", "c_holds_gil", "--work-ms",
                             "2000", "--strategy", "inline", "--server", "threaded", "--duration", "30",
                             "--warmup", "1", "--close-timeout", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    while time.monotonic() < deadline and len(pids) < 2:
        pids = descendants(proc.pid)
        time.sleep(0.2)
    time.sleep(2)  # connected, an inline job in a handler thread
    pids |= descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not alive(pids)
