"""Where a matrix's wall time goes: in cells' warm-ups and windows, or around them."""

from __future__ import annotations

from typing import Any


def measured_s(rec: dict[str, Any]) -> float:
    """Seconds of a cell's run spent in its warm-up and window (0 when it measured nothing).

    Everything else of a cell's wall time (process start-up, imports,
    calibration lookup, teardown, writing the record) is its overhead.
    """
    timing = rec.get("timing")
    if not isinstance(timing, dict):
        return 0.0
    return float(timing.get("warmup_s") or 0.0) + float(timing.get("window_s") or 0.0)


def overhead_summary(wall_s: float, records: list[dict[str, Any]], *, at_once: int = 1) -> dict[str, Any]:
    """Where a matrix session's wall time went: in warm-ups and windows, or around them.

    Args:
        wall_s: The session's wall time.
        records: The records of the cells it ran.
        at_once: Cells measured side by side (``--parallel``); their
            warm-ups and windows overlap, so their sum is divided by it (an
            estimate: cells of different lengths overlap only in part).

    Returns:
        ``cells``, ``wall_s``, ``measured_s`` (warm-ups and windows),
        ``overhead_s`` (the rest), ``overhead_share`` (of ``wall_s``) and
        ``calibrate_s``: the part of the overhead spent looking up or
        measuring the workloads' calibrations (seconds where this machine
        had none yet, about nothing once it has).
    """
    measured = sum(measured_s(rec) for rec in records) / max(1, at_once)
    overhead = max(0.0, wall_s - measured)
    calibrate = sum(float((rec.get("timing") or {}).get("calibrate_s") or 0.0) for rec in records)
    return {
        "cells": len(records),
        "wall_s": round(wall_s, 3),
        "measured_s": round(measured, 3),
        "overhead_s": round(overhead, 3),
        "overhead_share": round(overhead / wall_s, 4) if wall_s > 0 else None,
        "calibrate_s": round(calibrate / max(1, at_once), 3),
    }


def total_overhead(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The :func:`overhead_summary` of a manifest's sessions, summed over those that recorded theirs.

    A resumed matrix has several sessions.
    """
    parts = [s["overhead"] for s in sessions if isinstance(s.get("overhead"), dict)]
    wall = sum(p["wall_s"] for p in parts)
    overhead = sum(p["overhead_s"] for p in parts)
    return {
        "sessions": len(parts),
        "cells": sum(p["cells"] for p in parts),
        "wall_s": round(wall, 3),
        "measured_s": round(sum(p["measured_s"] for p in parts), 3),
        "overhead_s": round(overhead, 3),
        "overhead_share": round(overhead / wall, 4) if wall > 0 else None,
        "calibrate_s": round(sum(float(p.get("calibrate_s") or 0.0) for p in parts), 3),
    }
