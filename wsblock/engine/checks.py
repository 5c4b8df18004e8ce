"""Warnings a record carries, and the reason a cell measured nothing.

Each warning is ``{"code": ..., "message": ...}``; codes are stable (listed in
:data:`CODES` and in ``docs/record.md``), messages are for people. A warning
does not make a number wrong: it says how far the number can be trusted.
"""

from __future__ import annotations

from typing import Any

from wsblock.engine.probe import FEW_PROBE_SAMPLES
from wsblock.schema import caveats
from wsblock.engine.sizing import JOBS_PER_CONNECTION

CODES = (
    "inconclusive_window",
    "window_bounded",
    "few_samples",
    "load_saturated",
    "foreign_connections",
    "handler_errors",
    "calibration_drift",
    "oversubscribed",
    "background_load",
    "work_ms_ignored",
    "cpu_unmeasured",
    "stalled_at_window_start",
    "busy_at_window_start",
    "stray_processes",
)

DRIFT_LIMIT = 0.15
"""``work.ratio_to_target`` further than this from 1 is calibration drift."""

OVERSUBSCRIBED_SHARE = 0.9
"""Busy cores at or above this share of the machine: oversubscribed."""

SATURATED_ACHIEVED = 0.9
"""The load is saturated below this share of its offered echo rate ..."""

SATURATED_LATENESS_MS = 20.0
"""... or when its sends are this late (p90, or max with few sends), or one
echo interval if that is longer."""

FEW_ECHOES = 100


def _warn(code: str, message: str) -> dict[str, str]:
    assert code in CODES, code
    return {"code": code, "message": message}


