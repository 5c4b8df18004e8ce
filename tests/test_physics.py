"""End-to-end cells: the physics of docs/design.md must show up in real runs.

Each test runs a real server and load process. Margins are wide because the
machine is small and shared: the assertions separate regimes (seconds versus
milliseconds), they do not pin numbers.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_cell

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
    assert rec["loop_lag_ms"]["p99"] > 4 * switch_ms, rec["loop_lag_ms"]


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
