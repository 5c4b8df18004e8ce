"""Run a matrix: every cell in fresh processes, one at a time, resumable.

Each cell runs as its own ``wsblock run`` process (which starts its own server
and load processes), so no state leaks from one cell into the next, and cells
never overlap: on a small machine they would measure each other. Records are
written atomically to ``DIR/cells/<cell_id>.json`` as cells finish, so a
killed matrix loses at most the cell in flight; running the same command
again skips every cell that already has a good record (failed cells are tried
again).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from wsblock import atomic, meta
from wsblock.schema import record
from wsblock.errors import UsageError
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.engine.proc import die_with_parent

MANIFEST = "manifest.json"
CELLS = "cells"


@dataclass
class MatrixOutcome:
    """What a matrix run did.

    Attributes:
        ran: Cells measured in this run.
        reused: Cells that already had a record.
        failed: Cells that failed in this run.
        skipped: Unsupported pairs, not run.
        directory: The output directory.
    """

    ran: int
    reused: int
    failed: int
    skipped: int
    directory: Path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_timeout(planned: PlannedCell) -> float:
    """Hard limit for one cell's process, in seconds.

    Generous: the first cell of a workload also calibrates it and may generate
    input data.
    """
    c = planned.cell
    return 240.0 + 3 * (c.warmup + _window_bound(c)) + 8 * c.work_ms / 1000.0


def _window_bound(cell: Any) -> float:
    # A cell without a duration gets a window sized at run time, at most this.
    from wsblock.engine.sizing import MAX_WINDOW_S

    return MAX_WINDOW_S if cell.duration is None else cell.duration


def existing_record(path: Path) -> dict[str, Any] | None:
    """Return a good (status ok) record stored at ``path``, else ``None``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record.validate(data)
    except (OSError, ValueError):
        return None
    return data if data.get("status", "ok") == "ok" else None


def run_one(planned: PlannedCell, out: Path) -> dict[str, Any]:
    """Run one cell in a fresh ``wsblock run`` process.

    Args:
        planned: The cell.
        out: Where its record goes.

    Returns:
        The record written (``status`` ``ok`` or ``failed``).
    """
    err = ""
    with tempfile.TemporaryDirectory(prefix="wsblock-matrix-") as tmp:
        cell_path = Path(tmp) / "cell.json"
        rec_path = Path(tmp) / "record.json"
        cell_path.write_text(json.dumps(planned.cell.to_dict()))
        cmd = [sys.executable, "-m", "wsblock", "run", "--quiet", "--cell", str(cell_path),
               "--out", str(rec_path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=die_with_parent)
        try:
            _, err = proc.communicate(timeout=cell_timeout(planned))
            error = None if proc.returncode == 0 else _error_line(err)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the cell stops its own processes
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            error = f"timed out after {cell_timeout(planned):.0f} s"
        except BaseException:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        if error is None or proc.returncode == 1:
            # A cell that ran but measured nothing writes a whole record with
            # status "failed" and exits 1: keep it, it says what happened.
            try:
                rec = json.loads(rec_path.read_text(encoding="utf-8"))
                if error is not None and rec.get("status") == "failed":
                    error = None
            except (OSError, ValueError):
                if error is None:
                    error = "the cell wrote no record"
        if error is not None:
            rec = {
                "schema_version": record.SCHEMA_VERSION,
                "kind": "wsblock.cell",
                "status": "failed",
                "params": planned.cell.to_dict(),
                "error": error.removeprefix("error: "),
                "exit_code": proc.returncode,
                "stderr_tail": (err or "").strip().splitlines()[-20:] if error else [],
                "meta": meta.environment(),
            }
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
    atomic.write_json(out, rec)
    return rec


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    for line in lines:
        if line.startswith("error: "):
            return line
    return lines[-1] if lines else "no message"


def _manifest(matrix: Matrix, command: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "wsblock.matrix",
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
    }


def run_matrix(
    matrix: Matrix,
    directory: Path,
    *,
    command: str,
    show_progress: bool = True,
    after_cell: Callable[[PlannedCell, dict[str, Any]], None] | None = None,
) -> MatrixOutcome:
    """Run every cell of ``matrix`` that has no good record in ``directory``.

    Args:
        matrix: The validated matrix.
        directory: Output directory (created if missing).
        command: The command line, stored in the manifest.
        show_progress: Draw a progress bar on stderr.
        after_cell: Called after each cell that ran, with its record.

    Returns:
        Counts of what happened.

    Raises:
        UsageError: If ``directory`` holds a different matrix.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cells_dir = directory / CELLS
    cells_dir.mkdir(exist_ok=True)
    manifest_path = directory / MANIFEST
    previous = None
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous and _axes(previous.get("config") or {}) != _axes(matrix.definition):
            raise UsageError(f"{directory} holds a different matrix; choose another --out")
    manifest = _manifest(matrix, command, previous)
    atomic.write_json(manifest_path, manifest)

    todo = [p for p in matrix.cells if existing_record(cells_dir / f"{p.cell_id}.json") is None]
    reused = len(matrix.cells) - len(todo)
    ran = failed = 0
    per_cell = [c.cell.warmup + _window_bound(c.cell) + 4.0 for c in todo]
    bar = tqdm(total=len(matrix.cells), initial=reused, unit="cell", disable=not show_progress,
               file=sys.stderr, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")
    started = time.monotonic()
    try:
        for index, planned in enumerate(todo):
            bar.set_description(planned.cell_id[:48])
            bar.set_postfix_str(
                f"done {reused + ran}, failed {failed}, skipped {len(matrix.skipped)}, "
                f"eta {_eta(started, index, per_cell)}"
            )
            rec = run_one(planned, cells_dir / f"{planned.cell_id}.json")
            ran += 1
            if rec["status"] != "ok":
                failed += 1
                bar.write(f"cell {planned.cell_id} failed: {rec['error']}", file=sys.stderr)
            if after_cell:
                after_cell(planned, rec)
            bar.update(1)
        bar.set_postfix_str(f"done {reused + ran}, failed {failed}, skipped {len(matrix.skipped)}")
    finally:
        bar.close()
        _write_table(directory)
    manifest["finished_utc"] = _now()
    atomic.write_json(manifest_path, manifest)
    return MatrixOutcome(ran=ran, reused=reused, failed=failed, skipped=len(matrix.skipped),
                         directory=directory)


def _axes(definition: dict[str, Any]) -> dict[str, Any]:
    # Adding repeats to a finished matrix is a resume, not a new matrix.
    return {k: v for k, v in definition.items() if k != "repeats"}


def _eta(started: float, index: int, per_cell: list[float]) -> str:
    # Before the first cell finishes, estimate from the cells' own lengths;
    # afterwards scale that estimate by how long cells really took.
    remaining = sum(per_cell[index:])
    if index:
        remaining *= (time.monotonic() - started) / sum(per_cell[:index])
    minutes, seconds = divmod(int(remaining), 60)
    return f"{minutes}m{seconds:02d}s"


def _write_table(directory: Path) -> None:
    from wsblock.analysis import tidy

    try:
        tidy.write_csv(directory)
    except UsageError:
        pass  # no records yet: nothing to tabulate


def command_line() -> str:
    """The current command line, for the manifest."""
    return " ".join(shlex.quote(a) for a in ["wsblock", *sys.argv[1:]])


__all__ = ["MatrixOutcome", "run_matrix", "run_one", "command_line"]
