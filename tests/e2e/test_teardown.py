"""After the window: nothing that cannot be recorded is run or waited for."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from websockets.sync.client import connect

from wsblock import paths
from wsblock.engine.config import CellConfig
from wsblock.engine.proc import Child
from wsblock.engine.process_config import TOKEN_HEADER, JobConfig, ServerConfig
from wsblock.engine.runner import run_cell

TOKEN = "t0ken"


@pytest.mark.e2e
def test_a_load_job_that_would_start_after_the_window_is_not_run(tmp_path: Path) -> None:
    cell = CellConfig("blocking_io", 100.0, "thread", ping_interval=20.0, ping_timeout=20.0, close_timeout=1.0,
                      workers=1, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig("blocking_io", 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token=TOKEN)
    config.write(tmp_path / "config.json")
    server = Child("server", ["-m", "wsblock.engine.server", str(tmp_path / "config.json")])
    try:
        event = server.next_event(60)
        assert event and event["event"] == "ready", server.stderr_tail()
        url = f"ws://127.0.0.1:{event['port']}/"
        with connect(url, additional_headers={TOKEN_HEADER: TOKEN}) as ws:
            now = time.time()
            server.send({"window_start": now, "window_end": now + 1.0, "deadline": now + 30})
            ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 5}))
            assert json.loads(ws.recv(5))["op"] == "done"  # inside the window: run
            time.sleep(max(0.0, now + 1.2 - time.time()))
            ws.send(json.dumps({"op": "job", "id": 2, "workload": "blocking_io", "units": 5}))
            ws.send(json.dumps({"op": "echo", "seq": 7}))
            # The echo is answered; the job after the window never is.
            assert json.loads(ws.recv(5)) == {"op": "echo", "seq": 7}
            with pytest.raises(TimeoutError):
                ws.recv(0.5)
    finally:
        server.stop(5)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["job_ms"]["completed"] == 1 and stats["job_ms"]["in_flight_at_stop"] == 0


@pytest.mark.e2e
def test_a_job_running_after_the_window_is_not_waited_for() -> None:
    # A 5 s job in a thread is in flight when the 1 s window ends; the loop
    # is free, so the server writes its measurements at once. The thread
    # cannot be interrupted: once the measurements are in, the server's
    # whole process group is ended rather than waited for.
    cell = CellConfig("blocking_io", 5000.0, "thread", duration=1.0, warmup=0.5, job_connections=1, observers=1,
                      ping_interval=1.0, ping_timeout=1.0, close_timeout=1.0)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    rec = run_cell(cell)
    assert rec["status"] == "ok", rec.get("error")
    timing = rec["timing"]
    assert timing["server_end_s"] < 3.0, timing  # the job had more than 3.5 s left
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def _server(tmp_path: Path, strategy: str, workload: str, workers: int = 1,
            kind: str = "asyncio") -> tuple[Child, str]:
    cell = CellConfig(workload, 100.0, strategy, ping_interval=20.0, ping_timeout=20.0, close_timeout=1.0,
                      workers=workers, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0, server=kind)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig(workload, 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token=TOKEN)
    config.write(tmp_path / "config.json")
    server = Child("server", ["-m", "wsblock.engine.server", str(tmp_path / "config.json")])
    event = server.next_event(60)
    assert event and event["event"] == "ready", server.stderr_tail()
    return server, f"ws://127.0.0.1:{event['port']}/"


@pytest.mark.e2e
def test_an_inline_job_running_at_the_window_end_is_interrupted_there(tmp_path: Path) -> None:
    # A pure-Python job of minutes holds the loop before the window is even
    # set (so only the server's lifeline thread can set the alarm) and when
    # the 1 s window ends: it is interrupted at the end, the loop answers
    # again, and the job is censored at the window's end.
    server, url = _server(tmp_path, "inline", "pure_python")
    try:
        with connect(url, additional_headers={TOKEN_HEADER: TOKEN}) as ws:
            began = time.time()
            ws.send(json.dumps({"op": "job", "id": 1, "workload": "pure_python", "units": 4_000_000_000}))
            ws.send(json.dumps({"op": "echo", "seq": 7}))
            time.sleep(0.3)
            now = time.time()
            server.send({"window_start": now, "window_end": now + 1.0, "deadline": now + 60})
            # The echo waits behind the job until the window's end, not for minutes.
            assert json.loads(ws.recv(30)) == {"op": "echo", "seq": 7}
            answered = time.time() - now
        server.request_stop()
        server.proc.wait(20)
    finally:
        server.stop(5)
    assert 0.9 < answered < 10.0
    job_ms = json.loads((tmp_path / "stats.json").read_text())["job_ms"]
    assert job_ms["completed"] == 0 and job_ms["n_censored"] == 1 and job_ms["ended_after_window"] == 1
    # Censored at the window's end: about 1.3 s after it started, not minutes.
    assert job_ms["max"] < (now + 1.0 - began) * 1000.0 + 100.0


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["asyncio", "threaded"])
def test_a_pool_job_not_begun_by_the_window_end_is_not_begun(tmp_path: Path, kind: str) -> None:
    # One worker: the second job waits for the first (2 s of sleep), which
    # ends after the 1 s window. The second is then not begun, on either
    # server (the threaded one's handler thread waits for the pool as the
    # asyncio one's loop does).
    server, url = _server(tmp_path, "thread", "blocking_io", kind=kind)
    try:
        with connect(url, additional_headers={TOKEN_HEADER: TOKEN}) as ws, \
                connect(url, additional_headers={TOKEN_HEADER: TOKEN}) as ws2:
            now = time.time()
            server.send({"window_start": now, "window_end": now + 1.0, "deadline": now + 60})
            ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 2000}))
            time.sleep(0.2)
            ws2.send(json.dumps({"op": "job", "id": 2, "workload": "blocking_io", "units": 2000}))
            assert json.loads(ws.recv(10))["op"] == "done"  # begun inside the window: runs to its end
            with pytest.raises(TimeoutError):
                ws2.recv(3.0)  # never begun, never answered
        server.request_stop()
        server.proc.wait(20)
    finally:
        server.stop(5)
    job_ms = json.loads((tmp_path / "stats.json").read_text())["job_ms"]
    assert job_ms["completed"] == 0 and job_ms["n_censored"] == 2 and job_ms["ended_after_window"] == 2
    assert job_ms["max"] < 1100.0
