"""Record reuse: whether a file in a run directory is a good record of a planned cell.

A record is reused only if it belongs to the planned matrix: its file is
named after a planned cell and its parameters equal that cell's. Records are
read by the one reader of run directories (:mod:`wsblock.schema.rundir`):
bounded, checked by type, so a record whose numbers are text is never reused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wsblock.matrix.spec import PlannedCell
from wsblock.schema import record, rundir


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
