"""Run a matrix: every cell in fresh processes, one at a time, resumable.

Each cell runs as its own ``wsblock run`` process (which starts its own server
and load processes), so no state leaks from one cell into the next, and cells
never overlap: on a small machine they would measure each other. Records are
written atomically to ``DIR/cells/<cell_id>.json`` as cells finish, so a
killed matrix loses at most the cell in flight; running the same command
again skips every cell that already has a good record (failed cells are tried
again).

Repeats are interleaved, as asv interleaves its rounds: the matrix runs
every cell's first repeat, then every cell's second, and so on. The repeats
of a cell are then minutes apart and sample the machine in different states,
so a busy spell on a shared machine shows up as spread within a cell (which
the intervals and the change test see) rather than as a shift of every
repeat of a few cells (which they would take for a difference).

A record is reused only if it belongs to the planned matrix: its file is
named after a planned cell and its parameters equal that cell's. Any other
file in ``DIR/cells`` (another matrix's record, a damaged file) stops the run
before anything is written: it would otherwise be counted, tabulated and
reported as if it had been measured for this matrix. Records are read by
the one reader of run directories (:mod:`wsblock.schema.rundir`): bounded,
checked by type, so a record whose numbers are text is never reused.

A run directory has one writer: the run holds an exclusive lock on
``DIR/.lock`` (:func:`wsblock.schema.rundir.lock`), and a second matrix on
the same directory is refused, naming the process that holds it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from wsblock import atomic, meta
from wsblock.schema import record, rundir
from wsblock.schema.rundir import CELLS, CSV_NAME, MANIFEST, MANIFEST_KIND, MANIFEST_VERSION
from wsblock.errors import HarnessError, UsageError
from wsblock.matrix import estimate
from wsblock.matrix.cores import core_slots
from wsblock.matrix.parallel import run_parallel
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.matrix.cellproc import CellProcess

MAX_CELLS = 2000
"""Largest matrix run without ``--yes``."""

MAX_HOURS = 24.0
"""Longest estimated run without ``--yes``."""



@dataclass
class MatrixOutcome:
    """What a matrix run did.

    Attributes:
        ran: Cells measured in this run.
        reused: Cells that already had a record.
        failed: Cells that failed in this run.
        skipped: Unsupported pairs, not run.
        directory: The output directory.
        not_ok: Planned cells whose record says ``failed`` at the end.
        missing: Planned cells with no record at the end (a record that
            vanished, or a cell never run).
        overhead: This session's :func:`overhead_summary`.
    """

    ran: int
    reused: int
    failed: int
    skipped: int
    directory: Path
    not_ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    overhead: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every planned cell has an ``ok`` record."""
        return not self.not_ok and not self.missing


@dataclass
class Plan:
    """Which planned cells still need a run.

    Attributes:
        todo: Cells without a good record.
        reused: Count of cells with a good record.
        estimate_s: Estimated seconds to run ``todo``, one after another.
        measured_s: The part of it in warm-ups and windows.
        from_history: Cells of ``todo`` whose overhead this machine has
            measured before (the others take the defaults of
            :mod:`wsblock.matrix.estimate`).
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_timeout(planned: PlannedCell) -> float:
    """Hard limit for one cell's process, in seconds.

    Generous: the first cell of a workload also calibrates it and may generate
    input data.
    """
    c = planned.cell
    job_ms = c.work_ms if c.work_ms is not None else UNMEASURED_JOB_BOUND_MS
    return 240.0 + 3 * (c.warmup + _window_bound(c)) + 8 * job_ms / 1000.0


UNMEASURED_JOB_BOUND_MS = 60_000.0
"""A job of a function called once per job is not known before its cell
measures it: its cell's time limit assumes at most this long."""


def _window_bound(cell: Any) -> float:
    # A cell without a duration gets a window sized at run time, at most this.
    return cell.max_window if cell.duration is None else cell.duration


def expected_params(planned: PlannedCell) -> dict[str, Any]:
    """The ``params`` a record of ``planned`` carries, as JSON gives them back."""
    return json.loads(json.dumps(planned.cell.to_dict()))


