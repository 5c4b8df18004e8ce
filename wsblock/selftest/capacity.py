"""Harness capacity and probe cost: echo rates, measured in the same run.

One load process (the engine's) drives echo observers at a rising offered
rate against two servers, step by step, interleaved:

* the harness's own server (:mod:`wsblock.engine.server`), and
* a bare websockets echo server (:mod:`wsblock.selftest.bare_server`).

At each step the load reports how many echoes were answered inside the window
and how late it sent its own messages. Each step is *limited* by:

* ``load``: the load sent less than :data:`SATURATED_SHARE` of the offered
  rate, or its median send lateness exceeds a whole observer period (at
  least :data:`LATE_MS`): it could not keep to its own schedule;
* ``server``: the load kept to it, but fewer than :data:`SATURATED_SHARE`
  of the sent echoes were answered inside the window;
* ``neither``: everything offered was sent and answered.

The load's saturation rate is the first offered rate at which it is limited
by itself against the bare server (the lightest server it can have). A
server's capacity is the largest answered rate of the sweep. Goal: the
harness's server answers at least :data:`CAPACITY_GOAL` of the bare server's
rate.

Probe cost: at the top offered rate, the harness's server with its lag probe,
ticker and watchdog and the same server without them
(:mod:`wsblock.selftest.unprobed_server`) are run in alternating order,
``repeats`` times each; the cost is one minus the ratio of the medians of
their answered rates (goal: at most :data:`PROBE_COST_GOAL`), and the
server's CPU seconds per answered echo are compared the same way. The cost
in capacity is only measured where the server is the limit: a server that
answers everything offered has capacity to spare, with or without its probe.
The record says what limited each run; the CPU per echo is reported always.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

from wsblock.engine.config import CellConfig

RATES_PER_S = (1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0)
"""Offered echo rates of the sweep."""

OBSERVERS = 32
"""Observer connections of the load (the rate is set by their period)."""

SATURATED_SHARE = 0.95
LATE_MS = 5.0
"""Limited below this share (of offered sends, or of sent echoes answered); or beyond this median
send lateness, or a whole observer period if longer."""

CAPACITY_GOAL = 0.90
PROBE_COST_GOAL = 0.02

SERVERS = {
    "harness": "wsblock.engine.server",
    "bare": "wsblock.selftest.bare_server",
    "unprobed": "wsblock.selftest.unprobed_server",
}
"""Server variants, by name, and the module each runs."""


def echo_cell(rate_per_s: float, *, window_s: float, warmup_s: float) -> CellConfig:
    """A cell with no jobs whose observers offer ``rate_per_s`` echoes per second in all."""
    interval_ms = max(1.0, OBSERVERS * 1000.0 / rate_per_s)
    return CellConfig("blocking_io", 1.0, "inline", job_connections=0, observers=OBSERVERS,
                      echo_interval_ms=round(interval_ms, 4), warmup=warmup_s,
                      duration=window_s).validate()


def measure(server: str, rate_per_s: float, *, window_s: float, warmup_s: float) -> dict[str, Any]:
    """Run one step: the load at ``rate_per_s`` against the server variant ``server``.

    Returns:
        Offered, sent and answered rates, the load's send lateness and CPU
        share, and the server's CPU seconds per answered echo where it
        measures them.
    """
    from wsblock.engine.runner import run_processes, size_work

    cell = echo_cell(rate_per_s, window_s=window_s, warmup_s=warmup_s)
    measured = run_processes(cell, size_work(cell), window_s, server_module=SERVERS[server])
    load = measured.load
    sending = load.sending
    answered = load.echo.answered / window_s
    lateness = sending.lateness_ms.get("p50")
    answered_n = load.echo.answered
    resources = measured.server.get("resources") or {}
    server_cpu = resources.get("cpu_s")
    return {
        "server": server,
        "rate_per_s": rate_per_s,
        "offered_per_s": sending.offered_per_s,
        "sent_per_s": sending.achieved_per_s,
        "answered_per_s": round(answered, 1),
        "lateness_p50_ms": lateness,
        "load_cpu_util": round(load.cpu_s / window_s, 3),
        "server_cpu_util": resources.get("cpu_util"),
        "server_cpu_us_per_echo": (round(server_cpu / answered_n * 1e6, 2)
                                   if server_cpu is not None and answered_n else None),
        "interval_ms": cell.echo_interval_ms,
    }


def limited_by(step: dict[str, Any]) -> str:
    """What limited a step: ``load``, ``server`` or ``neither`` (see the module's docstring)."""
    late = step["lateness_p50_ms"]
    if step["sent_per_s"] < SATURATED_SHARE * step["offered_per_s"] or (
            late is not None and late > max(LATE_MS, step["interval_ms"])):
        return "load"
    if step["answered_per_s"] < SATURATED_SHARE * step["sent_per_s"]:
        return "server"
    return "neither"


def sweep(
    *,
    rates: tuple[float, ...] = RATES_PER_S,
    window_s: float = 2.0,
    warmup_s: float = 0.5,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The capacity section: both servers at each offered rate, until the load saturates.

    The sweep stops after the first rate at which both servers' steps are
    limited (by the load or by the server): higher rates could not answer more.
    """
    steps = []
    for rate in rates:
        pair = []
        for server in ("harness", "bare"):
            progress(f"capacity: {server} server at {rate:,.0f} echoes/s offered")
            step = measure(server, rate, window_s=window_s, warmup_s=warmup_s)
            step["limited_by"] = limited_by(step)
            pair.append(step)
        steps.extend(pair)
        if all(step["limited_by"] != "neither" for step in pair):
            break
    best = {name: max((s["answered_per_s"] for s in steps if s["server"] == name), default=0.0)
            for name in ("harness", "bare")}
    bare_saturated = [s["rate_per_s"] for s in steps if s["server"] == "bare" and s["limited_by"] == "load"]
    return {
        "observers": OBSERVERS,
        "window_s": window_s,
        "steps": steps,
        "load_saturates_at_per_s": bare_saturated[0] if bare_saturated else None,
        "harness_per_s": best["harness"],
        "bare_per_s": best["bare"],
        "ratio": round(best["harness"] / best["bare"], 4) if best["bare"] else None,
        "goal": CAPACITY_GOAL,
    }


def probe_cost(
    *,
    rate_per_s: float = RATES_PER_S[-1],
    repeats: int = 3,
    window_s: float = 2.0,
    warmup_s: float = 0.5,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The probe-cost section: with and without the instrument, interleaved.

    Each round runs both variants, in alternating order (ABBA...), so that a
    drift of the machine's load over the run falls on both alike.
    """
    runs: dict[str, list[dict[str, Any]]] = {"harness": [], "unprobed": []}
    for round_ in range(repeats):
        order = ("harness", "unprobed") if round_ % 2 == 0 else ("unprobed", "harness")
        for server in order:
            progress(f"probe cost: round {round_ + 1}/{repeats}, {'with' if server == 'harness' else 'without'} "
                     f"the probe, {rate_per_s:,.0f} echoes/s offered")
            step = measure(server, rate_per_s, window_s=window_s, warmup_s=warmup_s)
            step["limited_by"] = limited_by(step)
            runs[server].append(step)

    def median(server: str, key: str) -> float | None:
        values = [r[key] for r in runs[server] if r[key] is not None]
        return statistics.median(values) if values else None

    with_rate, without_rate = median("harness", "answered_per_s"), median("unprobed", "answered_per_s")
    with_cpu, without_cpu = median("harness", "server_cpu_us_per_echo"), median("unprobed", "server_cpu_us_per_echo")
    # The capacity cost is measured only if every run was limited by the server.
    server_bound = all(r["limited_by"] == "server" for server in runs for r in runs[server])
    return {
        "offered_per_s": rate_per_s,
        "repeats": repeats,
        "window_s": window_s,
        "with_probe_per_s": with_rate,
        "without_probe_per_s": without_rate,
        "cost": round(1.0 - with_rate / without_rate, 4) if with_rate and without_rate else None,
        "with_probe_cpu_us_per_echo": with_cpu,
        "without_probe_cpu_us_per_echo": without_cpu,
        "cpu_cost": round(with_cpu / without_cpu - 1.0, 4) if with_cpu and without_cpu else None,
        "server_bound": server_bound,
        "limited_by": sorted({r["limited_by"] for server in runs for r in runs[server]}),
        "goal": PROBE_COST_GOAL,
        "runs": runs,
    }
