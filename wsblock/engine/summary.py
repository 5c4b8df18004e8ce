"""A short human summary of a record."""

from __future__ import annotations

from typing import Any


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def summarize(rec: dict[str, Any]) -> str:
    """Render a record as a few lines of text.

    Args:
        rec: A cell record.

    Returns:
        The summary, without a trailing newline.
    """
    p = rec["params"]
    d = rec["disconnects"]
    lag = rec["loop_lag_ms"]
    st = rec["stalls"]
    tp = rec["throughput"]
    res = rec["resources"]
    codes = ", ".join(f"{code} x{n}" for code, n in d["by_code"].items()) or "none"
    who = ", ".join(f"{k} x{n}" for k, n in d.get("by_initiator", {}).items())
    share = "-" if d["share"] is None else f"{d['share']:.0%}"
    first = "" if d["first_s"] is None else f", first after {d['first_s']:.1f} s"
    server = res["server"]
    lines = [
        f"cell        {p['workload']} {p['work_ms']:g} ms x {p['strategy']}, "
        f"ping_interval={p['ping_interval']} ping_timeout={p['ping_timeout']}, window {p['duration']:g} s",
        f"work        {rec['work']['units']:,} {rec['work']['unit']} per job; "
        f"measured p50 {_ms(rec['job_ms']['p50'])}, max {_ms(rec['job_ms']['max'])}"
        + (f"; {rec['job_ms']['in_flight_at_stop']} still running at the end"
           if rec["job_ms"].get("in_flight_at_stop") else ""),
        f"disconnects {d['total']} of {rec['connections']['opened_total']} connections ({share}): "
        f"{codes}{first}" + (f"; closed first by {who}" if who else ""),
        f"loop lag    p50 {_ms(lag['p50'])}  p99 {_ms(lag['p99'])}  max {_ms(lag['max'])}  "
        f"({lag['samples']:,} samples)",
        f"stalls      {st['count']} over {st.get('stalled_share', 0) or 0:.0%} of the window, "
        f"longest {_ms(st['max_ms'])}",
        f"echo        p50 {_ms(rec['echo_latency_ms']['p50'])}  p99 {_ms(rec['echo_latency_ms']['p99'])}  "
        f"max {_ms(rec['echo_latency_ms']['max'])}; {tp['echo_per_s']:.1f} echo/s",
        f"jobs        {tp['jobs_per_s']:.2f} jobs/s; round trip p50 {_ms(rec['job_latency_ms']['p50'])}"
        f" p99 {_ms(rec['job_latency_ms']['p99'])}",
        f"cpu         server {server.get('cpu_util') or 0:.2f}, workers {server.get('workers_cpu_util') or 0:.2f}, "
        f"load {res['load_cpu_util']:.2f} cores; machine {res['machine']['busy_cores']:.2f} "
        f"of {res['machine']['cpus']} cores busy",
    ]
    return "\n".join(lines)
