"""A live server refuses bad input without crashing, keeps serving, and counts it all.

The module's server runs once per kind of server (asyncio, threaded); every
test talks to it, and its stats file, read when it stops, must count what
the tests sent.
"""

from __future__ import annotations

import json
import socket
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
from wsblock.engine.reports import ServerReport

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["asyncio", "threaded"])
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    cell = CellConfig("blocking_io", 1.0, "thread", ping_interval=20.0, ping_timeout=20.0, close_timeout=2.0,
                      workers=1, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0,
                      server=request.param)
    config = ServerConfig(
        cell=cell, data_dir=str(paths.data_dir()),
        warm_job=JobConfig("blocking_io", 1, 1, {}),
        stats_path=str(tmp / "stats.json"), deadline=time.time() + 120, token=TOKEN,
        load_job=JobConfig("blocking_io", LOAD_UNITS, LOAD_UNITS, {}),
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
        while HELD:
            HELD.pop().close()
    stats = json.loads((tmp / "stats.json").read_text())
    # Both servers write the report the runner reads back (checked by type).
    ServerReport.from_dict(stats, source="the server")
    assert stats["protocol_closes"] >= 4 and stats["request_errors"] >= 3
    bad = stats["bad_input"]["by_kind"]
    for kind in ("binary", "not_json", "too_deep", "not_object", "too_big", "invalid_request"):
        assert bad.get(kind, 0) >= 1, bad
    assert stats["handler_errors"]["total"] == 0, stats["handler_errors"]
    # Every test client but one is foreign: no token. Their jobs are refused
    # and counted; the one client with the token is the load's.
    foreign = stats["foreign"]
    assert foreign["connections"] >= 8 + NO_HANDSHAKE and foreign["jobs"] == 3, foreign
    assert foreign["no_handshake"] == NO_HANDSHAKE, foreign
    assert stats["connections_opened"] == 1
    assert stats["job_ms"]["completed"] == 1 and stats["echoes"] == 1
    assert stats["io_lag_ms"]["samples"] == 1


TOKEN = "t0ken"
LOAD_UNITS = 20
"""Units of the load's job: the most a job of this server may ask."""

NO_HANDSHAKE = 6
"""Connections of test_connections_that_never_open_are_counted that must count as foreign."""

HELD: list[socket.socket] = []
"""Connections held open until the module's server has written its stats."""


def test_a_client_without_the_token_gets_echoes_but_no_job(server_url: str) -> None:
    with connect(server_url) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 3}))
        assert json.loads(ws.recv(5)) == {"op": "echo", "seq": 3}
        # A job that would hold the GIL for minutes, and one the load itself
        # would send: neither runs for a client without the token.
        for job_id, job in enumerate([{"workload": "c_holds_gil", "units": 4_000_000_000},
                                      {"workload": "blocking_io", "units": LOAD_UNITS}]):
            started = time.monotonic()
            ws.send(json.dumps({"op": "job", "id": job_id, **job}))
            reply = json.loads(ws.recv(5))
            assert reply == {"op": "error", "id": job_id, "error": "jobs are run only for the cell's load"}
            assert time.monotonic() - started < 5.0
    with connect(server_url, additional_headers={TOKEN_HEADER: "not" + TOKEN}) as ws:
        ws.send(json.dumps({"op": "job", "id": 7, "workload": "blocking_io", "units": 1}))
        assert json.loads(ws.recv(5))["op"] == "error"  # a wrong token is no token


def test_connections_that_never_open_are_counted(server_url: str) -> None:
    host, port = server_url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
    address = (host, int(port))
    for _ in range(3):  # raw TCP: connect, send nothing, close
        socket.create_connection(address, timeout=5).close()
    # Slow: half a request, still waiting when the server reports.
    HELD.append(socket.create_connection(address, timeout=5))
    HELD[-1].sendall(b"GET / HTTP/1.1\r\n")
    for request in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP, not an upgrade
                    b"hello\r\n\r\n"):  # not HTTP at all
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(request)
            answer = sock.recv(100)  # waits for the server's verdict: a 4xx, or a close
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    # The load's token in a failed handshake: the load counts its own failed
    # connects; the server does not call it foreign.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 4")


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


def test_the_loads_connection_is_measured_and_gets_the_cells_job_only(server_url: str) -> None:
    with connect(server_url, additional_headers={TOKEN_HEADER: TOKEN}) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 1, "sent": time.time()}))
        assert json.loads(ws.recv(5))["seq"] == 1
        for job in ({"units": LOAD_UNITS + 1},  # more than the cell asked
                    {"units": 2, "chunk_units": LOAD_UNITS + 1},
                    {"workload": "pure_python", "units": 1}):  # not the cell's workload
            ws.send(json.dumps({"op": "job", "id": 2, "workload": "blocking_io", **job}))
            reply = json.loads(ws.recv(5))
            assert reply["op"] == "error" and reply["id"] == 2, reply
        ws.send(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": LOAD_UNITS}))
        reply = json.loads(ws.recv(5))
        assert reply["op"] == "done" and reply["id"] == 1 and reply["wall_ms"] >= LOAD_UNITS - 1


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
    # The server still serves; and by the time it answers a new connection,
    # the closed one has been handled (the module's check counts it).
    with connect(server_url) as ws:
        ws.send(json.dumps({"op": "echo", "seq": 4}))
        assert json.loads(ws.recv(5))["seq"] == 4


def test_a_handler_exception_is_counted_and_closes_with_1011(tmp_path: Path) -> None:
    import asyncio

    from websockets.asyncio.client import connect as aconnect
    from websockets.asyncio.server import serve

    from wsblock.engine.asyncio_server import AsyncioServer

    cell = CellConfig("blocking_io", 1.0, "inline", ping_interval=None, ping_timeout=None, close_timeout=1.0,
                      workers=1, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0)
    config = ServerConfig(
        cell=cell, data_dir=str(tmp_path), warm_job=JobConfig("blocking_io", 1, 1, {}),
        stats_path=str(tmp_path / "s.json"), deadline=time.time() + 60,
    )
    server = AsyncioServer(config)

    async def broken(job):  # a strategy fault the handler did not expect
        raise ZeroDivisionError("boom")

    server.core.strategy.run = broken  # type: ignore[method-assign]

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
    assert dict(server.core.stats.handler_errors) == {"ZeroDivisionError": 1}
