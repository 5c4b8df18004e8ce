"""A short human summary of a record.

Every percentile is shown with the samples behind it, a withheld one as "max
of n", a lower bound with ">=", and the record's warnings close the summary.
"""

from __future__ import annotations

from typing import Any


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _pct(stats: dict[str, Any], key: str, *, bound: bool = False) -> str:
    """One percentile: its value, or "max of n" when too few samples back it."""
    value = stats.get(key)
    n = stats.get("samples", 0)
    if value is not None:
        return f"{key} {'>=' if bound else ''}{_ms(value)}"
    if n:
        return f"{key} withheld (max {'>=' if bound else ''}{_ms(stats.get('max'))} of {n})"
    return f"{key} -"


def _round_trip(stats: dict[str, Any]) -> str:
    """The client's round trip per job, with the jobs behind it."""
    n = stats.get("samples", 0)
    if not n:
        return "; no job's round trip measured (none came back to its client in the window)"
    return f"; round trip {_pct(stats, 'p50')} over {n} job{'s' if n != 1 else ''}"


def _head(rec: dict[str, Any]) -> str:
    p = rec["params"]
    window = rec.get("window") or {}
    duration = window.get("duration_s", p.get("duration"))
    how = ""
    if window:
        how = " (sized" + (", cut to the maximum" if window.get("bounded") else "") + ")" \
            if window.get("sized") else " (given)"
    size = "one call per job" if p.get("work_ms") is None else f"{p['work_ms']:g} ms"
    return (f"cell        {p['workload']} {size} x {p['strategy']}, "
            f"ping_interval={p['ping_interval']} ping_timeout={p['ping_timeout']}, "
            + (f"loop {p['loop']}, " if p.get("loop", "asyncio") != "asyncio" else "")
            + (f"server {p['server']}, " if p.get("server", "asyncio") != "asyncio" else "")
            + f"window {duration:g} s{how}")


def p_text(params: dict[str, Any]) -> str:
    """Keyword arguments as a call shows them: ``limit=5, table='t'``."""
    return ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))


def _sites(sites: dict[str, int]) -> str:
    return ", ".join(f"{site}" + (f" x{n}" if n > 1 else "") for site, n in list(sites.items())[:2])


def _before_window(before: dict[str, Any] | None) -> str | None:
    """The stalls before the window, by phase: the set-up's are the harness's, outside the window."""
    if not before:
        return None
    parts = []
    for phase, words in (("setup", "set-up (imports, pool, first calls; not charged)"),
                         ("warmup", "warm-up")):
        p = before.get(phase) or {}
        if p.get("count"):
            parts.append(f"{words}: {p['count']}, longest {_ms(p['longest_ms'])}"
                         + (f" at {_sites(p['sites'])}" if p.get("sites") else ""))
    text = "; ".join(parts) if parts else "none"
    at = before.get("at_window_start")
    if at:
        text += f"; still stalled when the window opened ({_ms(at['ms_into_window'])} into it)"
    else:
        text += "; none reached the window"
    steps = before.get("setup_steps_ms") or {}
    took = ""
    if steps.get("import_ms") is not None and steps.get("first_call_ms") is not None:
        imports = steps["import_ms"] + (steps.get("catalogue_ms") or 0.0)
        took = f"set-up took {_ms(imports)} of imports, {_ms(steps['first_call_ms'])} of first calls; "
    return f"before      {took}stalls before the window: {text}"


def _result(result: dict[str, Any] | None) -> str | None:
    """What the handler got back, and what carrying it cost the server."""
    if not result:
        return None
    setup = result.get("setup_call") or {}
    kind = result.get("type") or setup.get("type") or "-"
    if result.get("transfer") == "pickled":
        transfer = result.get("transfer_ms") or {}
        size = result.get("pickled_bytes_max")
        if not transfer.get("samples"):
            return f"result      {kind}, pickled from the worker; no job's result came back in the window"
        return (f"result      {kind}, pickled from the worker, up to {size:,} bytes; unpickled in the server in "
                f"p50 {transfer.get('p50') or 0:,.3f} ms, max {transfer.get('max') or 0:,.3f} ms over "
                f"{transfer['samples']:,} job{'s' if transfer['samples'] != 1 else ''} (holding the GIL)")
    size = setup.get("pickled_bytes")
    return (f"result      {kind}, handed back in the server's memory"
            + (f" ({size:,} bytes once pickled)" if size is not None else ""))


def _user_output(output: Any) -> str | None:
    # One line when the function wrote anything: how much, and its last line.
    if not isinstance(output, dict):
        return None
    parts = []
    last = ""
    for key in ("stdout", "stderr"):
        text = output.get(key)
        if isinstance(text, str) and text:
            parts.append(f"{len(text.encode()):,} bytes on {key}")
            last = text.strip().splitlines()[-1][:80] if text.strip() else last
    if not parts:
        return None
    more = "the last " if output.get("truncated") else ""
    return (f"output      the work wrote {more}{' and '.join(parts)} (record: user_output)"
            + (f"; last line: {last!r}" if last else ""))


