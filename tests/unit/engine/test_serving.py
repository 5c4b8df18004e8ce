"""The serving core: messages and jobs without I/O, and its set-up applied once by either server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from wsblock import paths
from wsblock.engine import cutoff, serving
from wsblock.engine.config import CellConfig
from wsblock.engine.proc import Child
from wsblock.engine.process_config import JobConfig, ServerConfig

COUNTED = """\
import sys

real = sys.setswitchinterval


def counted(value):
    # Each call the server makes, as one line on stderr.
    sys.stderr.write(f"setswitchinterval {value!r}\\n")
    sys.stderr.flush()
    real(value)


sys.setswitchinterval = counted
from wsblock.engine import server

raise SystemExit(server.main())
"""
"""The server's entry point, with ``sys.setswitchinterval`` counting its calls."""


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["asyncio", "threaded"])
def test_the_switch_interval_is_applied_once_and_reported(tmp_path: Path, kind: str) -> None:
    # 2 ms, not the interpreter's 5 ms: the stats file shows it was applied,
    # and the counted calls that it was applied once.
    cell = CellConfig("blocking_io", 1.0, "inline", ping_interval=20.0, ping_timeout=20.0, close_timeout=1.0,
                      probe_interval_ms=1.0, stall_ms=50.0, switch_interval_ms=2.0, server=kind)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig("blocking_io", 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token="t0ken")
    config.write(tmp_path / "config.json")
    server = Child("server", ["-c", COUNTED, str(tmp_path / "config.json")])
    try:
        event = server.next_event(60)
        assert event and event["event"] == "ready", server.stderr_tail()
        now = time.time()
        server.send({"window_start": now, "window_end": now + 0.3, "deadline": now + 30})
        server.request_stop()
        assert server.wait(20) == 0, server.stderr_tail()
    finally:
        server.stop(5)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["switch_interval_s"] == pytest.approx(0.002)
    calls = [line for line in server.stderr_tail(1000).splitlines() if line.startswith("setswitchinterval")]
    assert calls == ["setswitchinterval 0.002"]


def _core(tmp_path: Path) -> serving.Serving:
    cell = CellConfig("blocking_io", 1.0, "thread", ping_interval=20.0, ping_timeout=20.0, workers=1)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig("blocking_io", 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token="t0ken",
                          load_job=JobConfig("blocking_io", 5, 5, {}))
    core = serving.Serving(config, stop_requested=threading.Event(), window_set=threading.Event())
    now = time.time()
    core.control({"window_start": now - 1.0, "window_end": now + 60.0, "deadline": now + 90.0})
    assert core.window_set.is_set() and core.strategy.not_after == core.window.end
    return core


def test_the_core_turns_messages_into_steps_and_counts_them(tmp_path: Path) -> None:
    # No socket and no loop: what a message means is the core's alone.
    core = _core(tmp_path)
    step = core.receive(b"\x00binary", ours=True)
    assert step == serving.Close(1003, step.reason) and core.stats.bad_input["binary"] == 1
    echo = core.receive(json.dumps({"op": "echo", "seq": 3, "sent": time.time()}), ours=True)
    assert isinstance(echo, serving.Reply) and json.loads(echo.text) == {"op": "echo", "seq": 3}
    assert core.stats.echoes == 0  # counted once sent
    core.replied(echo, ours=True)
    assert core.stats.echoes == 1 and core.stats.io_lag.count == 1
    foreign = core.receive(json.dumps({"op": "job", "id": 1, "workload": "blocking_io", "units": 5}), ours=False)
    assert isinstance(foreign, serving.Reply) and json.loads(foreign.text)["op"] == "error"
    assert core.stats.foreign_jobs == 1 and core.stats.foreign_messages == 1
    run = core.receive(json.dumps({"op": "job", "id": 2, "workload": "blocking_io", "units": 5}), ours=True)
    assert isinstance(run, serving.Run) and run.job_id == 2 and core.stats.jobs.in_flight == 1


