"""Assemble a cell's record from the server's and the load process's measurements.

The record's layout and versions live in :mod:`wsblock.schema.record`; this
module only fills it in.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from wsblock.schema.record import SCHEMA_VERSION


def _count(events: list[dict[str, Any]], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(e[key]) for e in events).items()))


def build(
    *,
    params: dict[str, Any],
    work: dict[str, Any],
    server: dict[str, Any],
    load: dict[str, Any],
    machine: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Assemble a record from the two processes' measurements.

    Args:
        params: The cell (``CellConfig.to_dict()``).
        work: Work sizing: target, units, calibration.
        server: The server's stats file.
        load: The load process's results file.
        machine: Machine-wide CPU use over the window, from the runner.
        meta: Environment metadata.

    Returns:
        The record.
    """
    duration = float(params["duration"])
    events = sorted(load["disconnects"], key=lambda e: e["t"])
    opened = load["connections"]["opened"]
    lost = load["connections"]["lost"]
    opened_total = sum(opened.values())
    lost_total = sum(lost.values())
    server_events = server["disconnects"]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "wsblock.cell",
        "status": "ok",
        "params": params,
        "work": work,
        "disconnects": {
            "total": lost_total,
            "share": round(lost_total / opened_total, 4) if opened_total else None,
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
            "connect_failures": load["connect_failures"],
        },
        "loop_lag_ms": server["loop_lag_ms"],
        "stalls": server["stalls"],
        "ticker_lag_ms": server.get("ticker_lag_ms"),
        "throughput": {
            "jobs_per_s": round(load["jobs_done"] / duration, 3),
            "echo_per_s": round(load["echoes"] / duration, 3),
            "jobs_done": load["jobs_done"],
            "echoes": load["echoes"],
            "server_jobs_done": server["jobs_done"],
        },
        "echo_latency_ms": {
            **load["echo_latency_ms"],
            "unanswered": load["echo_unanswered"],
            "lost": load["echo_lost"],
        },
        "job_ms": server["job_ms"],
        "job_cpu_ms": server["job_cpu_ms"],
        "job_latency_ms": load["job_latency_ms"],
        "resources": {
            "server": server["resources"],
            "load_cpu_s": load["cpu_s"],
            "load_cpu_util": round(load["cpu_s"] / duration, 3),
            "machine": machine,
        },
        "meta": {
            **meta,
            "blas": server["blas"],
            "switch_interval_s": server["switch_interval_s"],
            "start_method": server["start_method"],
        },
    }
