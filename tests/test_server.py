"""A live server refuses bad input without crashing and keeps serving."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from wsblock import paths
from wsblock.engine.proc import Child
from wsblock.engine.process_config import JobConfig, ServerConfig


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    config = ServerConfig(
        host="127.0.0.1", port=0, ping_interval=20, ping_timeout=20,
        close_timeout=2, strategy="thread", workers=1, start_method="spawn",
        probe_interval_ms=1, stall_ms=50, data_dir=str(paths.data_dir()),
        warm_job=JobConfig("blocking_io", 1, 1, {}),
        stats_path=str(tmp / "stats.json"), deadline=time.time() + 120,
    )
    path = Path(tmp / "config.json")
    config.write(path)
    child = Child("server", ["-m", "wsblock.engine.server", str(path)])
    try:
        event = child.next_event(60)
        assert event and event["event"] == "ready", child.stderr_tail()
        now = time.time()
        child.send({"window_start": now, "window_end": now + 60, "deadline": now + 90})
        yield f"ws://127.0.0.1:{event['port']}/"
    finally:
        child.stop(5)
    stats = json.loads((tmp / "stats.json").read_text())
    assert stats["protocol_closes"] >= 2 and stats["request_errors"] >= 2


def test_echo_and_job(server_url: str) -> None:
    with connect(server_url) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 3}))
        assert json.loads(ws.recv(5)) == {"op": "echo", "seq": 3}
        ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 20}))
        reply = json.loads(ws.recv(5))
        assert reply["op"] == "done" and reply["id"] == 1 and reply["wall_ms"] >= 19


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "job", "id": 1, "workload": "__import__('os')", "units": 1},
        {"op": "job", "id": 2, "workload": "blocking_io", "units": 10**12},
        {"op": "nope"},
    ],
)
def test_invalid_requests_get_an_error_reply(server_url: str, request_: dict) -> None:
    with connect(server_url) as ws:
        ws.send(json.dumps(request_))
        assert json.loads(ws.recv(5))["op"] == "error"
        ws.send(json.dumps({"op": "echo", "seq": 1}))
        assert json.loads(ws.recv(5))["seq"] == 1  # the connection still works


@pytest.mark.parametrize("frame", [b"\x00binary", "{{ not json"])
def test_garbage_closes_with_policy_violation(server_url: str, frame) -> None:
    with connect(server_url) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_oversize_frames_are_refused(server_url: str) -> None:
    with connect(server_url, max_size=None) as ws:
        ws.send("x" * (1 << 20))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