LEGACY_MAX_WINDOW_S = 120.0
"""The longest sized window before cells had a ``max_window``."""


def params_difference(params: Any, planned: PlannedCell, window: Any = None) -> str | None:
    """Say how a record's ``params`` differ from the planned cell's, or ``None``.

    Every parameter of the planned cell must be present and equal, except
    ``max_window``, which only bounds a sized window: it is ignored when the
    cell gives its ``duration``, and a record made under another maximum
    (or before the setting existed, at 120 s) is the planned cell's when its
    window was not cut and fits the planned maximum (``window``: the
    record's ``window`` section), since it is then the window the planned
    cell would have had.
    """
    if not isinstance(params, dict):
        return "no params"
    for key, want in expected_params(planned).items():
        if key == "max_window":
            difference = _max_window_difference(params, planned, window)
            if difference:
                return difference
            continue
        if key not in params:
            return f"{key} missing"
        if params[key] != want:
            return f"{key} is {params[key]!r}, the matrix has {want!r}"
    return None


def _max_window_difference(params: dict[str, Any], planned: PlannedCell, window: Any) -> str | None:
    want = planned.cell.max_window
    if planned.cell.duration is not None:
        return None
    if not isinstance(window, dict) or not window:
        return None  # no window measured (a failed attempt): the cell runs again whatever its maximum
    had = params.get("max_window", window.get("max_s", LEGACY_MAX_WINDOW_S))
    if had == want:
        return None
    duration = window.get("duration_s")
    if window.get("bounded") is False and isinstance(duration, (int, float)) and duration <= want:
        return None
    return f"max_window is {had!r}, the matrix has {want!r} (and the record's window was cut or does not fit)"


def read_record(path: Path, planned: PlannedCell) -> tuple[str, dict[str, Any] | None]:
    """Classify the file a planned cell's record would be in.

    Returns:
        ``("missing", None)``, ``("ok", record)``, ``("failed", record)``
        (a failed attempt at this very cell), or ``(reason, None)`` when the
        file is not a readable record of this cell: ``"damaged: ..."`` or
        ``"foreign: ..."``.
    """
    if not os.path.lexists(path):
        return "missing", None
    try:
        data = rundir.read_record(path)
    except ValueError as exc:
        return f"damaged: {exc}", None
    difference = params_difference(data.get("params"), planned, data.get("window"))
    if difference:
        return f"foreign: {difference}", None
    tag = data.get("matrix")
    if isinstance(tag, dict) and (tag.get("cell_id"), tag.get("repeat")) != (planned.cell_id, planned.repeat):
        return f"foreign: recorded as {tag.get('cell_id')} repeat {tag.get('repeat')}", None
    return ("ok" if record.is_ok(data) else "failed"), data


def existing_record(path: Path, planned: PlannedCell) -> dict[str, Any] | None:
    """Return the good (status ok) record of ``planned`` at ``path``, else ``None``."""
    status, data = read_record(path, planned)
    return data if status == "ok" else None


def cell_parts_s(planned: PlannedCell, history: estimate.History) -> tuple[float, float, bool]:
    """A cell's warm-up and window, its overhead, and whether that was measured on this machine."""
    from wsblock.engine.runner import plan_window

    c = planned.cell
    overhead, measured = history.overhead_s(c)
    return c.warmup + plan_window(c, None).duration_s, overhead, measured


def cell_estimate_s(planned: PlannedCell, history: estimate.History | None = None) -> float:
    """Seconds one cell takes: its warm-up and window, and its overhead on this machine.

    Args:
        planned: The cell.
        history: The overheads measured on this machine
            (:class:`wsblock.matrix.estimate.History`); read from the cache
            directory when not given.
    """
    inside, overhead, _ = cell_parts_s(planned, history or estimate.History())
    return inside + overhead


def plan_of(matrix: Matrix, todo: list[PlannedCell] | None = None) -> Plan:
    """The time plan of ``todo`` (default: every cell of ``matrix``), with this machine's overheads."""
    todo = list(matrix.cells) if todo is None else todo
    history = estimate.History()
    parts = [cell_parts_s(p, history) for p in todo]
    return Plan(todo=todo, reused=len(matrix.cells) - len(todo),
                estimate_s=sum(inside + overhead for inside, overhead, _ in parts),
                measured_s=sum(inside for inside, _, _ in parts),
                from_history=sum(known for _, _, known in parts))


