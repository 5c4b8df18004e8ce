"""Stall fidelity: measured stall lengths against stalls of known length.

The stall server (:mod:`wsblock.selftest.stall_server`) blocks its loop with
``time.sleep`` for known lengths while the engine's load keeps observers
sending echoes; the heartbeat gaps the lag probe saw are the stalls the
watchdog reports. Each injected sleep is matched to the gap that contains it
(the loop cannot beat during a sleep, so at most one can), and its error is
the gap's length minus the sleep's own length, timed around the call: the
instrument is judged on what the loop really went through, not on how
exactly ``time.sleep`` keeps its promise (the oversleep is reported apart).
The error splits into a *lead* (from the loop's last beat to the sleep's
start: about one probe period, more if the process was not scheduled just
before) and a *tail* (from the sleep's end to the probe's next wake-up).

Goal: every injected stall longer than the stall threshold is detected, and
each measured length is within ``2 ms + 2 %`` of the injected one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

from wsblock.engine.config import CellConfig
from wsblock.errors import HarnessError

LENGTHS_MS = (5.0, 20.0, 100.0, 1000.0)
"""Injected stall lengths."""

STALL_MS = 2.0
"""Stall threshold of the fidelity run: below every injected length, so each must be seen."""

GAP_S = 0.3
"""Free loop time between two injected stalls."""

TOLERANCE_MS = 2.0
TOLERANCE_SHARE = 0.02
"""Goal: each measured stall within ``TOLERANCE_MS + TOLERANCE_SHARE`` x its length."""


def tolerance_ms(length_ms: float) -> float:
    """The allowed error of a stall of ``length_ms``."""
    return TOLERANCE_MS + TOLERANCE_SHARE * length_ms


@dataclass(frozen=True)
class Match:
    """One injected stall and what the instrument measured of it.

    Attributes:
        nominal_ms: The length asked of ``time.sleep``.
        injected_ms: How long the sleep really blocked the loop.
        measured_ms: The heartbeat gap containing it (``None``: not detected).
        lead_ms: Time from the gap's start to the sleep's (the loop's last
            beat came that long before the sleep began).
        tail_ms: Time from the sleep's end to the gap's end.
    """

    nominal_ms: float
    injected_ms: float
    measured_ms: float | None
    lead_ms: float | None = None
    tail_ms: float | None = None

    @property
    def error_ms(self) -> float | None:
        """Measured minus injected (positive: the stall read longer)."""
        return None if self.measured_ms is None else self.measured_ms - self.injected_ms

    @property
    def within(self) -> bool:
        """Detected, and within the goal's tolerance."""
        error = self.error_ms
        return error is not None and abs(error) <= tolerance_ms(self.injected_ms)


def match(injected: list[dict[str, float]], gaps: list[list[float]]) -> list[Match]:
    """Pair each injected sleep with the heartbeat gap that contains it.

    Args:
        injected: ``{"nominal_ms", "start", "end"}`` per sleep (monotonic s).
        gaps: ``[start, end]`` of every heartbeat gap over the threshold.

    Returns:
        One :class:`Match` per injected sleep, in order.
    """
    out = []
    for sleep in injected:
        found = [g for g in gaps if g[0] <= sleep["start"] and g[1] >= sleep["end"]]
        gap = found[0] if found else None
        out.append(Match(
            sleep["nominal_ms"], (sleep["end"] - sleep["start"]) * 1000.0,
            None if gap is None else (gap[1] - gap[0]) * 1000.0,
            None if gap is None else (sleep["start"] - gap[0]) * 1000.0,
            None if gap is None else (gap[1] - sleep["end"]) * 1000.0,
        ))
    return out


def summarize(matches: list[Match], gaps: list[list[float]], stall_ms: float) -> dict[str, Any]:
    """The fidelity section of the selftest record.

    Args:
        matches: From :func:`match`.
        gaps: Every heartbeat gap of the run (the unmatched ones are the
            loop's own stalls, counted as ``other_stalls``).
        stall_ms: The stall threshold of the run.
    """
    by_length: dict[float, list[Match]] = {}
    for m in matches:
        by_length.setdefault(m.nominal_ms, []).append(m)
    rows = []
    for nominal, group in sorted(by_length.items()):
        errors = [m.error_ms for m in group if m.error_ms is not None]
        rows.append({
            "nominal_ms": nominal,
            "n": len(group),
            "detected": len(errors),
            "injected_ms_median": round(statistics.median(m.injected_ms for m in group), 3),
            "oversleep_ms_max": round(max(m.injected_ms - nominal for m in group), 3),
            "error_ms_median": round(statistics.median(errors), 3) if errors else None,
            "error_ms_max_abs": round(max(abs(e) for e in errors), 3) if errors else None,
            "lead_ms_max": _max_of(m.lead_ms for m in group),
            "tail_ms_max": _max_of(m.tail_ms for m in group),
            "tolerance_ms": round(tolerance_ms(nominal), 3),
            "within": sum(1 for m in group if m.within),
        })
    above = [m for m in matches if m.injected_ms > stall_ms]
    worst = max((abs(m.error_ms) - tolerance_ms(m.injected_ms) for m in matches if m.error_ms is not None),
                default=None)
    return {
        "stall_ms": stall_ms,
        "injected": len(matches),
        "above_threshold": len(above),
        "detected": sum(1 for m in above if m.measured_ms is not None),
        "within_tolerance": sum(1 for m in matches if m.within),
        "worst_excess_ms": None if worst is None else round(worst, 3),
        "other_stalls": len(gaps) - sum(1 for m in matches if m.measured_ms is not None),
        "by_length": rows,
        "stalls": [{"nominal_ms": m.nominal_ms, "injected_ms": round(m.injected_ms, 3),
                    "measured_ms": _round(m.measured_ms), "lead_ms": _round(m.lead_ms),
                    "tail_ms": _round(m.tail_ms)}
                   for m in matches],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _max_of(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return round(max(present), 3) if present else None


def run(
    *,
    lengths_ms: tuple[float, ...] = LENGTHS_MS,
    repeats: int = 3,
    gap_s: float = GAP_S,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Inject stalls into a real server's loop under load; compare measured with injected.

    Args:
        lengths_ms: Stall lengths, injected in this order each round.
        repeats: Rounds.
        gap_s: Free loop time between two stalls.
        progress: Receives progress messages.

    Returns:
        The fidelity section of the record (:func:`summarize`).
    """
    from wsblock.engine.runner import run_processes, size_work

    injected_s = repeats * (sum(lengths_ms) / 1000.0 + len(lengths_ms) * gap_s)
    # blocking_io x inline with no job connection: the server does no work
    # but what is injected; four observers keep its loop serving echoes.
    cell = CellConfig("blocking_io", 1.0, "inline", job_connections=0, observers=4,
                      warmup=0.5, duration=round(injected_s + 2 * gap_s + 0.5, 3),
                      stall_ms=STALL_MS).validate()
    progress(f"stall fidelity: {repeats} x {', '.join(f'{x:g}' for x in lengths_ms)} ms injected, "
             f"window {cell.duration:g} s")
    work = size_work(cell)
    measured = run_processes(cell, work, float(cell.duration or 0.0),
                             server_module="wsblock.selftest.stall_server",
                             server_args=(",".join(f"{x:g}" for x in lengths_ms), str(repeats), f"{gap_s:g}"))
    seen = measured.server.get("selftest")
    if not isinstance(seen, dict):
        raise HarnessError("the stall server wrote its measurements without the injected stalls")
    matches = match(seen["injected"], seen["gaps"])
    return summarize(matches, seen["gaps"], cell.stall_ms)
