"""What a cell may claim: keepalive exposure, window sizing, truncated jobs, warnings, calibration fits."""

from __future__ import annotations

import os

import pytest

from wsblock.engine import checks, exposure, sizing
from wsblock.engine.calibration import fit_line
from wsblock.engine.jobs import JobLedger
from wsblock.engine.window import Window
from wsblock.schema.keepalive import Keepalive

KEEPALIVE = {"ping_interval": 1.0, "ping_timeout": 5.0, "client_pings": True, "handler_ping_timeout": None}


def _conn(slot, opened, ended=None, end="window", kind="observer"):
    return {"kind": kind, "slot": slot, "opened_s": opened, "ended_s": ended, "end": end}


def test_a_4_s_window_cannot_show_a_5_s_ping_timeout() -> None:
    # Opened in a 1 s warm-up: first ping at the window start, its timeout
    # expires after 5 s, beyond a 4 s window.
    s = exposure.survival([_conn(0, -1.0), _conn(1, -0.98)], params=KEEPALIVE, window_s=4.0)
    assert s["verdict"] == "inconclusive" and s["cycles_observed"] == 0
    assert s["connections"][0]["at_risk_s"] == pytest.approx(4.0)


def test_kept_needs_every_original_at_risk_for_min_cycles() -> None:
    conns = [_conn(0, -1.0), _conn(1, 2.0)]  # slot 1 opened late: 17 s at risk, not 18
    assert exposure.survival(conns, params=KEEPALIVE, window_s=20.0)["verdict"] == "inconclusive"
    conns = [_conn(0, -1.0), _conn(1, -1.0)]
    s = exposure.survival(conns, params=KEEPALIVE, window_s=20.0)
    assert s["verdict"] == "kept" and s["cycles_observed"] == 3


def test_lost_counts_original_connections_only() -> None:
    conns = [
        _conn(0, -1.0, 2.5, "disconnect"),  # original, lost in the window
        _conn(0, 2.6, None),  # its reconnect
        _conn(1, -1.0, -0.5, "disconnect"),  # died in the warm-up: not original
        _conn(1, -0.4, None),  # so this one is slot 1's original
        _conn(2, -1.0, 9.0, "disconnect"),  # failed after the window: censored
    ]
    s = exposure.survival(conns, params=KEEPALIVE, window_s=4.0)
    assert s["verdict"] == "lost" and s["originals"] == 3 and s["original_lost"] == 1
    assert [c["end"] for c in s["connections"]] == ["disconnect", "window", "window"]


@pytest.mark.parametrize("change", [{"ping_interval": None}, {"ping_timeout": None},
                                    {"client_pings": False, "handler_ping_timeout": "none"}])
def test_keepalive_that_cannot_fail_is_not_applicable(change) -> None:
    s = exposure.survival([_conn(0, -1.0)], params={**KEEPALIVE, **change}, window_s=60.0)
    assert s["verdict"] == "not_applicable"


def test_the_shorter_sides_cycle_decides() -> None:
    assert Keepalive(ping_interval=1, ping_timeout=5, handler_ping_timeout=0.5).cycle_s == 1.5
    assert Keepalive(ping_interval=1, ping_timeout=5, client_pings=False,
                     handler_ping_timeout="none").cycle_s is None


def _plan(**change):
    base = dict(requested_s=None, warmup_s=1.0, strategy="inline", job_s=3.0, job_connections=2,
                workers=2, cpus=2, releases_gil=False, cycle_s=6.0, ping_interval=1.0, min_cycles=3)
    return sizing.plan(**{**base, **change})


def test_a_sized_window_can_decide_and_hold_five_jobs_per_connection() -> None:
    plan = _plan()
    assert plan.keepalive_observable and plan.jobs_observable and not plan.bounded
    # two 3 s inline jobs share the loop: each connection gets one per ~6 s
    assert plan.duration_s >= 6 * 6.0 and plan.duration_s >= 3 * 6.0
    # the exposure of a connection opened at the warm-up start fits it
    s = exposure.survival([_conn(0, -1.0 + sizing.HANDSHAKE_MARGIN_S + 3.0)],
                          params=KEEPALIVE, window_s=plan.duration_s)
    assert s["verdict"] == "kept"