def check_directory(matrix: Matrix, directory: Path, *, writing: bool = True) -> Plan:
    """Check that ``directory`` holds nothing but this matrix, and plan the run.

    Writes nothing.

    Args:
        matrix: The matrix.
        directory: The run directory (it may not exist yet).
        writing: The run will write there: refuse a directory another
            process is writing (``False``: only to say what is recorded).

    Raises:
        UsageError: If ``directory`` holds a different matrix, a file in
            ``DIR/cells`` that is not a record of a planned cell (naming
            it), something other than a file where the table goes, or is
            being written by another process.
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {directory} exists and is not a directory")
    if writing:
        held = rundir.holder(directory)
        if held is not None:
            raise UsageError(f"{directory} is being written by another wsblock process ({held}); "
                             f"wait for it to end or choose another --out")
    for name, kind in ((CELLS, "a directory"), (CSV_NAME, "a regular file"), (rundir.LOCK_NAME, "a regular file")):
        place = directory / name
        if name != CSV_NAME and place.is_symlink():
            # Records and the lock are written inside: never through a link to elsewhere.
            raise UsageError(f"{place} is a symbolic link; move it away or choose another --out")
        if os.path.lexists(place) and not (place.is_dir() if name == CELLS else place.is_file()):
            raise UsageError(f"{place} exists and is not {kind}; move it away or choose another --out")
    previous, _ = _read_manifest(directory / MANIFEST)
    if previous and _axes(previous.get("config") or {}) != _axes(matrix.definition):
        raise UsageError(f"{directory} holds a different matrix; choose another --out")
    cells_dir = directory / CELLS
    planned_by_name = {f"{p.cell_id}.json": p for p in matrix.cells}
    problems: list[str] = []
    todo: list[PlannedCell] = []
    if cells_dir.is_dir():
        for path in sorted(cells_dir.iterdir()):
            if path.name.startswith(".") or path.name in planned_by_name:
                continue  # hidden: an atomic write cut short, never read
            problems.append(f"{path}: not a cell of this matrix")
    for planned in matrix.cells:
        path = cells_dir / f"{planned.cell_id}.json"
        status, _ = read_record(path, planned)
        if status.startswith(("foreign", "damaged")):
            problems.append(f"{path}: {status}")
        elif status != "ok":
            todo.append(planned)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(
            f"{problems[0]}{more}; records that do not belong to this matrix are never counted: "
            f"move them away or choose another --out"
        )
    return plan_of(matrix, todo)


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


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min``, ``3 min 25 s``, ``40 s``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def measure_one(planned: PlannedCell, cores: list[int] | None = None, *, parallel: int = 1,
                process: CellProcess | None = None,
                on_measured: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one cell in a fresh ``wsblock run`` process and return its record.

    Args:
        planned: The cell.
        cores: Cores to pin the cell's processes to (``None``: not pinned).
        parallel: Cells of the run at once, recorded with the record.
        process: The cell's process, started ahead in standby
            (:class:`~wsblock.matrix.cellproc.CellProcess`); given its turn
            here. ``None``: started here.
        on_measured: Called (in this thread) once the cell's measurements
            are in hand, while its processes are still being ended.

    Returns:
        The record (``status`` ``ok`` or ``failed``), tagged with the cell id,
        repeat, wall time (from its turn) and overhead, cores, parallelism,
        and whether its process was started ahead.
    """
    began = time.monotonic()
    prestarted = process is not None
    if process is None:
        process = CellProcess(planned, cores)
    else:
        process.go()
    try:
        code = process.wait(cell_timeout(planned), on_measured)
        if code is None:
            process.terminate(60.0)  # the cell stops its own processes
            error: str | None = f"timed out after {cell_timeout(planned):.0f} s"
        else:
            error = None if code == 0 else _error_line(process.stderr_text())
        rec = None
        if error is None or code == 1:
            # A cell that ran but measured nothing writes a whole record with
            # status "failed" and exits 1: keep it, it says what happened.
            rec = process.record()
            if rec is None and error is None:
                error = "the cell wrote no record"
            elif rec is not None and error is not None and rec.get("status") == "failed":
                error = None
        if error is not None:
            rec = record.failed(params=planned.cell.to_dict(), error=error, exit_code=process.proc.returncode,
                                stderr_tail=process.stderr_text().strip().splitlines()[-20:],
                                meta=meta.environment())
    except BaseException:
        # Interrupted: the cell stops its own processes quickly; the
        # command's handler then checks that they are gone.
        process.terminate(10.0)
        raise
    finally:
        process.close()
    assert rec is not None
    wall = time.monotonic() - began
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat, "wall_s": round(wall, 3),
                     "overhead_s": round(wall - measured_s(rec), 3), "parallel": parallel, "cores": cores,
                     "prestarted": prestarted}
    return rec


