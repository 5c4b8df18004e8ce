"""Small pieces of the engine: histograms, stalls, close classification, protocol, config."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from wsblock.engine import closes
from wsblock.engine import protocol
from wsblock.schema import record
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.engine.probe import Heartbeat, Stall, summarize_stalls
from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window


def test_histogram_summary_in_ms() -> None:
    h = LatencyHistogram()
    for ms in range(1, 101):
        h.record(ms / 1000.0)
    s = h.summary()
    assert s["samples"] == 100
    assert s["p50"] == pytest.approx(50, rel=0.01)
    assert s["p99"] == pytest.approx(99, rel=0.01)
    assert s["max"] == pytest.approx(100, rel=1e-6)


def test_empty_histogram_has_no_percentiles() -> None:
    s = LatencyHistogram().summary()
    assert s["p50"] is None and s["max"] is None and s["samples"] == 0


@pytest.mark.parametrize("n,shown,withheld", [
    (4, ["p50"], ["p90", "p99", "p999"]),
    (10, ["p50", "p90"], ["p99", "p999"]),
    (99, ["p50", "p90"], ["p99", "p999"]),
    (100, ["p50", "p90", "p99"], ["p999"]),
    (1000, ["p50", "p90", "p99", "p999"], []),
])
def test_a_percentile_needs_the_samples_to_back_it(n, shown, withheld) -> None:
    h = LatencyHistogram()
    for i in range(n):
        h.record((i + 1) / 1000.0)
    s = h.summary()
    assert [k for k in ("p50", "p90", "p99", "p999") if s[k] is not None] == shown
    assert s["withheld"] == withheld
    assert s["max"] == pytest.approx(n) and s["samples"] == n  # "max of n"


def test_heartbeat_records_gaps_longer_than_the_stall_threshold() -> None:
    hb = Heartbeat(stall_s=0.05)
    hb.last = 10.0
    hb.beat(10.01)
    hb.beat(10.5)
    assert list(hb.gaps) == [(10.01, 10.5)]


def test_stall_summary_clips_every_length_to_the_window() -> None:
    window = Window(100.0, 110.0)
    stalls = [Stall(98.0, 101.0), Stall(105.0, 105.5), Stall(111.0, 112.0)]
    s = summarize_stalls(stalls, window, probe_samples=5)
    assert s["count"] == 2
    assert s["max_ms"] == pytest.approx(1000.0)  # the 3 s stall, 1 s of it inside
    assert s["max_whole_ms"] == pytest.approx(3000.0)
    assert s["total_ms"] == pytest.approx(1500.0)
    assert s["stalled_share"] == pytest.approx(0.15)
    assert s["per_s"] == pytest.approx(0.2)
    assert s["primary"] is True  # 5 probe samples: the stalls are the loop measure
    # Plenty of samples, but 15 % of the window stalled: the probe only saw
    # the loop's free time, so the stalls still lead.
    assert summarize_stalls(stalls, window, probe_samples=5000)["primary"] is True
    assert summarize_stalls([Stall(105.0, 105.1)], window, probe_samples=5000)["primary"] is False


def _close(code: int, reason: str = "") -> SimpleNamespace:
    return SimpleNamespace(code=code, reason=reason)


def test_close_initiated_by_this_side() -> None:
    info = closes.classify(None, _close(1011, "keepalive ping timeout"), None, side="client")
    assert (info.initiator, info.code, info.abnormal) == ("client", 1011, True)


def test_close_initiated_by_the_peer() -> None:
    info = closes.classify(_close(1011, "keepalive ping timeout"), _close(1011), True, side="client")
    assert (info.initiator, info.code) == ("server", 1011)


def test_no_close_frame_is_1006() -> None:
    info = closes.classify(None, None, None, side="server")
    assert (info.initiator, info.code, info.abnormal) == ("none", 1006, True)


def test_normal_close_is_not_a_disconnect() -> None:
    assert not closes.classify(_close(1000), _close(1000), True, side="server").abnormal


@pytest.mark.parametrize(
    "message,error",
    [
        (b"\x00\x01", protocol.ProtocolError),
        ("not json", protocol.ProtocolError),
        ("[1, 2]", protocol.ProtocolError),
        (json.dumps({"op": "shell", "cmd": "rm -rf /"}), protocol.RequestError),
        (json.dumps({"op": "job", "id": 1, "workload": "os.system", "units": 1}), protocol.RequestError),
        (json.dumps({"op": "job", "id": 1, "workload": "pure_python", "units": 10**18}), protocol.RequestError),
        (json.dumps({"op": "job", "id": 1, "workload": "pure_python", "units": -1}), protocol.RequestError),
        (json.dumps({"op": "job", "id": 1, "workload": "pandas", "units": 5, "params": {"path": "/etc"}}), protocol.RequestError),
        (json.dumps({"op": "echo", "seq": "x"}), protocol.RequestError),
    ],
)
def test_bad_messages_are_refused(message, error) -> None:
    with pytest.raises(error):
        protocol.parse(message, "/data")


def test_a_valid_job_keeps_the_servers_data_dir() -> None:
    job_id, job = protocol.parse(
        json.dumps({"op": "job", "id": 7, "workload": "pandas", "units": 100, "params": {"chunksize": 500}}),
        "/srv/data",
    )
    assert job_id == 7 and job.data_dir == "/srv/data" and job.params == {"chunksize": 500}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"workload": "nope"}, "unknown workload"),
        ({"strategy": "fork"}, "unknown strategy"),
        ({"work_ms": 0}, "work_ms must be a positive"),
        ({"duration": -1}, "duration must be a positive"),
        ({"ping_timeout": -1}, "ping_timeout must be a positive"),
        ({"strategy": "chunked", "workload": "c_holds_gil"}, "not supported"),
        ({"workload_params": {"chunksize": 1}}, "chunksize"),
        ({"job_connections": 0, "observers": 0}, "at least one"),
        ({"min_cycles": 0}, "min_cycles"),
        ({"min_cycles": True}, "min_cycles"),
    ],
)
def test_config_validation(change, message) -> None:
    base = {"workload": "pandas", "work_ms": 10, "strategy": "inline"}
    with pytest.raises(UsageError, match=message):
        CellConfig(**{**base, **change}).validate()


def test_pool_size_defaults_to_one_worker_per_job_connection() -> None:
    assert CellConfig("numpy", 10, "thread", job_connections=3).pool_size == 3
    assert CellConfig("numpy", 10, "thread", workers=1).pool_size == 1


def test_record_validation_names_the_missing_key() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        record.validate({"schema_version": 99})
    with pytest.raises(ValueError, match="missing key disconnects"):
        record.validate({"schema_version": 1, "params": {}})
    with pytest.raises(ValueError, match="schema_version"):
        record.validate({"schema_version": True})
    # A failed record needs its params and error; each of its kind.
    params = {k: {"workload": "numpy", "strategy": "thread", "client_pings": True}.get(k, 1)
              for k in record.REQUIRED["params"]}
    record.validate({"schema_version": 1, "status": "failed", "error": "x", "params": params})
    with pytest.raises(ValueError, match="params.workload: 1 is not a text"):
        record.validate({"schema_version": 1, "status": "failed", "error": "x", "params": {**params, "workload": 1}})


def _server_config(cell=None, **change):
    from wsblock.engine.config import CellConfig
    from wsblock.engine.process_config import JobConfig, ServerConfig

    cell = cell or CellConfig("numpy", 1.0, "thread", ping_interval=1.0, ping_timeout=None, close_timeout=2.0,
                              workers=2, start_method="spawn", probe_interval_ms=1.0, stall_ms=50.0)
    base = dict(cell=cell, data_dir="/d", warm_job=JobConfig("numpy", 1, 1, {}),
                stats_path="/s.json", deadline=1.0)
    return ServerConfig(**{**base, **change})


def test_process_configs_round_trip_typed(tmp_path) -> None:
    from wsblock.engine.config import CellConfig
    from wsblock.engine.process_config import ServerConfig

    cell = CellConfig("numpy", 1.0, "thread", ping_interval=1.0, ping_timeout=None, handler_ping_timeout="none",
                      workers=2, workload_params={"chunksize": 3})
    config = _server_config(cell, token="abc")
    config.write(tmp_path / "c.json")
    back = ServerConfig.read(tmp_path / "c.json")
    assert back == config
    assert isinstance(back.cell, CellConfig) and back.cell.handler_ping_timeout == "none"
    assert isinstance(back.cell.ping_interval, float) and back.warm_job.job("/x").data_dir == "/x"
    # An int written for a float field comes back as a float, typed.
    data = config.to_dict()
    data["cell"]["work_ms"] = 200
    (tmp_path / "d.json").write_text(json.dumps(data))
    assert ServerConfig.read(tmp_path / "d.json").cell.work_ms == 200.0


@pytest.mark.parametrize(
    "change,message",
    [
        ({"cell": {"workers": "2"}}, "cell.workers: expected an integer"),
        ({"cell": {"workers": True}}, "cell.workers: expected an integer"),
        ({"cell": {"ping_timeout": "soon"}}, "cell.ping_timeout"),
        ({"cell": {"surprise": 1}}, "unknown field cell.surprise"),
        ({"cell": None}, "cell: expected an object"),
        ({"warm_job": {"workload": "numpy", "units": 1.5, "chunk_units": 1}}, "warm_job.units"),
        ({"surprise": 1}, "unknown field surprise"),
    ],
)
def test_process_configs_refuse_mistyped_files(tmp_path, change, message) -> None:
    from wsblock.engine.process_config import ConfigError, ServerConfig

    data = _server_config().to_dict()
    for key, value in change.items():
        if isinstance(value, dict) and key == "cell":
            data[key].update(value)
        else:
            data[key] = value
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        ServerConfig.read(tmp_path / "c.json")


def test_a_failed_connection_still_closing_at_the_window_end_ended_at_its_failure() -> None:
    # Against a blocked server, a connection whose keepalive failed waits up
    # to close_timeout for the closing handshake; if the window ends first it
    # is still "live", but it was lost when it failed, not kept to the end.
    import asyncio
    import time

    from wsblock.engine.config import CellConfig
    from wsblock.engine.load import Load
    from wsblock.engine.process_config import JobConfig, LoadConfig
    from wsblock.engine.reports import LoadReport
    from wsblock.engine.window import Window

    cell = CellConfig("pure_python", 1.0, "inline", ping_interval=0.5, ping_timeout=0.5,
                      job_connections=1, observers=1)
    config = LoadConfig(cell=cell, uri="ws://127.0.0.1:9/", open_timeout=1.0,
                        job=JobConfig("pure_python", 1, 1, {}), results_path="/r.json", deadline=1.0)
    now = time.monotonic()

    async def summarise() -> LoadReport:
        load = Load(config, Window(now - 3.0, now))
        failed, kept = object(), object()
        load._live[failed] = ("job", 0, now - 3.5, None)
        load._live[kept] = ("observer", 0, now - 3.5, None)
        load._failed[failed] = now - 2.0
        return load.results(0.0)

    lifetimes = {row["kind"]: row for row in asyncio.run(summarise()).lifetimes}
    assert lifetimes["job"]["end"] == "disconnect" and lifetimes["job"]["ended_s"] == pytest.approx(1.0)
    assert lifetimes["observer"]["end"] == "window" and lifetimes["observer"]["ended_s"] is None