def test_the_bound_wins_and_says_so() -> None:
    plan = _plan(job_s=60.0)
    assert plan.duration_s == sizing.MAX_WINDOW_S and plan.bounded and not plan.jobs_observable


def test_a_given_window_is_obeyed_and_says_what_it_cannot_see() -> None:
    plan = _plan(requested_s=4.0)
    assert plan.duration_s == 4.0 and not plan.keepalive_observable and not plan.jobs_observable


def test_gil_free_threads_and_processes_run_jobs_side_by_side() -> None:
    serial = sizing.job_period_s(strategy="thread", job_s=1, job_connections=2, workers=2, cpus=2,
                                 releases_gil=False)
    parallel = sizing.job_period_s(strategy="thread", job_s=1, job_connections=2, workers=2, cpus=2,
                                   releases_gil=True)
    assert parallel * 2 == pytest.approx(serial)


def test_jobs_longer_than_the_window_still_count_their_work() -> None:
    w = Window(10.0, 14.0)
    ledger = JobLedger(w, expected_s=3.0)
    a = ledger.start(9.0)
    ledger.start(11.0)  # still running at the stop
    c = ledger.start(10.5)
    ledger.finish(c, 12.5, wall_ms=2000.0, cpu_ms=2000.0)  # whole inside
    ledger.finish(a, 15.0, wall_ms=6000.0, cpu_ms=3000.0)  # ended after the window
    s = ledger.summary(stopped_at=14.5)
    work = s["work"]
    assert work["completed_in_window"] == 1
    # a: 4 s inside of at least 5 s run by the window's end; the running job:
    # 3 s inside of at least its expected 3 s.
    assert work["jobs_in_window"] == pytest.approx(1 + 4 / 5 + 3 / 3, rel=1e-3)
    assert work["running_at_end"] == 2 and work["partial_jobs"] == 2
    job_ms = s["job_ms"]
    # Nothing after the window's end is recorded: both are censored there.
    assert job_ms["completed"] == 1 and job_ms["n_censored"] == 2 and job_ms["lower_bound"]
    assert job_ms["ended_after_window"] == 1 and job_ms["in_flight_at_stop"] == 1
    assert job_ms["samples"] == 3 and job_ms["max"] == pytest.approx(5000.0)
    assert job_ms["completed_p50"] == pytest.approx(2000.0)


def test_a_ledger_does_not_depend_on_when_the_server_stopped() -> None:
    w = Window(10.0, 14.0)
    summaries = []
    for stop in (14.0, 14.4, 17.0):
        ledger = JobLedger(w, expected_s=2.0)
        a = ledger.start(12.5)
        b = ledger.start(13.0)
        if stop > 15.0:  # a later stop lets one end first
            ledger.finish(a, 14.6, wall_ms=2100.0, cpu_ms=2100.0)
        ledger.cut(b, min(stop, 14.2), worked=False)  # never begun
        summaries.append(ledger.summary(stopped_at=stop))
    assert summaries[0]["job_ms"] == summaries[1]["job_ms"] == summaries[2]["job_ms"] | {
        "in_flight_at_stop": summaries[0]["job_ms"]["in_flight_at_stop"],
        "ended_after_window": summaries[0]["job_ms"]["ended_after_window"]}
    for s in summaries:
        assert s["job_ms"]["n_censored"] == 2 and s["job_ms"]["max"] == pytest.approx(1500.0)
        # The job never begun did no work: only a's 1.5 s of 2 s counts.
        assert s["work"]["jobs_in_window"] == pytest.approx(1.5 / 2.0, rel=1e-3)


def test_fit_goes_through_the_origin_without_a_fixed_cost() -> None:
    overhead, slope, fit = fit_line([[100, 10.0], [400, 40.2], [3000, 299.0]])
    assert fit == "origin" and overhead == 0 and slope == pytest.approx(0.0997, rel=0.01)
    overhead, slope, fit = fit_line([[100, 60.0], [400, 90.0], [3000, 350.0]])
    assert fit == "intercept" and overhead == pytest.approx(50.0, rel=0.05)


