"""A real cell with a hostile client beside its load: counted, warned about, and its job never run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

HOSTILE_JOB = {"op": "job", "id": 1, "workload": "c_holds_gil", "units": 4_000_000_000}
"""About two minutes of a C call holding the GIL, were it run."""

RAW_CONNECTS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _attack(port: int, *, within_s: float) -> dict[str, Any]:
    """Raw TCP connects, a bad handshake and a job frame without the token, as soon as the port opens.

    Bounded: at most ``within_s`` seconds of waiting for the port, a fixed
    number of connections, a 5 s timeout on every read.
    """
    address = ("127.0.0.1", port)
    deadline = time.monotonic() + within_s
    while True:  # the first connect that succeeds is one raw TCP connection
        try:
            socket.create_connection(address, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("the server never listened") from None
            time.sleep(0.05)
    for _ in range(RAW_CONNECTS - 1):
        socket.create_connection(address, timeout=5).close()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not an upgrade
        bad_handshake = sock.recv(100)
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws:
        started = time.monotonic()
        ws.send(json.dumps(HOSTILE_JOB))
        reply = json.loads(ws.recv(10))
        answered_s = time.monotonic() - started
    return {"bad_handshake": bad_handshake, "reply": reply, "answered_s": answered_s}


@pytest.mark.e2e
def test_a_hostile_client_is_counted_and_warned_about_and_its_job_does_not_run(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "cell.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsblock", "run", "--quiet", "--out", str(out), "--workload", "blocking_io",
         "--work-ms", "20", "--strategy", "thread", "--duration", "2", "--warmup", "0.5", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = _attack(port, within_s=60.0)
    finally:
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    # The job frame of a client without the cell's token is refused at once.
    assert seen["reply"] == {"op": "error", "id": 1, "error": "jobs are run only for the cell's load"}
    assert seen["answered_s"] < 5.0
    assert seen["bad_handshake"].startswith(b"HTTP/1.1 4")
    rec = json.loads(out.read_text())
    assert rec["status"] == "ok"
    foreign = rec["server"]["foreign"]
    # Raw connects and the bad handshake never opened; the token-less
    # WebSocket did, and sent one job and no other message.
    assert foreign["no_handshake"] == RAW_CONNECTS + 1, foreign
    assert foreign["connections"] == RAW_CONNECTS + 2, foreign
    assert foreign["jobs"] == 1 and foreign["messages"] == 1, foreign
    warning = [w for w in rec["warnings"] if w["code"] == "foreign_connections"]
    assert warning and f"{RAW_CONNECTS + 2} connections were not the load's" in warning[0]["message"]
    # The load's own jobs ran, none of them longer than the cell's work allows.
    assert rec["job_ms"]["completed"] > 0 and rec["job_ms"]["max"] < 5_000


@pytest.mark.e2e
def test_a_cell_without_foreign_clients_counts_none(tmp_path: Path) -> None:
    from tests.helpers import run_cell

    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "20", "--strategy", "thread",
                   "--duration", "2", "--warmup", "0.5")
    assert rec["server"]["foreign"] == {"connections": 0, "no_handshake": 0, "jobs": 0, "messages": 0}
    assert "foreign_connections" not in {w["code"] for w in rec["warnings"]}


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_the_gate_knows_the_load_by_its_token_only() -> None:
    from wsblock.engine.gate import Gate
    from wsblock.engine.process_config import TOKEN_HEADER

    gate = Gate("s3cret", None)
    assert gate.is_load(_Request({TOKEN_HEADER: "s3cret"}))
    for request in (None, _Request({}), _Request({TOKEN_HEADER: "s3cre"}), _Request({TOKEN_HEADER: "s3cret "}),
                    _Request({TOKEN_HEADER: "s3crét"})):
        assert not gate.is_load(request)
    assert Gate("", None).is_load(None)  # no token: every connection is the load's


def test_the_gate_runs_the_cells_job_and_nothing_larger() -> None:
    from workloads import Job
    from wsblock.engine.gate import Gate
    from wsblock.engine.process_config import JobConfig

    gate = Gate("t", JobConfig("pure_python", 1000, 100, {}))
    assert gate.refusal(Job("pure_python", 1000, chunk_units=100), ours=True) is None
    assert gate.refusal(Job("pure_python", 10, chunk_units=10), ours=True) is None
    assert gate.refusal(Job("pure_python", 1000, chunk_units=100), ours=False) == (
        "jobs are run only for the cell's load")
    for job in (Job("pure_python", 1001, chunk_units=100), Job("pure_python", 1000, chunk_units=101),
                Job("c_holds_gil", 10, chunk_units=10)):
        assert gate.refusal(job, ours=True), job
    unbounded = Gate("t", None)
    assert unbounded.refusal(Job("c_holds_gil", 10**9, chunk_units=10**9), ours=True) is None
    assert unbounded.refusal(Job("c_holds_gil", 1, chunk_units=1), ours=False)


def test_the_handshake_watch_counts_what_never_opened_before_the_end() -> None:
    from wsblock.engine.gate import Gate, HandshakeWatch
    from wsblock.engine.process_config import TOKEN_HEADER

    watch = HandshakeWatch(Gate("t", None).is_load)

    class Conn:
        def __init__(self, request: Any = None) -> None:
            self.request = request

    opened, raw, bad, loads, late, slow = Conn(), Conn(), Conn(_Request({})), Conn(_Request({TOKEN_HEADER: "t"})), \
        Conn(), Conn()
    for at, conn in enumerate((opened, raw, bad, loads, late, slow)):
        watch.opened(conn, float(at))
    watch.ended(opened, opened=True)  # a WebSocket: its handler counts it
    watch.ended(raw, opened=False)
    watch.ended(bad, opened=False)
    watch.ended(loads, opened=False)  # the load's own failed handshake
    watch.ended(late, opened=False)
    # raw (1) and bad (2) before 4.0; late (4) and slow (5, still pending) after
    assert watch.count(before=4.0) == 2
    assert watch.count(before=10.0) == 4