def summarize(rec: dict[str, Any]) -> str:
    """Render a record as a few lines of text.

    Args:
        rec: A cell record.

    Returns:
        The summary, without a trailing newline.
    """
    if rec.get("status") == "failed" and "disconnects" not in rec:
        # Nothing was measured: what the cell was, why, and what the work wrote.
        return "\n".join([_head(rec), f"FAILED      {rec.get('error')}",
                          *[line for line in (_user_output(rec.get("user_output")),) if line]])
    d = rec["disconnects"]
    lag = rec["loop_lag_ms"]
    st = rec["stalls"]
    tp = rec["throughput"]
    res = rec["resources"]
    work = rec["work"]
    job_ms = rec["job_ms"]
    echo = rec["echo_latency_ms"]
    cal = work.get("calibration") or {}
    codes = ", ".join(f"{code} x{n}" for code, n in d["by_code"].items()) or "none"
    who = ", ".join(f"{k} x{n}" for k, n in d.get("by_initiator", {}).items())
    share = "-" if d["share"] is None else f"{d['share']:.0%}"
    window_s = (rec.get("window") or {}).get("duration_s", rec["params"].get("duration"))
    first = "" if d["first_s"] is None else (
        f", the first at {d['first_s']:.1f} s" + (f" of the {window_s:g} s window" if window_s else " into the window"))
    server = res["server"]
    survival = rec.get("survival") or {}
    original = d.get("original") or {}
    reconnects = d.get("reconnects") or {}
    lines = [_head(rec)]
    if rec.get("status") == "failed":
        lines.append(f"FAILED      {rec.get('error')}")
    ratio = work.get("ratio_to_target")
    function = work.get("function")
    if function:
        given = p_text(rec["params"].get("workload_params") or {})
        lines.append(f"function    {function['qualified_name']}({given})"
                     + ("; generator (each yield a step)" if function.get("generator") else ""))
    lines += [
        f"work        {work['units']:,} {work['unit']} per job; measured p50 {_ms(job_ms.get('completed_p50', job_ms.get('p50')))}"
        f" of {job_ms.get('completed', job_ms.get('samples', 0))}, max {_ms(job_ms['max'])}"
        + (f"; {job_ms['n_censored']} still running at the end (censored)" if job_ms.get("n_censored") else "")
        + (f"; {ratio:.2f} x target" if ratio is not None else ""),
    ]
    if cal or not function:
        lines.append(
            f"calibrated  {cal.get('measured_at', '?')}: {cal.get('ms_per_unit', 0):.6g} ms per unit, "
            f"fit {cal.get('fit', '?')}, load average {cal.get('loadavg', '?')}"
            + (f", {cal['extrapolation']:g} x its largest point" if cal.get("extrapolation", 0) and cal["extrapolation"] > 1.5 else ""))
    else:
        lines.append(f"measured    not calibrated: a trial call took {_ms(work.get('expected_ms'))} before the window")
    if survival:
        lines.append(
            f"survival    {survival['verdict']}: {survival['reason']}"
            + (f" ({survival['cycles_observed']} cycles observed)" if survival.get("cycles_observed") is not None
               and survival["verdict"] != "inconclusive" else ""))
        lines.append(
            f"disconnects {original.get('lost', 0)} of {original.get('connections', 0)} original connections "
            f"({share}): {codes}{first}" + (f"; closed first by {who}" if who else "")
            + (f"; reconnects {reconnects['opened']}, of which {reconnects.get('lost', 0)} lost"
               if reconnects.get("opened") else "; no reconnects"))
    else:
        lines.append(f"disconnects {d['total']} of {rec['connections']['opened_total']} connections ({share}): "
                     f"{codes}{first}" + (f"; closed first by {who}" if who else ""))
    stall_line = (f"stalls      {st['count']} ({st.get('per_s', 0) or 0:.2f}/s) over "
                  f"{st.get('stalled_share', 0) or 0:.0%} of the window, longest {_ms(st['max_ms'])}")
    lag_line = (f"loop lag    {_pct(lag, 'p50')}  {_pct(lag, 'p99')}  max {_ms(lag['max'])}  "
                f"({lag['samples']:,} samples)") if lag.get("samples") else \
        "loop lag    no probe sample in the window (the loop never got to run its probe; see the stalls)"
    if ((rec.get("meta") or {}).get("probe") or {}).get("kind") == "thread":
        # No loop on the threaded server: the figures are a probe thread's.
        lag_line = "thread lag  " + lag_line[12:].replace("the loop never got to run its probe",
                                                         "the probe thread never got the GIL")
    lines += [stall_line, lag_line] if st.get("primary") else [lag_line, stall_line]
    before = _before_window(st.get("before_window"))
    if before:
        lines.append(before)
    io = rec.get("io_lag_ms")
    if io and io.get("samples"):
        lines.append(f"I/O lag     {_pct(io, 'p50')}  {_pct(io, 'p99')}  max {_ms(io['max'])}  "
                     f"({io['samples']:,} echoes, arrival to handler)")
    bound = bool(echo.get("lower_bound"))
    counts = ""
    if "scheduled" in echo:
        counts = (f"; {echo['scheduled']:,} scheduled: {echo['answered']:,} answered, {echo['lost']:,} lost, "
                  f"{echo['censored']:,} censored, {echo['missed']:,} missed")
    lines += [
        f"echo        {_pct(echo, 'p50', bound=bound)}  {_pct(echo, 'p99', bound=bound)}  "
        f"max {'>=' if bound else ''}{_ms(echo['max'])}; {tp['echo_per_s']:.1f} echo/s{counts}",
        *[line for line in (_result(rec.get("result")),) if line],
        f"jobs        {tp['jobs_per_s']:.2f} jobs/s"
        + (f" ({tp['jobs_in_window']:.2f} jobs' work in the window, {tp['completed_in_window']} completed)"
           if "jobs_in_window" in tp else "")
        + _round_trip(rec["job_latency_ms"]),
        f"cpu         server {server.get('cpu_util') or 0:.2f}, workers {server.get('workers_cpu_util') or 0:.2f}, "
        f"load {res['load_cpu_util']:.2f} cores; machine {res['machine']['busy_cores']:.2f} "
        f"of {res['machine']['cpus']} cores busy",
    ]
    output = _user_output(rec.get("user_output"))
    if output:
        lines.append(output)
    for warning in rec.get("warnings") or []:
        lines.append(f"warning     {warning['code']}: {warning['message']}")
    return "\n".join(lines)
