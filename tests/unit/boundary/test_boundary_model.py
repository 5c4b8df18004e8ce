"""The keepalive model: its mechanics on synthetic blocks, and on committed records."""

from __future__ import annotations

import json

import pytest

from tests.helpers import FIXTURES, ROOT
from wsblock.boundary import evaluate
from wsblock.boundary import model as bm
from wsblock.report import fig_boundary
from wsblock.schema import record as recmod
from wsblock.schema import rundir
from wsblock.schema.keepalive import Keepalive

REFERENCE = ROOT / "results" / "reference"


def _isolated(length: float, window: float = 20.0) -> bm.Blocks:
    # One block, then the loop is free for the rest of the period.
    return bm.Blocks((length,), (window,), window)


def _keepalive(interval: float, timeout: float, *, client: bool = True) -> Keepalive:
    return Keepalive(interval, timeout, client_pings=client)


@pytest.mark.parametrize("length, expected", [(0.9, 0.0), (1.5, 0.5), (1.8, 0.8), (2.5, 1.0)])
def test_client_loss_of_an_isolated_block_is_its_excess_over_the_timeout_per_interval(length, expected):
    # A ping lands uniformly in the interval before the block's end; it waits
    # for the rest of the block, so the deadly part is the block's first
    # (length - timeout) seconds: P = (length - timeout) / interval, capped at 1.
    p, client, server = bm.loss_probability(_isolated(length), _keepalive(1.0, 1.0), race=0.0, phases=400)
    assert client == pytest.approx(expected, abs=0.02)
    assert server == 0.0
    assert p == pytest.approx(client)


def test_a_timeout_that_would_fire_after_the_window_loses_nothing():
    # Three seconds of block, a 5 s timeout, a 4 s window: no timeout can
    # fire inside the window (the exposure rule of the records).
    blocks = bm.Blocks((3.0,), (0.0,), 4.0)
    assert bm.loss_probability(blocks, _keepalive(1.0, 5.0))[0] == 0.0
    assert bm.loss_probability(bm.Blocks((3.0,), (0.0,), 12.0), _keepalive(1.0, 5.0))[0] == 0.0
    assert bm.loss_probability(bm.Blocks((7.0,), (0.0,), 30.0), _keepalive(1.0, 5.0))[0] == 1.0


def test_server_pings_lose_only_a_race_before_a_back_to_back_block():
    back_to_back = bm.Blocks((0.6, 0.6), (0.0, 0.0), 10.0)
    spaced = bm.Blocks((0.6, 0.6), (0.23, 0.31), 10.0)
    server_only = _keepalive(1.0, 0.5, client=False)
    assert bm.loss_probability(back_to_back, server_only, race=1.0)[2] == 1.0
    assert bm.loss_probability(back_to_back, server_only, race=0.0)[2] == 0.0
    assert 0.0 < bm.loss_probability(back_to_back, server_only, race=0.3)[2] < 1.0
    # With free time after every block, the pong is read before the next one
    # (unless the ping falls due within a few ms of a block's start).
    assert bm.loss_probability(spaced, server_only, race=1.0)[2] < 0.05
    # Blocks no longer than the timeout never lose a server ping.
    assert bm.loss_probability(bm.Blocks((0.4,), (0.0,), 10.0), server_only, race=1.0)[2] == 0.0


def test_keepalive_settings_follow_the_cell():
    k = Keepalive.of({"ping_interval": 1.0, "ping_timeout": 2.0, "client_pings": False,
                         "handler_ping_timeout": 30.0})
    assert (k.ping_interval, k.client_timeout, k.server_timeout) == (1.0, None, 30.0)
    assert not Keepalive.of({"ping_interval": None, "ping_timeout": None}).can_fail
    assert bm.certain_loss_job_s(Keepalive.of({"ping_interval": 1.0, "ping_timeout": 2.0})) == 3.0
    assert bm.first_loss_job_s(k) == 30.0