def test_the_core_records_what_became_of_a_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    core = _core(tmp_path)

    def load_job(job_id: int) -> serving.Run:
        step = core.receive(json.dumps({"op": "job", "id": job_id, "workload": "blocking_io", "units": 5}),
                            ours=True)
        assert isinstance(step, serving.Run)
        return step

    # Cut at the window's end: censored there, nothing sent.
    assert core.failed(load_job(1), cutoff.Cut(time.monotonic(), worked=False), (Exception,)) is None
    # A fault of the handler's own: forgotten, and raised for the handler to count.
    with pytest.raises(ZeroDivisionError):
        core.failed(load_job(2), ZeroDivisionError("boom"), (Exception,))
    # What no job may raise: the cell fails, with the cause, and the server stops.
    assert core.failed(load_job(3), SystemExit(3), (Exception,)) == serving.Close(1011, "job failed")
    assert core.stop_requested.is_set()
    fatal = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fatal["event"] == "fatal" and fatal["kind"] == "work" and "SystemExit" in fatal["message"]
    summary = core.stats.jobs.summary(time.monotonic())
    assert summary["job_ms"]["ended_after_window"] == 1 and core.stats.jobs.in_flight == 0


@pytest.mark.e2e
def test_an_idle_asyncio_server_stops_when_stdin_closes(tmp_path: Path) -> None:
    # Without its probe (the self-test's unprobed server) and without
    # keepalive, nothing wakes the loop but the lifeline: the stop must be
    # handed to the loop thread-safely, or the server sleeps until its deadline.
    cell = CellConfig("blocking_io", 1.0, "inline", ping_interval=None, ping_timeout=None, close_timeout=1.0)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig("blocking_io", 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token="t0ken")
    config.write(tmp_path / "config.json")
    server = Child("server", ["-m", "wsblock.selftest.unprobed_server", str(tmp_path / "config.json")])
    try:
        event = server.next_event(60)
        assert event and event["event"] == "ready", server.stderr_tail()
        now = time.time()
        server.send({"window_start": now, "window_end": now + 0.2, "deadline": now + 60})
        time.sleep(0.5)  # the control is handled; the loop then has nothing to do
        stopped = time.monotonic()
        server.request_stop()
        assert server.wait(15) == 0, server.stderr_tail()
        assert time.monotonic() - stopped < 10.0
    finally:
        server.stop(5)
    assert json.loads((tmp_path / "stats.json").read_text())["echoes"] == 0


@pytest.mark.e2e
def test_the_server_gives_its_blas_pools_the_threads_the_cell_names(tmp_path: Path) -> None:
    # The blas_threads axis acts in the server's set-up; the record's
    # meta.blas is threadpoolctl's view of the pools after it.
    from tests.helpers import run_cell
    from wsblock.schema import axes

    found = {}
    for threads in ("unset", "2"):
        rec = run_cell(tmp_path, "--workload", "numpy", "--work-ms", "50", "--strategy", "thread",
                       "--job-connections", "1", "--observers", "1", "--blas-threads", threads,
                       "--duration", "2", "--warmup", "0.5", "--close-timeout", "2", name=f"blas-{threads}.json")
        pools = rec["meta"]["blas"]
        assert pools, rec["meta"]
        found[threads] = {p["num_threads"] for p in pools}
        assert ("-blas2" in axes.cell_id(rec["params"])) == (threads == "2")
    assert found["unset"] == {1}
    assert found["2"] == {2}


@pytest.mark.e2e
def test_a_job_gap_leaves_time_between_a_connections_jobs(tmp_path: Path) -> None:
    # The job_gap_ms setting acts in the load process: each job connection
    # waits that long after a reply. Measured in the same run: back to back,
    # 100 ms jobs fill the window; with 400 ms gaps about a fifth as many run.
    from tests.helpers import run_cell

    done = {}
    for gap in ("0", "400"):
        rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "100", "--strategy", "inline",
                       "--job-connections", "1", "--observers", "1", "--job-gap-ms", gap,
                       "--duration", "3", "--warmup", "0.5", "--close-timeout", "2", name=f"gap-{gap}.json")
        assert rec["params"]["job_gap_ms"] == float(gap)
        done[gap] = rec["throughput"]["jobs_done"]
    assert done["0"] >= 15, done
    assert done["400"] <= 0.5 * done["0"], done
