"""End-to-end cells: the physics of docs/design.md must show up in real runs.

Each test runs a real server and load process. Margins are wide because the
machine is small and shared: the assertions separate regimes (seconds versus
milliseconds), they do not pin numbers.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_cell, run_cli

pytestmark = pytest.mark.e2e

FAST_KEEPALIVE = ["--ping-interval", "1", "--ping-timeout", "1"]
SHORT = ["--duration", "5", "--warmup", "1", "--close-timeout", "2"]


def test_inline_work_longer_than_the_keepalive_budget_ends_in_1011(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "pure_python", "--work-ms", "3000",
                   "--strategy", "inline", *FAST_KEEPALIVE, *SHORT)
    d = rec["disconnects"]
    assert d["total"] >= 1, d
    assert d["by_code"].get("1011", 0) >= 1, d
    assert any(e["reason"] == "keepalive ping timeout" for e in d["events"]), d["events"]
    # The loop was blocked for at least most of a whole job.
    assert rec["stalls"]["max_ms"] > 2000, rec["stalls"]
    # Echoes that died with their connections or waited past the window are
    # counted, and the latency percentiles say they are lower bounds.
    echo = rec["echo_latency_ms"]
    assert echo["lost"] + echo["censored"] + echo["missed"] > 0, echo
    assert echo["lower_bound"] is True
    assert echo["scheduled"] == echo["answered"] + echo["lost"] + echo["censored"] + echo["missed"]
    assert rec["survival"]["verdict"] == "lost"
    # Every disconnect is of an original connection or of a reconnect: the
    # originals lost are at least the disconnects the reconnects cannot
    # account for, even while a failed connection still waits for the
    # blocked server to finish its closing handshake.
    original, reconnects = d["original"], d["reconnects"]
    assert original["lost"] >= min(original["connections"], d["total"] - reconnects["opened"]), d
    ended = [c for c in rec["survival"]["connections"] if c["end"] == "disconnect"]
    assert len(ended) == original["lost"], rec["survival"]["connections"]


def test_thread_keeps_every_connection_through_blocking_io(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "3000",
                   "--strategy", "thread", *FAST_KEEPALIVE, *SHORT)
    assert rec["disconnects"]["total"] == 0, rec["disconnects"]
    assert rec["connections"]["opened_total"] == 6
    assert rec["loop_lag_ms"]["p99"] < 100, rec["loop_lag_ms"]


def test_thread_with_pure_python_survives_but_the_loop_lags_far_beyond_the_switch_interval(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "pure_python", "--work-ms", "3000",
                   "--strategy", "thread", *FAST_KEEPALIVE, *SHORT)
    assert rec["disconnects"]["total"] == 0, rec["disconnects"]
    switch_ms = rec["meta"]["switch_interval_s"] * 1000
    # p90 (10 samples suffice) above the bound implies p99 above it too.
    assert rec["loop_lag_ms"]["p90"] > 4 * switch_ms, rec["loop_lag_ms"]


@pytest.mark.parametrize("workload", ["pure_python", "numpy", "blocking_io", "pandas", "c_holds_gil"])
def test_process_keeps_the_loop_responsive_for_every_workload(tmp_path, workload: str) -> None:
    rec = run_cell(tmp_path, "--workload", workload, "--work-ms", "500", "--strategy", "process",
                   "--job-connections", "1", *FAST_KEEPALIVE, "--duration", "4", "--warmup", "1",
                   "--close-timeout", "2")
    assert rec["disconnects"]["total"] == 0, rec["disconnects"]
    # An inline job would hold the loop for ~500 ms; a process keeps it near 1 ms.
    assert rec["loop_lag_ms"]["p99"] < 100, rec["loop_lag_ms"]
    assert rec["loop_lag_ms"]["samples"] > 1000
    assert rec["throughput"]["jobs_done"] >= 2
    assert rec["resources"]["server"]["workers_cpu_s"] is not None


def test_c_holds_gil_in_a_thread_stalls_the_loop_for_the_whole_call(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "c_holds_gil", "--work-ms", "800", "--strategy", "thread",
                   "--job-connections", "1", "--observers", "1", "--ping-interval", "none",
                   "--duration", "3", "--warmup", "1", "--close-timeout", "2")
    job = rec["job_ms"]["completed_p50"]
    assert job is not None, rec["job_ms"]
    # The thread holds the GIL for the whole call: the loop cannot run, so the
    # longest stall is about one job, not a switch interval.
    assert 0.6 * job < rec["stalls"]["max_whole_ms"] < 2.5 * job + 500, (rec["stalls"], job)


@pytest.mark.parametrize("workload", ["numpy", "blocking_io"])
def test_work_that_releases_the_gil_leaves_a_thread_servers_loop_responsive(tmp_path, workload: str) -> None:
    rec = run_cell(tmp_path, "--workload", workload, "--work-ms", "500", "--strategy", "thread",
                   "--job-connections", "1", "--observers", "1", "--ping-interval", "none",
                   "--duration", "3", "--warmup", "1", "--close-timeout", "2")
    lag = rec["loop_lag_ms"]
    assert rec["throughput"]["completed_in_window"] >= 2
    # A loop of short GIL-holding calls would make the probe wait a switch
    # interval (5 ms) at a time; work that really releases the GIL does not.
    assert lag["samples"] >= 1000 and lag["p99"] < 10, lag
    assert rec["stalls"]["count"] == 0, rec["stalls"]


def test_an_inline_job_takes_about_its_target_and_says_when_it_does_not(tmp_path) -> None:
    # Calibrate now, in the conditions the cell runs in: a calibration made
    # earlier in the session may have shared the machine with other work.
    calibrated = run_cli("calibrate", "--force", "pure_python")
    assert calibrated.returncode == 0, calibrated.stderr
    rec = run_cell(tmp_path, "--workload", "pure_python", "--work-ms", "400", "--strategy", "inline",
                   "--job-connections", "1", "--observers", "1", "--ping-interval", "none",
                   "--duration", "3", "--warmup", "1", "--close-timeout", "2")
    machine = rec["resources"]["machine"]
    calibrated = rec["work"]["calibration"]
    # The cell itself keeps about one core busy; more than a quarter of the
    # machine besides it (here or while calibrating) is someone else's work,
    # which slows jobs and says nothing about the calibration.
    busy_limit = 1.0 + 0.25 * machine["cpus"]
    if machine["busy_cores"] > busy_limit or (calibrated.get("busy_cores") or 0) > busy_limit:
        pytest.skip(f"machine busy: {machine['busy_cores']:.2f} cores in the cell, "
                    f"{calibrated.get('busy_cores')} while calibrating, of {machine['cpus']}")
    ratio = rec["work"]["ratio_to_target"]
    # Not wildly off: fixed work sized by the calibration takes about its
    # target. (On the shared 2-core machines a 400 ms job has measured 0.73
    # to 1.08 x target: the per-unit cost of pure_python is not constant over
    # job lengths there, see the calibration's residuals.) Whenever it is off
    # by more than 15 %, the record must say so.
    assert ratio is not None and 0.5 <= ratio <= 2.0, (ratio, rec["job_ms"])
    drift = "calibration_drift" in [w["code"] for w in rec["warnings"]]
    assert drift == (abs(ratio - 1.0) > 0.15), (ratio, rec["warnings"])


def test_a_window_shorter_than_the_ping_timeout_is_inconclusive(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "100", "--strategy", "thread",
                   "--ping-interval", "1", "--ping-timeout", "5", "--duration", "4", "--warmup", "1")
    assert rec["survival"]["verdict"] == "inconclusive", rec["survival"]
    assert rec["survival"]["cycles_observed"] == 0
    assert "inconclusive_window" in [w["code"] for w in rec["warnings"]]
    assert not rec["window"]["keepalive_observable"]


def test_jobs_longer_than_the_window_still_show_throughput(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "pure_python", "--work-ms", "3000", "--strategy", "thread",
                   "--ping-interval", "none", "--duration", "3", "--warmup", "1", "--close-timeout", "2")
    tp = rec["throughput"]
    # Two 3 s jobs share the GIL: neither may finish inside 3 s, but the
    # server worked the whole window.
    assert tp["jobs_per_s"] > 0.1, tp
    assert rec["job_ms"]["completed"] + rec["job_ms"]["n_censored"] >= 2, rec["job_ms"]


def test_without_a_duration_the_window_is_sized_to_decide(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "100", "--strategy", "thread",
                   "--ping-interval", "0.5", "--ping-timeout", "0.5", "--warmup", "1")
    window = rec["window"]
    assert window["sized"] and window["keepalive_observable"] and window["jobs_observable"], window
    assert rec["params"]["duration"] is None
    # Nothing blocks the loop, so the connections live; the window was long
    # enough to say so.
    assert rec["survival"]["verdict"] == "kept", rec["survival"]
    assert rec["survival"]["cycles_observed"] >= 3
    assert rec["throughput"]["completed_in_window"] >= 5 * 2


def test_a_load_that_cannot_keep_its_schedule_says_so(tmp_path) -> None:
    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "50", "--strategy", "thread",
                   "--job-connections", "1", "--observers", "64", "--echo-interval-ms", "1",
                   "--ping-interval", "none", "--duration", "1.5", "--warmup", "0.5")
    sending = rec["load"]["sending"]
    # 64,000 echoes a second is more than one Python process can send.
    assert sending["achieved_per_s"] < 0.9 * sending["offered_per_s"], sending
    assert "load_saturated" in [w["code"] for w in rec["warnings"]]
    echo = rec["echo_latency_ms"]
    assert echo["scheduled"] == echo["answered"] + echo["lost"] + echo["censored"] + echo["missed"]


@pytest.fixture(scope="module")
def switch_interval_cells(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    # A thread that runs pure Python holds the GIL until the interpreter
    # makes it hand over: the loop's thread waits one switch interval each
    # time it wakes. One cell at 1 ms, one at 20 ms.
    tmp = tmp_path_factory.mktemp("switch")
    return {ms: run_cell(tmp, "--workload", "pure_python", "--work-ms", "500", "--strategy", "thread",
                         "--ping-interval", "none", "--duration", "3", "--warmup", "1", "--close-timeout", "2",
                         "--switch-interval-ms", str(ms), name=f"swi{ms}.json")
            for ms in (1, 20)}


def test_the_server_applies_and_records_its_switch_interval(switch_interval_cells: dict[int, dict]) -> None:
    from wsblock.schema import axes

    for ms, rec in switch_interval_cells.items():
        assert rec["params"]["switch_interval_ms"] == ms
        assert rec["meta"]["switch_interval_s"] == pytest.approx(ms / 1000.0)
        assert f"-swi{ms}" in axes.cell_id(rec["params"])


def test_a_longer_switch_interval_makes_a_gil_holding_thread_lag_the_loop_longer(
        switch_interval_cells: dict[int, dict]) -> None:
    short, long = (switch_interval_cells[ms]["loop_lag_ms"] for ms in (1, 20))
    # Measured: p50 about 1.5 ms at 1 ms and 23 ms at 20 ms. A busy machine
    # adds lag to both; a ratio of 3 leaves room for that.
    assert short["p50"] is not None and long["p50"] is not None, (short, long)
    assert long["p50"] > 3 * short["p50"], (short, long)
    assert long["samples"] < short["samples"], (short, long)


def test_server_cpu_is_measured_over_the_window_while_a_c_call_holds_the_gil(tmp_path) -> None:
    # Inline jobs that hold the GIL back to back: a thread inside the server
    # could take no snapshot while a call runs, so the CPU must be read from
    # outside the server, over the window itself.
    rec = run_cell(tmp_path, "--workload", "c_holds_gil", "--work-ms", "700", "--strategy", "inline",
                   "--job-connections", "1", "--ping-interval", "none",
                   "--duration", "2.5", "--warmup", "1", "--close-timeout", "2")
    server = rec["resources"]["server"]
    assert server["cpu_measured_by"] == "runner" and server["cpu_missing"] is None, server
    assert server["interval_s"] >= 0.9 * rec["window"]["duration_s"], server
    # The loop runs a job all the time, so the server got about the CPU share
    # its jobs got (one core on an idle machine; less when the machine is
    # busy and this test runs niced).
    share = rec["job_cpu_ms"]["p50"] / rec["job_ms"]["p50"]
    assert server["cpu_util"] > max(0.1, 0.5 * share), (server, share)