def test_heartbeat_stalls_keep_count_total_and_longest():
    stalls = bm.heartbeat_stalls({"count": 4, "total_ms": 4000.0, "max_ms": 1600.0})
    assert len(stalls) == 4
    assert sum(stalls) == pytest.approx(4.0)
    assert max(stalls) == pytest.approx(1.6)
    assert bm.heartbeat_stalls({"count": 0, "total_ms": 0.0, "max_ms": 0.0}) == []


def _reference(name: str) -> dict:
    return recmod.load(json.loads((REFERENCE / "default" / "cells" / name).read_text()))


@pytest.mark.parametrize("name, low, high", [
    ("pure_python-1000ms-inline-pi0.5-pt0.5-r0.json", 0.95, 1.0),   # certain: blocks beyond 0.5 + 0.5 s
    ("pure_python-100ms-inline-pi0.5-pt2-r0.json", 0.0, 0.05),      # blocks far below the timeout
    ("c_holds_gil-1000ms-thread-pi0.5-pt0.5-r0.json", 0.95, 1.0),   # a thread does not free the loop
    ("blocking_io-100ms-thread-pi0.5-pt0.5-r0.json", 0.0, 0.05),    # the GIL is released: no blocks
    ("pure_python-1000ms-process-pi0.5-pt0.5-r0.json", 0.0, 0.05),  # the loop stays free
])
def test_predictions_on_reference_records_where_physics_leaves_no_doubt(name, low, high):
    prediction = bm.predict_record(_reference(name), phases=100)
    assert low <= prediction.p <= high
    assert prediction.low <= prediction.p <= prediction.high


def test_model_rows_read_old_and_new_records_and_count_what_they_measured():
    old = evaluate.model_rows(rundir.ok_records(REFERENCE / "keepalive"), phases=50)
    assert len(old) == 4 and all(r.repeats == 3 for r in old)
    assert all(r.connections == 18 for r in old)  # 6 original connections x 3 repeats
    legacy = evaluate.model_rows(rundir.ok_records(FIXTURES / "pandas_chunks"), phases=20)
    assert legacy and all(0.0 <= r.predicted.p <= 1.0 and r.lost <= r.connections for r in legacy)
    new = evaluate.model_rows(rundir.ok_records(FIXTURES / "run_a"), phases=50)
    assert new and all(0.0 <= r.predicted.p <= 1.0 for r in new)
    for row in new:
        assert row.lost <= row.connections
    table = fig_boundary.model_table(old)
    assert table.count("\n| ") == 4  # one line per cell
    assert "of 4 cells" in table


def test_model_figure_is_written(tmp_path):
    rows = evaluate.model_rows(rundir.ok_records(REFERENCE / "keepalive"), phases=20)
    paths = fig_boundary.model_figure(rows, tmp_path)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_asyncio_lets_an_expired_timeout_win_over_a_pong_read_in_the_same_iteration():
    # The model's server channel rests on this: a blocked loop that reads a
    # pong in the same iteration as it fires the expired timeout still times
    # out, because resolving the future only schedules the wake-up and the
    # timeout's cancel lands first. Reading it one iteration earlier wins.
    import asyncio
    import socket
    import threading
    import time

    async def race(block_s: float) -> str:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        pong = loop.create_future()

        def on_read() -> None:
            a.recv(16)
            if not pong.done():
                pong.set_result(None)

        loop.add_reader(a.fileno(), on_read)

        async def wait() -> str:
            try:
                async with asyncio.timeout(0.5):
                    await pong
                return "pong"
            except TimeoutError:
                return "timeout"

        task = loop.create_task(wait())
        await asyncio.sleep(0)  # the waiter is inside its timeout

        def block() -> None:
            # The "pong" arrives early in the block; the loop reads it only after.
            threading.Timer(0.01, b.send, args=(b"x",)).start()
            time.sleep(block_s)

        loop.call_soon(block)
        try:
            return await task
        finally:
            loop.remove_reader(a.fileno())
            a.close()
            b.close()

    assert asyncio.run(race(1.0)) == "timeout"  # read after the deadline, with the timer
    assert asyncio.run(race(0.05)) == "pong"    # read before the deadline (wide margin)
