"""Checks and measurements of a user's function before any server starts.

A user's function (:mod:`workloads.functions`) fails in ways the built-in
workloads cannot: its module does not import, it raises, exits or never
returns, it cannot be loaded in a worker process. Each is found here, before
a server or a load process exists, and reported as one line that names the
function and the cause (exit 2). Every call is made in a process of its own
under a time limit (:mod:`wsblock.engine.contained`), never in the runner's.
A function without ``units`` is not calibrated: its trial call is timed
instead.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable

import workloads
from workloads import FunctionWorkload, Workload
from wsblock.engine import contained, reaper, strategies
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError

WORKER_CHECK_TIMEOUT_S = 120.0
"""How long loading the function in a fresh interpreter may take."""

_loadable: set[str] = set()
"""Functions already seen to load in a fresh interpreter (once per process)."""


def describe(workload: Workload) -> dict[str, Any] | None:
    """The record's description of a user's function, or ``None`` for a built-in workload."""
    if not isinstance(workload, FunctionWorkload):
        return None
    return {
        "name": workload.name,
        "qualified_name": workload.qualified_name,
        "calibrated": workload.calibrated,
        "generator": workload.generator,
    }


def calls(cell: CellConfig, units: int, whens: list[str], *, count: int | None = None,
          limit: float | None = None) -> list[float]:
    """Call the cell's function ``count`` times (default: one per name in ``whens``) in a child process.

    Args:
        cell: The cell (its workload and parameters).
        units: ``units`` of each call (1 for a function without them).
        whens: What each call is, for messages (the last one names the rest).
        count: Number of calls.
        limit: Seconds allowed for all of them (default: the trial limit).

    Returns:
        Each call's wall time in ms.

    Raises:
        UsageError: One line naming the function and what went wrong.
    """
    request = {"op": "calls", "name": cell.workload, "params": dict(cell.workload_params), "units": units,
               "count": len(whens) if count is None else count, "whens": whens,
               "pickled": strategies.has(cell.strategy, "out_of_process")}
    times = contained.call(request, name=cell.workload, when=whens[0], limit=limit)
    return [float(t) for t in times]


def trial(cell: CellConfig, progress: Callable[[str], None]) -> float:
    """Call a user's function twice in a child process; return the second call's ms.

    The first call pays imports and caches, and proves the function runs
    with the cell's parameters; the second is the job length the window is
    sized with.

    Raises:
        UsageError: If either call raises, exits or outlasts the trial limit.
    """
    progress(f"trial call of {cell.workload}")
    first, second = calls(cell, 1, ["on a trial call", "on a second trial call"])
    progress(f"{cell.workload}: trial call {first:.0f} ms, then {second:.0f} ms")
    return second


def calibrate(cell: CellConfig, progress: Callable[[str], None]) -> Any:
    """The calibration of a user's function with ``units``, measured (or read) in a child process.

    Raises:
        UsageError: If the function raises, exits or outlasts the trial limit.
    """
    from wsblock.engine import calibration

    found = contained.call({"op": "calibrate", "name": cell.workload, "params": dict(cell.workload_params),
                            "up_to_ms": cell.work_ms}, name=cell.workload, when="while calibrating",
                           progress=progress)
    return calibration.Calibration(**found)


def check_for_strategy(cell: CellConfig) -> None:
    """Check that a user's function can run the way the cell's strategy runs it.

    A calibrated function gets a trial call with one unit here (the
    calibration may be stored, and then nothing else would call it before
    the server does). For a strategy that runs jobs in other processes, the
    function must load in a fresh interpreter: workers look it up by its
    name (the function itself is never pickled), with the working directory
    and the environment of this process.

    Raises:
        UsageError: One line naming the function and the cause.
    """
    workload = workloads.get(cell.workload)
    if not isinstance(workload, FunctionWorkload):
        return
    if workload.calibrated:
        calls(cell, 1, ["on a trial call with units=1"])
    if not strategies.has(cell.strategy, "out_of_process") or cell.workload in _loadable:
        return
    from wsblock.engine.proc import child_environment, python_command

    code = ("import sys, workloads\n"
            "try:\n"
            "    workloads.lookup(sys.argv[1])\n"
            "except Exception as exc:\n"
            "    print(exc, file=sys.stderr); sys.exit(3)\n")
    try:
        done = subprocess.run(python_command("-c", code, cell.workload), env=child_environment(),
                              capture_output=True, text=True, timeout=WORKER_CHECK_TIMEOUT_S,
                              preexec_fn=reaper.die_with_me())
    except subprocess.TimeoutExpired:
        raise UsageError(f"{cell.workload}: loading it in a fresh interpreter took more than "
                         f"{WORKER_CHECK_TIMEOUT_S:g} s, so a process pool cannot run it") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        cause = lines[-1] if lines else f"exit {done.returncode}"
        raise UsageError(f"{cell.workload} cannot be loaded in a worker process ({cell.strategy}): {cause}")
    _loadable.add(cell.workload)


def preflight(cells: list[CellConfig], progress: Callable[[str], None]) -> None:
    """Check every user's function of a matrix before its first cell runs.

    One trial call per function and set of keyword arguments, and one load
    in a fresh interpreter per function that a process pool will run: a
    matrix never starts a server for a function that cannot work.

    Raises:
        UsageError: One line naming the first function that fails and the cause.
    """
    called: set[tuple[str, str]] = set()
    for cell in cells:
        if not isinstance(workloads.get(cell.workload), FunctionWorkload):
            continue
        key = (cell.workload, repr(sorted(cell.workload_params.items())))
        if key not in called:
            progress(f"trial call of {cell.workload}")
            calls(cell, 1, ["on a trial call"])
            called.add(key)
        check_for_strategy(cell)
    end_leftovers()


def end_leftovers() -> int:
    """End what the trial calls left running (:func:`wsblock.engine.reaper.end_strays`); warn if anything.

    Returns:
        How many processes were ended.
    """
    count = reaper.end_strays()
    if count:
        print(f"warning: ended {count} process{'es' if count != 1 else ''} that trial calls of a user's "
              f"function left running", file=sys.stderr, flush=True)
    return count