def _record(**change):
    rec = {
        "params": {"job_connections": 2, "observers": 4, "echo_interval_ms": 20, "duration": None},
        "window": {"duration_s": 10.0, "keepalive_s": 18.0, "bounded": False},
        "survival": {"verdict": "kept", "reason": "", "originals": 6},
        "loop_lag_ms": {"samples": 5000, "withheld": []},
        "throughput": {"completed_in_window": 10, "jobs_in_window": 10.0, "echoes": 2000},
        "job_ms": {"completed": 10, "n_censored": 0},
        "echo_latency_ms": {"samples": 2000},
        "load": {"sending": {"offered_per_s": 200.0, "achieved_per_s": 199.0,
                             "lateness_ms": {"p90": 0.5, "max": 3.0}}},
        "server": {"foreign": {"connections": 0}, "handler_errors": {"total": 0}},
        "work": {"ratio_to_target": 1.02, "calibration": {}},
        "resources": {"machine": {"cpus": 2, "busy_cores": 1.2}},
        "stalls": {"count": 0},
        "connections": {"connect_failures": 0},
    }
    for path, value in change.items():
        *parents, key = path.split("__")
        node = rec
        for parent in parents:
            node = node[parent]
        node[key] = value
    return rec


@pytest.mark.parametrize("change,code", [
    ({"survival__verdict": "inconclusive"}, "inconclusive_window"),
    ({"window__bounded": True, "window__needed_s": 200.0, "window__max_s": 120.0}, "window_bounded"),
    ({"loop_lag_ms__samples": 4}, "few_samples"),
    ({"throughput__completed_in_window": 3}, "few_samples"),
    ({"load__sending__achieved_per_s": 80.0}, "load_saturated"),
    ({"load__sending__lateness_ms": {"p90": 250.0, "max": 900.0}}, "load_saturated"),
    ({"server__foreign": {"connections": 1, "jobs": 3}}, "foreign_connections"),
    ({"server__handler_errors": {"total": 1, "exceptions": {"by_type": {"RecursionError": 1}}}}, "handler_errors"),
    ({"work__ratio_to_target": 1.2}, "calibration_drift"),
    ({"resources__machine__busy_cores": 1.85}, "oversubscribed"),
    ({"resources__machine__busy_cores": 1.95, "resources__machine__niced_cores": 0.1}, "oversubscribed"),
    ({"resources__machine__busy_cores": 1.95, "resources__machine__niced_cores": 0.9}, "background_load"),
])
def test_each_warning_is_raised_by_its_condition(change, code) -> None:
    assert checks.warnings_for(_record()) == []
    assert [w["code"] for w in checks.warnings_for(_record(**change))] == [code]


def test_a_cell_whose_load_never_connected_failed() -> None:
    assert checks.failure_reason(_record()) is None
    assert "never connected" in checks.failure_reason(_record(survival__originals=0))


def test_a_calibration_measured_on_a_busy_machine_is_measured_again_once_it_is_quiet(monkeypatch) -> None:
    from dataclasses import replace

    from wsblock.engine import calibration as cal

    cpus = os.cpu_count() or 1
    line = cal.Calibration(workload="pure_python", params={}, overhead_ms=0.0, ms_per_unit=1e-4,
                           points=[[1000, 0.1]], measured_at="2026-01-01T00:00:00+00:00", key="k",
                           fit="origin", residuals_pct=[0.0], loadavg=4.0 * cpus, busy_cores=float(cpus),
                           cpus=cpus)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2 * cpus, 0.0, 0.0))
    assert cal._quieter_now(line)                                   # busy then, quiet now
    assert not cal._quieter_now(replace(line, loadavg=0.5 * cpus))  # quiet then: keep it
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0 * cpus, 0.0, 0.0))
    assert not cal._quieter_now(line)                               # still busy: no better now