def run_serial(todo: list[PlannedCell], finish: Callable[[PlannedCell, dict[str, Any]], None], *,
               started: Callable[[PlannedCell], None] | None = None) -> None:
    """Run cells one after another, each one's process started ahead during the teardown of the one before.

    The next cell's ``wsblock run`` process is started once the running cell
    has its measurements in hand, and waits (importing, then idle) until the
    running cell's processes have ended and its record is written; see
    :mod:`wsblock.matrix.cellproc`.

    Args:
        todo: The cells, in order.
        finish: Called with each cell and its record, before the next one's turn.
        started: Called with each cell when its turn comes.
    """
    ahead: list[CellProcess] = []
    try:
        for index, planned in enumerate(todo):
            following = todo[index + 1] if index + 1 < len(todo) else None

            def start_next(following: PlannedCell | None = following) -> None:
                if following is not None:
                    ahead.append(CellProcess(following, standby=True))

            process = ahead.pop() if ahead else None
            if started is not None:
                started(planned)
            finish(planned, measure_one(planned, process=process, on_measured=start_next))
    finally:
        for process in ahead:
            process.cancel()


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


def run_one(planned: PlannedCell, out: Path) -> dict[str, Any]:
    """Run one cell (see :func:`measure_one`) and write its record to ``out``."""
    rec = measure_one(planned)
    atomic.write_json(out, rec)
    return rec


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    for line in lines:
        if line.startswith("error: "):
            return line
    return lines[-1] if lines else "no message"


