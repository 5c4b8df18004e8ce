"""How long a cell takes: its warm-up and window plus the overhead measured on this machine.

A cell's wall time is its warm-up and window, which the matrix fixes (or the
sizing rule chooses), plus its overhead: interpreter start, imports, process
start-up, pool warm-up, teardown. The overhead depends on the machine and on
the cell: a job that keeps the server from running Python and cannot be
interrupted at the window's end (a C call that never releases the GIL,
inline or in a thread; a user's function inline) must end before the server
can write its measurements, so such a cell also waits, after its window, for
the rest of the job in flight.

Every matrix remembers, in the cache directory (``overhead.json``, per
machine like the calibration), the overhead its cells really had, by
strategy, workload and job length; estimates use the median of the last
:data:`KEPT_PER_KEY` such cells, then (where the job's length does not
matter) of the same strategy and workload, and only where this machine has
measured none the defaults below. Only serial local runs are remembered:
cells side by side or on other hosts have other overheads.

A matrix's time plan (:class:`Plan`, :func:`plan_of`) adds up its cells'
estimates; a matrix beyond :data:`MAX_CELLS` cells or :data:`MAX_HOURS`
hours runs only when asked twice (:func:`check_size`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from wsblock import atomic, inputs, paths
from wsblock.durations import format_duration
from wsblock.errors import UsageError
from wsblock.matrix.spec import Matrix, PlannedCell

HISTORY_FILE = "overhead.json"
"""The per-machine record of measured overheads, in the cache directory."""

HISTORY_VERSION = 1

KEPT_PER_KEY = 12
"""Cells remembered per strategy and workload (the most recent)."""

DEFAULT_OVERHEAD_S = 0.6
"""A cell's overhead without a job to wait for, on a machine that has measured none.

Measured on the 2-core development machine (the ``quick`` profile): 0.4 to
0.8 s per cell (0.5 on average), most of it the server's and load's start-up.
"""

LOOP_HOLDING_GIL = ("held for the whole call",)
"""Starts of ``Workload.gil`` for work that keeps a thread's event loop from running."""


def holds_loop(cell: Any) -> bool:
    """Whether a job in flight when the window ends keeps the server from stopping.

    A job that never releases the GIL, inline or in a thread, keeps every
    thread of the server from running until it ends, and it cannot be
    interrupted; nor is a user's function run inline (see
    :mod:`wsblock.engine.cutoff`). Other inline jobs are interrupted at the
    window's end, and a pool job not begun by then is not begun.
    """
    if cell.strategy not in ("inline", "thread"):
        return False
    import workloads

    try:
        workload = workloads.get(cell.workload)
    except Exception:  # noqa: BLE001 - an unknown workload fails its own validation
        return False
    if cell.strategy == "inline" and isinstance(workload, workloads.FunctionWorkload):
        return True
    return workload.gil.startswith(LOOP_HOLDING_GIL)


def default_overhead_s(cell: Any) -> float:
    """Overhead of ``cell`` without any measurement of this machine.

    :data:`DEFAULT_OVERHEAD_S`, plus, for a job that holds the loop, what
    the server waits for after the window: the rest of the job in flight
    (half a job on average).
    """
    job_s = (cell.work_ms or 0.0) / 1000.0
    if not holds_loop(cell):
        return DEFAULT_OVERHEAD_S
    return DEFAULT_OVERHEAD_S + job_s / 2


def _key(cell: Any) -> str:
    return f"{cell.strategy}/{cell.workload}/{cell.work_ms:g}" if cell.work_ms is not None \
        else f"{cell.strategy}/{cell.workload}/-"


class History:
    """The overheads measured on this machine, by strategy, workload and job length.

    Args:
        path: The history file; default: ``overhead.json`` in the cache directory.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.cells: dict[str, list[float]] = {}
        self.path: Path | None = path
        try:
            if self.path is None:
                self.path = paths.cache_dir() / HISTORY_FILE
            data = inputs.read_json(self.path, "overhead history")
        except (OSError, UsageError):
            return  # none yet, or unreadable: estimates fall back to the defaults
        if isinstance(data, dict) and data.get("version") == HISTORY_VERSION and isinstance(data.get("cells"), dict):
            for key, values in data["cells"].items():
                if isinstance(values, list):
                    kept = [float(v) for v in values if isinstance(v, (int, float)) and v >= 0]
                    if kept:
                        self.cells[str(key)] = kept[-KEPT_PER_KEY:]

    def overhead_s(self, cell: Any) -> tuple[float, bool]:
        """Estimated overhead of ``cell`` and whether it rests on this machine's measurements."""
        key = _key(cell)
        if key in self.cells:
            return statistics.median(self.cells[key]), True
        prefix = f"{cell.strategy}/{cell.workload}/"
        same = [v for k, values in self.cells.items() if k.startswith(prefix) for v in values]
        if same and not holds_loop(cell):
            # The job's length matters only where the server waits for it.
            return statistics.median(same), True
        return default_overhead_s(cell), False

    def add(self, cell: Any, overhead_s: float) -> None:
        """Remember one cell's measured overhead (seconds)."""
        values = self.cells.setdefault(_key(cell), [])
        values.append(round(float(overhead_s), 3))
        del values[:-KEPT_PER_KEY]

    def save(self) -> None:
        """Write the history atomically (a failure to write is not an error of the run)."""
        if self.path is None:
            return  # no usable cache directory
        try:
            atomic.write_json(self.path, {"version": HISTORY_VERSION, "cells": self.cells})
        except OSError:
            pass


