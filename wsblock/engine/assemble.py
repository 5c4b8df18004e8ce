"""Assemble a cell's record from the server's and the load process's measurements.

The record's layout and versions live in :mod:`wsblock.schema.record`; this
module only fills it in, then adds what follows from the whole record: the
keepalive verdict, the warnings and, when nothing was measured, ``failed``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from wsblock.engine import checks, exposure, strategies
from wsblock.engine.reports import LoadReport, ServerReport
from wsblock.schema.record import KIND, SCHEMA_VERSION


def _count(events: list[dict[str, Any]], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(e[key]) for e in events).items()))


def runs_alone(params: dict[str, Any], cpus: int) -> bool:
    """Whether a job of this cell runs without competing for its core or the GIL.

    ``inline`` and ``chunked`` jobs run one at a time on the loop; pool jobs
    run alone when at most one is in flight (``thread``) or when each has a
    core with one to spare for the server and the load (``process``).
    """
    strategy = params["strategy"]
    in_flight = min(params.get("job_connections", 1), params.get("workers") or params.get("job_connections", 1))
    if not strategies.has(strategy, "uses_pool"):
        return True
    if not strategies.has(strategy, "out_of_process"):
        return in_flight <= 1  # threads share the GIL
    return in_flight < cpus


def build(
    *,
    params: dict[str, Any],
    window: dict[str, Any],
    work: dict[str, Any],
    server: ServerReport,
    load: LoadReport,
    machine: dict[str, Any],
    meta: dict[str, Any],
    processes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a record from the two processes' measurements.

    The one place the record's measured sections are laid out; a test holds
    ``docs/record.md`` and :data:`wsblock.schema.record.REQUIRED` to what it
    builds.

    Args:
        params: The cell (``CellConfig.to_dict()``).
        window: The window plan (``WindowPlan.to_dict()``).
        work: Work sizing: target, units, calibration.
        server: The server's report (its stats file, checked).
        load: The load process's report (its results file, checked).
        machine: Machine-wide CPU use over the window, from the runner.
        meta: Environment metadata.
        processes: Processes the cell left running that the runner ended
            (:func:`wsblock.engine.reaper.record_section`).

    Returns:
        The record.
    """
    duration = float(window["duration_s"])
    events = sorted(load.disconnects, key=lambda e: e["t"])
    opened = load.connections.opened
    lost = load.connections.lost
    opened_total = sum(opened.values())
    lost_total = sum(lost.values())
    server_events = server.disconnects
    survival = exposure.survival(load.lifetimes, params=params, window_s=duration,
                                 min_cycles=params.get("min_cycles", exposure.DEFAULT_MIN_CYCLES))
    originals = survival["originals"]
    original_lost = survival["original_lost"]
    completed_p50 = server.job_ms.get("completed_p50")
    ratio = None
    if runs_alone(params, machine.get("cpus", 1)) and completed_p50 is not None \
            and params.get("work_ms") is not None:
        ratio = round(completed_p50 / float(params["work_ms"]), 3)
    echo = load.echo
    lower_bound = bool(echo.lost or echo.censored or echo.missed)
    bad = server.bad_input
    exceptions = server.handler_errors
    counted = server.work
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "status": "ok",
        "params": params,
        "window": window,
        "work": {**work, "ratio_to_target": ratio},
        "survival": survival,
        "disconnects": {
            "total": lost_total,
            "share": round(original_lost / originals, 4) if originals else None,
            "share_basis": "original_connections",
            "original": {"connections": originals, "lost": original_lost},
            "reconnects": {"opened": max(0, opened_total - originals),
                           "lost": max(0, lost_total - original_lost)},
            "before_window": load.connections.lost_before_window,
            "by_code": _count(events, "code"),
            "by_initiator": _count(events, "initiator"),
            "first_s": events[0]["t"] if events else None,
            "by_kind": lost,
            "events": events[:100],
            "server_side": {
                "total": len(server_events),
                "by_code": _count(server_events, "code"),
                "by_initiator": _count(server_events, "initiator"),
            },
        },
        "connections": {
            "opened": opened,
            "opened_total": opened_total,
            "connect_failures": load.connect_failures,
        },
        "loop_lag_ms": server.loop_lag_ms,
        "stalls": server.stalls,
        "io_lag_ms": {**server.io_lag_ms, "method": "echo send stamp to handler"},
        "ticker_lag_ms": server.ticker_lag_ms,
        "throughput": {
            "jobs_per_s": round(counted.jobs_in_window / duration, 4),
            "echo_per_s": round(load.echoes / duration, 3),
            "jobs_done": load.jobs_done,
            "jobs_in_window": counted.jobs_in_window,
            "completed_in_window": counted.completed_in_window,
            "partial_jobs": counted.partial_jobs,
            "running_at_end": counted.running_at_end,
            "estimated_jobs": counted.estimated_jobs,
            "echoes": load.echoes,
            "server_jobs_done": server.jobs_done,
        },
        "echo_latency_ms": {
            **load.echo_latency_ms,
            "scheduled": echo.scheduled,
            "answered": echo.answered,
            "lost": echo.lost,
            "censored": echo.censored,
            "missed": echo.missed,
            "lower_bound": lower_bound,
        },
        "job_ms": server.job_ms,
        "job_cpu_ms": server.job_cpu_ms,
        "job_latency_ms": load.job_latency_ms,
        "result": server.result,
        "load": {"sending": load.sending.to_dict()},
        "server": {
            "setup": server.setup,
            "foreign": server.foreign,
            "handler_errors": {
                "total": exceptions.total + bad.total,
                "exceptions": exceptions.to_dict(),
                "bad_input": bad.to_dict(),
            },
        },
        "resources": {
            "server": server.resources,
            "load_cpu_s": load.cpu_s,
            "load_cpu_util": round(load.cpu_s / duration, 3),
            "machine": machine,
        },
        "meta": {
            **meta,
            "blas": server.blas,
            "switch_interval_s": server.switch_interval_s,
            "event_loop": server.event_loop,
            "probe": server.probe,
            "start_method": server.start_method,
        },
    }
    if processes is not None:
        rec["processes"] = processes
    rec["warnings"] = checks.warnings_for(rec)
    reason = checks.failure_reason(rec)
    if reason:
        rec["status"] = "failed"
        rec["error"] = reason
    return rec