def _read_manifest(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(manifest, None)``, ``(None, None)`` if there is none, ``(None, reason)`` if damaged."""
    return rundir.read_manifest(path.parent)


def _manifest(matrix: Matrix, command: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "schema_version": MANIFEST_VERSION,
        "kind": MANIFEST_KIND,
        "profile": matrix.source if "/" not in matrix.source and not matrix.source.endswith(".toml") else None,
        "config_path": matrix.source if matrix.source.endswith(".toml") else None,
        "config": matrix.definition,
        "command": command,
        "started_utc": previous["started_utc"] if previous else _now(),
        "finished_utc": None,
        "sessions": (previous or {}).get("sessions", []) + [{"started_utc": _now(), "command": command}],
        "environment": meta.environment(),
        "planned": len(matrix.cells),
        "skipped": [{"params": cell.to_dict(), "reason": reason} for cell, reason in matrix.skipped],
        # Which records belong to this run: every planned cell, by a digest of its params.
        **rundir.planned_entries([(p.cell_id, expected_params(p)) for p in matrix.cells]),
    }


def _identity(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


class _Guard:
    """Detects an output directory removed or replaced during the run.

    Writes recreate missing parents (``atomic.write_json``), which would
    hide the loss of every record already written.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.watched = [directory, directory / CELLS]
        self.ids = [_identity(p) for p in self.watched]

    def intact(self) -> bool:
        return [_identity(p) for p in self.watched] == self.ids

    def check(self, what: str) -> None:
        if not self.intact():
            raise HarnessError(f"{self.directory} was removed or replaced during the run; {what}")


def run_matrix(
    matrix: Matrix,
    directory: Path,
    *,
    command: str,
    show_progress: bool = True,
    after_cell: Callable[[PlannedCell, dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
    parallel: int = 1,
    dask: str | None = None,
) -> MatrixOutcome:
    """Run every cell of ``matrix`` that has no good record in ``directory``.

    Args:
        matrix: The validated matrix.
        directory: Output directory (created if missing).
        command: The command line, stored in the manifest.
        show_progress: Show progress on stderr: a bar on a terminal, else one
            line per finished cell (see :class:`Progress`).
        after_cell: Called after each cell that ran, with its record.
        say: Receives one-line notices (a damaged manifest kept aside);
            default: stderr.
        parallel: Cells at once, each pinned to cores of its own
            (:mod:`wsblock.matrix.parallel`); 1 runs them one after another.
        dask: Address of a Dask scheduler whose workers measure the cells
            (:mod:`wsblock.matrix.cluster`); records still go to ``directory``.

    Returns:
        Counts of what happened, and the planned cells without an ``ok``
        record at the end.

    Raises:
        UsageError: If ``directory`` holds a different matrix or a record
            that does not belong to this one, or if the cores cannot give
            ``parallel`` cells as many as each needs (nothing is written then).
        HarnessError: If ``directory`` is removed or replaced mid-run.
    """
    say = say or (lambda message: print(f"wsblock: {message}", file=sys.stderr, flush=True))
    check_directory(matrix, directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with rundir.lock(directory, command=command, started_utc=_now()) as locked:
            if not locked:
                say(f"warning: {directory} is on a file system that cannot lock files: a second matrix on it "
                    f"would not be refused")
            return _session(matrix, directory, command=command, show_progress=show_progress,
                            after_cell=after_cell, say=say, parallel=parallel, dask=dask)
    except rundir.Busy as exc:
        raise UsageError(f"{exc}; wait for it to end or choose another --out") from None
    except UsageError:
        # Refused before anything was measured (cores, a Dask cluster without
        # cell slots): a directory made only for this run is not left behind.
        if created:
            _remove_if_only_lock(directory)
        raise


def _remove_if_only_lock(directory: Path) -> None:
    """Remove ``directory`` if it holds nothing but the run's lock file."""
    try:
        entries = {entry.name for entry in directory.iterdir()}
        if entries <= {rundir.LOCK_NAME}:
            (directory / rundir.LOCK_NAME).unlink(missing_ok=True)
            directory.rmdir()
    except OSError:
        pass  # something else appeared or it cannot be removed: leave it as it is


def _session(matrix: Matrix, directory: Path, *, command: str, show_progress: bool,
             after_cell: Callable[[PlannedCell, dict[str, Any]], None] | None, say: Callable[[str], None],
             parallel: int, dask: str | None) -> MatrixOutcome:
    """The body of :func:`run_matrix`, under the run directory's lock."""
    # Planned again under the lock: what another writer left is seen.
    plan = check_directory(matrix, directory, writing=False)
    slots = core_slots(parallel, [p.cell for p in plan.todo]) if parallel > 1 and dask is None else []
    client = None
    if dask is not None:
        from wsblock.matrix import cluster

        client = cluster.connect(dask)
    cells_dir = directory / CELLS
    cells_dir.mkdir(exist_ok=True)
    manifest_path = directory / MANIFEST
    previous, damage = _read_manifest(manifest_path)
    manifest = _manifest(matrix, command, previous)
    manifest["parallel"] = parallel
    if previous and isinstance(previous.get("hosts"), dict):
        manifest["hosts"] = dict(previous["hosts"])  # which host measured which cell, kept on resume
    manifest["sessions"][-1].update({"parallel": parallel, "core_slots": slots or None, "dask": dask})
    if damage is not None:
        # Its session history cannot be read, but it is not ours to destroy.
        kept = manifest_path.with_name(f"{MANIFEST}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        os.replace(manifest_path, kept)
        manifest["recovered_from"] = {"damaged_manifest": kept.name, "reason": damage}
        say(f"{manifest_path} was unreadable ({damage}); kept as {kept.name}, "
            f"a new manifest records sessions from now on")
    atomic.write_json(manifest_path, manifest)
    guard = _Guard(directory)

    # Repeats interleaved: every cell's first repeat, then every cell's
    # second, ... (a stable sort keeps the matrix order within a repeat).
    todo = sorted(plan.todo, key=lambda p: p.repeat)
    reused = plan.reused
    ran = failed = 0
    history = estimate.History()
    progress = Progress(total=len(matrix.cells), done=reused, per_cell=[cell_estimate_s(c, history) for c in todo],
                        stream=sys.stderr if show_progress else None)
    started = time.monotonic()
    records: list[dict[str, Any]] = []

    def finish(planned: PlannedCell, rec: dict[str, Any]) -> None:
        nonlocal ran, failed
        guard.check(f"the record of {planned.cell_id} was not written")
        atomic.write_json(cells_dir / f"{planned.cell_id}.json", rec)
        records.append(rec)
        host = rec["matrix"].get("host")
        if host is not None:
            manifest.setdefault("hosts", {})[planned.cell_id] = host
        ran += 1
        if rec["status"] != "ok":
            failed += 1
        progress.finished(planned, rec)
        if after_cell:
            after_cell(planned, rec)

    def started_one(planned: PlannedCell) -> None:
        guard.check(f"stopped before {planned.cell_id}")
        progress.starting(planned)

    try:
        if client is not None:
            cluster.run_on_cluster(client, todo, finish, started=started_one)
        elif slots:
            run_parallel(todo, slots, lambda planned, cores: measure_one(planned, cores, parallel=parallel),
                         finish, started=started_one)
        else:
            run_serial(todo, finish, started=started_one)
    finally:
        progress.close()
        if client is not None:
            client.close()
        if guard.intact():
            _write_table(matrix, directory)
    guard.check("the manifest was not updated")
    not_ok: list[str] = []
    missing: list[str] = []
    for planned in matrix.cells:
        status, _ = read_record(cells_dir / f"{planned.cell_id}.json", planned)
        if status == "missing":
            missing.append(planned.cell_id)
        elif status != "ok":
            not_ok.append(planned.cell_id)
    manifest["finished_utc"] = _now()
    manifest["complete"] = not not_ok and not missing
    overhead = overhead_summary(time.monotonic() - started, records, at_once=len(slots) or 1)
    if client is None:
        remember_overheads(history, records)
    manifest["sessions"][-1]["overhead"] = overhead
    manifest["overhead"] = _total_overhead(manifest["sessions"])
    atomic.write_json(manifest_path, manifest)
    return MatrixOutcome(ran=ran, reused=reused, failed=failed, skipped=len(matrix.skipped),
                         directory=directory, not_ok=not_ok, missing=missing, overhead=overhead)


def remember_overheads(history: estimate.History, records: list[dict[str, Any]]) -> None:
    """Add the measured overheads of a serial run's good records to this machine's history."""
    from wsblock.engine.config import CellConfig

    found = estimate.measured_overheads(records)
    for params, overhead in found:
        try:
            cell = CellConfig.from_dict(params)
        except Exception:  # noqa: BLE001 - a record this version cannot read teaches nothing
            continue
        history.add(cell, overhead)
    if found:
        history.save()


def _total_overhead(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    # Summed over the sessions that recorded theirs (a resumed matrix has several).
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


def _axes(definition: dict[str, Any]) -> dict[str, Any]:
    # Adding repeats to a finished matrix is a resume, not a new matrix.
    return {k: v for k, v in definition.items() if k != "repeats"}


LABEL_WIDTH = 24
"""Width of the running cell's label on the progress bar."""


def short_label(planned: PlannedCell, width: int = LABEL_WIDTH) -> str:
    """A label for the progress bar: strategy, workload and repeat, at most ``width`` characters.

    The full cell id (40 to 50 characters) would push the counts and the time
    left off an 80-column line; the id is in the per-cell lines and records.
    """
    c = planned.cell
    text = f"{c.strategy} {c.workload} r{planned.repeat}"
    return text if len(text) <= width else text[:width - 1] + "…"


class Progress:
    """Shows a matrix run's progress on a stream.

    On a terminal: one bar, redrawn in place, with a short label of the cell
    running, the cells done out of all planned, the failures and one
    estimate of the time left. Anywhere else (a pipe, a log file, CI): one
    line per finished cell, nothing redrawn.

    Args:
        total: Cells in the matrix, repeats included.
        done: Cells already recorded before this run.
        per_cell: Estimated seconds of each cell still to run, in order.
        stream: Where to write; ``None`` shows nothing.
        terminal: Draw a bar; default: whether ``stream`` is a terminal.
    """

    def __init__(self, *, total: int, done: int, per_cell: list[float], stream: Any,
                 terminal: bool | None = None) -> None:
        self.total, self.done, self.per_cell = total, done, per_cell
        self.stream = stream
        self.index = self.failed = 0
        self.started = time.monotonic()
        self.cell_started = self.started
        if terminal is None:
            terminal = stream is not None and getattr(stream, "isatty", lambda: False)()
        self.bar = None
        if stream is not None and terminal:
            self.bar = tqdm(total=total, initial=done, file=stream, dynamic_ncols=True,
                            desc="".ljust(LABEL_WIDTH), postfix=self._counts(),
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}")

    def _counts(self) -> str:
        return f"failed {self.failed}, eta {_eta(self.started, self.index, self.per_cell)}"

    def starting(self, planned: PlannedCell) -> None:
        """Say which cell runs now."""
        self.cell_started = time.monotonic()
        if self.bar is not None:
            self.bar.set_description_str(short_label(planned).ljust(LABEL_WIDTH))

    def finished(self, planned: PlannedCell, rec: dict[str, Any]) -> None:
        """Count a finished cell (its record written) and show it."""
        self.index += 1
        self.done += 1
        ok = rec.get("status") == "ok"
        self.failed += not ok
        took = time.monotonic() - self.cell_started
        if self.bar is not None:
            if not ok:
                self.bar.write(f"cell {planned.cell_id} failed: {rec.get('error')}", file=self.stream)
            # The counts first, then the bar moves: both redrawn together.
            self.bar.set_postfix_str(self._counts(), refresh=False)
            self.bar.update(1)
            self.bar.refresh()  # now, whatever tqdm's minimum interval says
        elif self.stream is not None:
            outcome = "ok" if ok else f"failed: {rec.get('error')}"
            left = f", eta {_eta(self.started, self.index, self.per_cell)}" if self.index < len(self.per_cell) else ""
            print(f"wsblock: [{self.done}/{self.total}] {planned.cell_id} {outcome} ({took:.0f} s); "
                  f"failed {self.failed}{left}", file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (a terminal's line is kept)."""
        if self.bar is not None:
            if self.index == len(self.per_cell):
                self.bar.set_description_str("done".ljust(LABEL_WIDTH), refresh=False)
            self.bar.set_postfix_str(f"failed {self.failed}", refresh=False)
            self.bar.close()


def _eta(started: float, index: int, per_cell: list[float]) -> str:
    # Before the first cell finishes, estimate from the cells' own lengths;
    # afterwards scale that estimate by how long cells really took.
    remaining = sum(per_cell[index:])
    if index:
        remaining *= (time.monotonic() - started) / sum(per_cell[:index])
    minutes, seconds = divmod(int(remaining), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _write_table(matrix: Matrix, directory: Path) -> None:
    """Write ``cells.csv`` from the records of the planned cells, and only those."""
    from wsblock.analysis import tidy

    cells_dir = directory / CELLS
    rows = []
    for planned in matrix.cells:
        path = cells_dir / f"{planned.cell_id}.json"
        status, data = read_record(path, planned)
        if data is not None:
            rows.append((path, data))
    if rows:
        atomic.write_text(directory / tidy.CSV_NAME, tidy.to_csv_text(tidy.frame(rows)))


def command_line() -> str:
    """The current command line, for the manifest."""
    return " ".join(shlex.quote(a) for a in ["wsblock", *sys.argv[1:]])


__all__ = ["MatrixOutcome", "Plan", "Progress", "short_label", "check_directory", "check_size", "run_matrix", "run_one", "measure_one", "command_line"]