def measured_overheads(records: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """``(params, overhead_s)`` of the good records of a serial local run."""
    found = []
    for rec in records:
        tag = rec.get("matrix") or {}
        if (rec.get("status") == "ok" and tag.get("host") is None and tag.get("parallel", 1) == 1
                and isinstance(tag.get("overhead_s"), (int, float))):
            found.append((rec.get("params") or {}, float(tag["overhead_s"])))
    return found


def remember_overheads(history: History, records: list[dict[str, Any]]) -> None:
    """Add the measured overheads of a serial run's good records to this machine's history."""
    from wsblock.engine.config import CellConfig

    found = measured_overheads(records)
    for params, overhead in found:
        try:
            cell = CellConfig.from_dict(params)
        except Exception:  # noqa: BLE001 - a record this version cannot read teaches nothing
            continue
        history.add(cell, overhead)
    if found:
        history.save()


MAX_CELLS = 2000
"""Largest matrix run without ``--yes``."""

MAX_HOURS = 24.0
"""Longest estimated run without ``--yes``."""


@dataclass
class Plan:
    """Which planned cells still need a run.

    Attributes:
        todo: Cells without a good record.
        reused: Count of cells with a good record.
        estimate_s: Estimated seconds to run ``todo``, one after another.
        measured_s: The part of it in warm-ups and windows.
        from_history: Cells of ``todo`` whose overhead this machine has
            measured before (the others take
            :func:`default_overhead_s`).
    """

    todo: list[PlannedCell]
    reused: int
    estimate_s: float
    measured_s: float = 0.0
    from_history: int = 0

    def describe(self, at_once: int = 1) -> str:
        """``about 3 min 25 s (... of warm-ups and windows, ... of overhead ...)``, for ``at_once`` cells at a time."""
        at_once = max(1, min(at_once, len(self.todo)))
        overhead = self.estimate_s - self.measured_s
        source = ("as measured on this machine" if self.from_history == len(self.todo)
                  else "the defaults: not measured on this machine yet" if not self.from_history
                  else f"measured on this machine for {self.from_history} of {len(self.todo)} cells")
        split = f", {at_once} at a time" if at_once > 1 else ""
        return (f"about {format_duration(self.estimate_s / at_once)} ({format_duration(self.measured_s)} of "
                f"warm-ups and windows and {format_duration(overhead)} of overhead, {source}{split})")


def cell_parts_s(planned: PlannedCell, history: History) -> tuple[float, float, bool]:
    """A cell's warm-up and window, its overhead, and whether that was measured on this machine."""
    from wsblock.engine.runner import plan_window

    c = planned.cell
    overhead, measured = history.overhead_s(c)
    return c.warmup + plan_window(c, None).duration_s, overhead, measured


def cell_estimate_s(planned: PlannedCell, history: History | None = None) -> float:
    """Seconds one cell takes: its warm-up and window, and its overhead on this machine.

    Args:
        planned: The cell.
        history: The overheads measured on this machine
            (:class:`History`); read from the cache directory when
            not given.
    """
    inside, overhead, _ = cell_parts_s(planned, history or History())
    return inside + overhead


def plan_of(matrix: Matrix, todo: list[PlannedCell] | None = None) -> Plan:
    """The time plan of ``todo`` (default: every cell of ``matrix``), with this machine's overheads."""
    todo = list(matrix.cells) if todo is None else todo
    history = History()
    parts = [cell_parts_s(p, history) for p in todo]
    return Plan(todo=todo, reused=len(matrix.cells) - len(todo),
                estimate_s=sum(inside + overhead for inside, overhead, _ in parts),
                measured_s=sum(inside for inside, _, _ in parts),
                from_history=sum(known for _, _, known in parts))


def check_size(matrix: Matrix, plan: Plan) -> None:
    """Refuse a matrix beyond :data:`MAX_CELLS` cells or :data:`MAX_HOURS` hours.

    Raises:
        UsageError: Naming the size; ``--yes`` runs it anyway.
    """
    if len(matrix.cells) > MAX_CELLS:
        raise UsageError(f"the matrix has {len(matrix.cells)} cells, more than {MAX_CELLS}; "
                         f"add --yes to run it anyway")
    if plan.estimate_s > MAX_HOURS * 3600:
        raise UsageError(f"the matrix would run for about {format_duration(plan.estimate_s)}, "
                         f"more than {MAX_HOURS:g} h; add --yes to run it anyway")
