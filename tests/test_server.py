"""A live server refuses bad input without crashing, keeps serving, and counts it all."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from wsblock import paths
from wsblock.engine.config import CellConfig
from wsblock.engine.proc import Child
from wsblock.engine.process_config import TOKEN_HEADER, JobConfig, ServerConfig


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    cell = CellConfig("blocking_io", 1.0, "thread", ping_interval=20.0, ping_timeout=20.0, close_timeout=2.0,
                      workers=1, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0)
    config = ServerConfig(
        cell=cell, data_dir=str(paths.data_dir()),
        warm_job=JobConfig("blocking_io", 1, 1, {}),
        stats_path=str(tmp / "stats.json"), deadline=time.time() + 120, token=TOKEN,
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
    assert stats["protocol_closes"] >= 4 and stats["request_errors"] >= 3
    bad = stats["bad_input"]["by_kind"]
    for kind in ("binary", "not_json", "too_deep", "not_object", "too_big", "invalid_request"):
        assert bad.get(kind, 0) >= 1, bad
    assert stats["handler_errors"]["total"] == 0, stats["handler_errors"]
    # Every test client but one is foreign: no token. Their jobs are served
    # but never measured; the one client with the token is the load's.
    assert stats["foreign"]["connections"] >= 8 and stats["foreign"]["jobs"] >= 1, stats["foreign"]
    assert stats["connections_opened"] == 1
    assert stats["job_ms"]["completed"] == 1 and stats["echoes"] == 1
    assert stats["io_lag_ms"]["samples"] == 1


TOKEN = "t0ken"


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


def test_the_loads_connection_is_measured(server_url: str) -> None:
    with connect(server_url, additional_headers={TOKEN_HEADER: TOKEN}) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 1, "sent": time.time()}))
        assert json.loads(ws.recv(5))["seq"] == 1
        ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 5}))
        assert json.loads(ws.recv(5))["op"] == "done"


@pytest.mark.parametrize(
    "frame,code",
    [
        (b"\x00binary", 1003),
        ("{{ not json", 1007),
        ("[" * 15000, 1007),  # deep enough to exhaust the JSON decoder's recursion
        ("[1, 2]", 1007),
    ],
)
def test_malformed_frames_close_with_a_bad_data_code(server_url: str, frame, code: int) -> None:
    with connect(server_url) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
    assert info.value.rcvd is not None and info.value.rcvd.code == code
    with connect(server_url) as ws:  # and the server still serves
        ws.send(json.dumps({"op": "echo", "seq": 2}))
        assert json.loads(ws.recv(5))["seq"] == 2


def test_wrong_types_get_an_error_reply(server_url: str) -> None:
    with connect(server_url) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 1, "sent": "yesterday"}))
        assert json.loads(ws.recv(5))["op"] == "error"


def test_oversize_frames_are_refused(server_url: str) -> None:
    with connect(server_url, max_size=None) as ws:
        ws.send("x" * (1 << 20))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_a_handler_exception_is_counted_and_closes_with_1011(tmp_path: Path) -> None:
    import asyncio

    from websockets.asyncio.client import connect as aconnect
    from websockets.asyncio.server import serve

    from wsblock.engine.server import CellServer

    cell = CellConfig("blocking_io", 1.0, "inline", ping_interval=None, ping_timeout=None, close_timeout=1.0,
                      workers=1, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0)
    config = ServerConfig(
        cell=cell, data_dir=str(tmp_path), warm_job=JobConfig("blocking_io", 1, 1, {}),
        stats_path=str(tmp_path / "s.json"), deadline=time.time() + 60,
    )
    server = CellServer(config)

    async def broken(job):  # a strategy fault the handler did not expect
        raise ZeroDivisionError("boom")

    server.strategy.run = broken  # type: ignore[method-assign]

    async def main() -> int | None:
        async with serve(server.handler, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with aconnect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 1}))
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None
        return None

    assert asyncio.run(main()) == 1011
    assert dict(server.stats.handler_errors) == {"ZeroDivisionError": 1}