def warnings_for(rec: dict[str, Any]) -> list[dict[str, str]]:
    """Every warning that applies to an assembled record."""
    out: list[dict[str, str]] = []
    p = rec["params"]
    window = rec.get("window") or {}
    duration = window.get("duration_s", p.get("duration"))
    survival = rec.get("survival") or {}
    if survival.get("verdict") == "inconclusive":
        need = window.get("keepalive_s")
        out.append(_warn("inconclusive_window", survival["reason"] + (
            f"; a {duration:g} s window cannot show a keepalive outcome, {need:g} s could"
            if need and duration is not None else "")))
    if window.get("bounded"):
        out.append(_warn("window_bounded", f"the window needed {window['needed_s']:g} s and was cut "
                                           f"to the maximum of {window['max_s']:g} s"))
    lag = rec["loop_lag_ms"]
    if lag.get("samples", 0) < FEW_PROBE_SAMPLES:
        out.append(_warn("few_samples", f"loop lag: {lag.get('samples', 0)} probe samples, so "
                                        f"{', '.join(lag.get('withheld') or []) or 'its percentiles'} "
                                        "withheld; read the stall figures"))
    jc = p.get("job_connections", 0)
    done = rec["throughput"].get("completed_in_window", rec["throughput"].get("jobs_done", 0))
    if jc and done < JOBS_PER_CONNECTION * jc:
        job_ms = rec["job_ms"]
        out.append(_warn("few_samples", f"jobs: {done} completed inside the window for {jc} job "
                                        f"connections (fewer than {JOBS_PER_CONNECTION} each); job_ms "
                                        f"from {job_ms.get('completed', 0)} completed and "
                                        f"{job_ms.get('n_censored', 0)} censored jobs"))
    echo = rec["echo_latency_ms"]
    if p.get("observers", 0) and echo.get("samples", 0) < FEW_ECHOES:
        out.append(_warn("few_samples", f"echo latency: {echo.get('samples', 0)} echoes scheduled "
                                        "inside the window"))
    sending = (rec.get("load") or {}).get("sending")
    if sending and sending.get("offered_per_s"):
        achieved = sending["achieved_per_s"] / sending["offered_per_s"]
        late = sending["lateness_ms"]
        late_ms = late.get("p90") if late.get("p90") is not None else late.get("max")
        limit = max(SATURATED_LATENESS_MS, p.get("echo_interval_ms", 0.0))
        if achieved < SATURATED_ACHIEVED or (late_ms is not None and late_ms > limit):
            out.append(_warn("load_saturated", f"the load sent {sending['achieved_per_s']:,.0f} of "
                                               f"{sending['offered_per_s']:,.0f} echoes/s it offered, "
                                               f"late by {late_ms if late_ms is not None else 0:,.1f} ms "
                                               f"(p90); its own loop, not the server, set the echo latency"))
    server = rec.get("server") or {}
    foreign = server.get("foreign") or {}
    if foreign.get("connections"):
        unopened = foreign.get("no_handshake") or 0
        out.append(_warn("foreign_connections", f"{foreign['connections']} connections were not the "
                                                f"load's ({unopened} never completed a handshake; "
                                                f"{foreign.get('jobs', 0)} jobs refused, "
                                                f"{foreign.get('messages', 0)} messages); handling them "
                                                "may have slowed the server for the load"))
    errors = server.get("handler_errors") or {}
    if errors.get("total"):
        parts = [f"{k} x{n}" for k, n in (errors.get("exceptions") or {}).get("by_type", {}).items()]
        parts += [f"{k} x{n}" for k, n in (errors.get("bad_input") or {}).get("by_kind", {}).items()]
        out.append(_warn("handler_errors", f"{errors['total']} message(s) the handler could not serve: "
                                           + ", ".join(parts)))
    at_start = ((rec.get("stalls") or {}).get("before_window") or {}).get("at_window_start")
    if at_start:
        out.append(caveats.at_window_start_warning(at_start))
    ignored = rec["work"].get("ignored_work_ms")
    if ignored is not None:
        function = rec["work"].get("function") or {}
        out.append(_warn("work_ms_ignored", f"work_ms {ignored:g} was ignored: "
                                            f"{function.get('qualified_name', rec['params'].get('workload'))} "
                                            "takes no units, so each job is one call of its own length"))
    ratio = rec["work"].get("ratio_to_target")
    if ratio is not None and abs(ratio - 1.0) > DRIFT_LIMIT:
        cal = rec["work"].get("calibration") or {}
        out.append(_warn("calibration_drift", f"a job alone took {ratio:.2f} x its target "
                                              f"(calibrated {cal.get('measured_at')}, load average "
                                              f"{cal.get('loadavg')}); compare work sizes with care"))
    strays = (rec.get("processes") or {}).get("strays_ended")
    if strays:
        out.append(_warn("stray_processes", f"{strays} process{'es' if strays != 1 else ''} started by the cell "
                                            "outlived the processes that started them and were ended by the "
                                            "runner (a user's function's children in a session of their own, "
                                            "or daemons); while they ran, they shared the machine"))
    missing = (rec["resources"].get("server") or {}).get("cpu_missing")
    if missing:
        out.append(_warn("cpu_unmeasured", missing))
    machine = rec["resources"].get("machine") or {}
    cpus, busy = machine.get("cpus"), machine.get("busy_cores", 0)
    niced = machine.get("niced_cores") or 0.0
    if cpus and busy - niced >= OVERSUBSCRIBED_SHARE * cpus:
        out.append(_warn("oversubscribed", f"{busy:.2f} of {cpus} cores were busy during the window"))
    elif cpus and busy >= OVERSUBSCRIBED_SHARE * cpus:
        # The cell's processes had priority over this work, but it still
        # shares caches, memory bandwidth and (on a virtual machine) perhaps
        # physical cores: visible, not a reason to distrust the cell.
        out.append(_warn("background_load", f"{busy:.2f} of {cpus} cores were busy, {niced:.2f} of them "
                                            "with lower-priority processes"))
    return out


def failure_reason(rec: dict[str, Any]) -> str | None:
    """Why a record measured nothing, or ``None`` if it measured something."""
    survival = rec.get("survival") or {}
    if not survival.get("originals"):
        failures = rec["connections"].get("connect_failures", 0)
        return ("the load never connected to the server"
                + (f" ({failures} failed attempts in the window)" if failures else ""))
    tp = rec["throughput"]
    if (rec["loop_lag_ms"].get("samples", 0) == 0 and rec["stalls"].get("count", 0) == 0
            and not tp.get("echoes") and not tp.get("jobs_in_window")):
        return "nothing was measured in the window"
    return None
