"""The selftest run: measure the instrument, judge the goals, build the record (``wsblock selftest``).

The record (``kind`` ``wsblock.selftest``) holds each part's figures, the
goals with their verdicts, the settings, and the environment
(:func:`wsblock.engine.meta.environment`). The command that prints the table and
writes the record is :mod:`wsblock.commands.selftest`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

KIND = "wsblock.selftest"
SCHEMA_VERSION = 1
PARTS = ("fidelity", "probe", "capacity")


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the parts that ran, each with its value and verdict.

    A goal whose value could not be measured has ``passed`` ``None``.
    """
    out: list[dict[str, Any]] = []
    fid = result.get("fidelity")
    if fid:
        out.append({"goal": "stalls above the threshold detected", "target": "all",
                    "value": f"{fid['detected']} of {fid['above_threshold']}",
                    "passed": fid["detected"] == fid["above_threshold"]})
        out.append({"goal": "stall length error", "target": "within 2 ms + 2 %",
                    "value": f"{fid['within_tolerance']} of {fid['injected']} within" + _worst(fid["worst_excess_ms"]),
                    "passed": fid["within_tolerance"] == fid["injected"]})
    probe = result.get("probe")
    if probe:
        cost = probe["cost"]
        measurable = cost is not None and probe["server_bound"]
        if measurable:
            value = f"{cost:+.1%} ({probe['with_probe_per_s']:,.0f} vs {probe['without_probe_per_s']:,.0f} echoes/s)"
        else:
            value = (f"not measured: at {probe['offered_per_s']:,.0f}/s offered the runs were limited by "
                     f"{' and '.join(probe['limited_by'])}, not by the server alone")
        out.append({"goal": "probe cost, echo capacity", "target": f"at most {probe['goal']:.0%}",
                    "value": value, "passed": cost <= probe["goal"] if measurable else None})
        cpu = probe["cpu_cost"]
        out.append({"goal": "probe cost, server CPU per echo", "target": "reported",
                    "value": "n/a" if cpu is None else
                    f"{cpu:+.1%} ({probe['with_probe_cpu_us_per_echo']:.1f} vs "
                    f"{probe['without_probe_cpu_us_per_echo']:.1f} us)",
                    "passed": None})
    cap = result.get("capacity")
    if cap:
        ratio = cap["ratio"]
        out.append({"goal": "harness server vs bare server", "target": f"at least {cap['goal']:.0%}",
                    "value": "n/a" if ratio is None else
                    f"{ratio:.1%} ({cap['harness_per_s']:,.0f} vs {cap['bare_per_s']:,.0f} echoes/s)",
                    "passed": None if ratio is None else ratio >= cap["goal"]})
        sat = cap["load_saturates_at_per_s"]
        out.append({"goal": "one load process saturates at", "target": "reported",
                    "value": f"{sat:,.0f} echoes/s offered" if sat else
                    f"not within the sweep (up to {max(s['rate_per_s'] for s in cap['steps']):,.0f}/s)",
                    "passed": None})
    return out


def _worst(excess_ms: float | None) -> str:
    if excess_ms is None:
        return ""
    if excess_ms > 0:
        return f"; the worst {excess_ms:.2f} ms beyond its tolerance"
    return f"; the worst {-excess_ms:.2f} ms inside its tolerance"


def table(rows: list[dict[str, Any]]) -> str:
    """The goals as a plain text table."""
    verdict = {True: "pass", False: "FAIL", None: "-"}
    lines = [f"{'goal':<34} {'target':<20} {'result':<6} value"]
    for row in rows:
        lines.append(f"{row['goal']:<34} {row['target']:<20} {verdict[row['passed']]:<6} {row['value']}")
    return "\n".join(lines)


def run_selftest(
    parts: tuple[str, ...] = PARTS,
    *,
    repeats: int = 3,
    window_s: float = 2.0,
    lengths_ms: tuple[float, ...] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the chosen parts and return the selftest record.

    Args:
        parts: Any of :data:`PARTS`.
        repeats: Rounds of injected stalls; runs of each probe variant.
        window_s: Window of each capacity and probe-cost step.
        lengths_ms: Injected stall lengths (default
            :data:`wsblock.selftest.fidelity.LENGTHS_MS`).
        progress: Receives progress messages.
    """
    from wsblock.engine import meta
    from wsblock.selftest import capacity, fidelity

    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"parts": list(parts), "repeats": repeats, "window_s": window_s},
        "environment": meta.environment(),
    }
    if "fidelity" in parts:
        result["fidelity"] = fidelity.run(lengths_ms=lengths_ms or fidelity.LENGTHS_MS, repeats=repeats,
                                          progress=progress)
    if "capacity" in parts:
        result["capacity"] = capacity.sweep(window_s=window_s, progress=progress)
    if "probe" in parts:
        # The capacity cost shows only where the server is the limit: the
        # lowest rate of the sweep at which the harness's server was, else
        # the sweep's top rate.
        steps = (result.get("capacity") or {}).get("steps") or []
        bound = [s["rate_per_s"] for s in steps if s["server"] == "harness" and s["limited_by"] == "server"]
        top = bound[0] if bound else max((s["rate_per_s"] for s in steps), default=capacity.RATES_PER_S[-1])
        result["probe"] = capacity.probe_cost(rate_per_s=top, repeats=repeats, window_s=window_s,
                                              progress=progress)
    result["goals"] = goals(result)
    result["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result
