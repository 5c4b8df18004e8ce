"""Matrix definitions: named profiles and user TOML files.

A matrix is a TOML document. Lists under the axis keys are multiplied out;
scalars apply to every cell:

* axes (:data:`wsblock.schema.axes.AXES`, listed in ``docs/vocabulary.md``):
  ``workloads``, ``work_ms``, ``strategies``, ``ping_interval``,
  ``ping_timeout`` (numbers, or ``"none"``), and the others, each with the
  values its declaration parses;
* scalars: the settings a matrix may give (:data:`wsblock.schema.settings.SETTINGS`:
  ``duration``, ``max_window``, ``warmup``, ``job_connections``, ``observers``,
  ``echo_interval_ms``, ``close_timeout``, ``workers``, ``chunk_ms``,
  ``start_method``, ``stall_ms``, ``min_cycles``), ``repeats`` and ``description``;
* workload parameters, named ``<workload>_<param>`` (for example
  ``pandas_chunksize``): a number, or a list that becomes one more axis for
  that workload only;
* ``params``: keyword arguments of the users' functions in ``workloads``
  (``package.module:function``), a table of values or lists (a list is one
  more axis); a sub-table named after one function (``[params."mod:fn"]``)
  applies to that function only. ``work_ms`` is ignored for a function
  without a ``units`` parameter (it runs once per job), and may be left out
  when every workload is such a function;
* ``allow_stdlib_functions = true``: allow functions of the standard library
  as workloads (refused otherwise, see :mod:`workloads.locate`).

Unsupported pairs (``chunked`` x ``c_holds_gil``) are not cells: they are
listed as skipped with the reason. Everything is validated before anything
runs, and an error names the key; a list that gives the same value twice
(``[300, 300]``, ``["none", "None"]``) is refused, as are two cells that
would share an id, a cell that breaks a rule between parameters
(:data:`wsblock.schema.settings.RULES`: a ``ping_timeout`` given beside
``ping_interval`` none, as the command line refuses it), a matrix whose
every cell is skipped, and one of more than :data:`HARD_MAX_CELLS` cells (counted before any cell is built).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import workloads
from wsblock.engine import strategies
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.schema import axes as axis_schema
from wsblock.schema import settings
from wsblock.schema.axes import REQUIRED, cell_id

AXES = tuple(a.toml_key for a in axis_schema.AXES)
"""The matrix-file keys of the axes (:data:`wsblock.schema.axes.AXES`)."""
SCALARS: dict[str, type] = {**settings.MATRIX_KEYS, "repeats": int, "description": str}
"""The scalar keys of a matrix file and the type of their value: the settings
a matrix may give (:data:`wsblock.schema.settings.MATRIX_KEYS`), and the
matrix's own ``repeats`` and ``description``."""
PROFILES = ("smoke", "quick", "default", "stack")

HARD_MAX_CELLS = 100_000
"""Most cells of any matrix, ``--yes`` or not: listing them takes about 20 s,
and running them months."""


@dataclass(frozen=True)
class PlannedCell:
    """One cell of a matrix, for one repeat.

    Attributes:
        cell: The cell's parameters.
        repeat: Repeat index, from 0.
    """

    cell: CellConfig
    repeat: int

    @property
    def cell_id(self) -> str:
        """A file-name-safe identifier, stable across runs of the same matrix."""
        return cell_id(self.cell.to_dict(), repeat=self.repeat, settings=False)


@dataclass
class Matrix:
    """A validated matrix definition.

    Attributes:
        source: Profile name or file path it came from.
        definition: The parsed TOML, as given.
        cells: Every cell to run, repeats included.
        skipped: ``(cell, reason)`` for unsupported pairs.
    """

    source: str
    definition: dict[str, Any]
    cells: list[PlannedCell] = field(default_factory=list)
    skipped: list[tuple[CellConfig, str]] = field(default_factory=list)


def profile_path(name: str) -> Path:
    """Path of a shipped profile file.

    Raises:
        UsageError: If there is no profile of that name.
    """
    if name not in PROFILES:
        raise UsageError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return Path(str(resources.files("wsblock.matrix") / "profiles" / f"{name}.toml"))


def load_profile(name: str, *, max_cells: int | None = None) -> Matrix:
    """Load and validate a shipped profile by name (see :func:`expand`)."""
    return load_file(profile_path(name), source=name, max_cells=max_cells)


def load_file(path: str | Path, *, source: str | None = None, max_cells: int | None = None) -> Matrix:
    """Load and validate a matrix TOML file.

    Args:
        path: The file.
        source: Name to record (defaults to the path).
        max_cells: Refuse a matrix of more cells (see :func:`expand`).

    Raises:
        UsageError: Unreadable file, bad TOML, or a bad key or value.
    """
    from wsblock import inputs

    text = inputs.read_text(path, "matrix file", MAX_FILE_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid TOML: nested too deeply") from None
    return expand(data, source=source or str(path), max_cells=max_cells)


MAX_FILE_BYTES = 1024 * 1024
"""Largest matrix file read (the shipped profiles are about 1 kB)."""


def _as_list(key: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{key}: the list is empty")
    return values


def _workload_param_keys() -> dict[str, tuple[str, str]]:
    keys = {}
    for w in workloads.all_workloads():
        for spec in w.params:
            keys[f"{w.name}_{spec.name}"] = (w.name, spec.name)
    return keys


def expand(data: dict[str, Any], *, source: str, max_cells: int | None = None) -> Matrix:
    """Validate a parsed matrix and multiply out its cells.

    Args:
        data: The parsed TOML document.
        source: Where it came from, for the record.
        max_cells: If given, a matrix of more cells is refused after it is
            counted and before any cell is built; with or without it, so is
            one of more than :data:`HARD_MAX_CELLS`.

    Raises:
        UsageError: Naming the first bad key, the size over ``max_cells``,
            or a matrix with no cell to run.
    """
    _allow_stdlib(data, source)
    param_keys = _workload_param_keys()
    unknown = sorted(set(data) - set(AXES) - set(SCALARS) - set(param_keys) - {USER_PARAMS, ALLOW_STDLIB})
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in matrix {source}")
    missing = [a.toml_key for a in axis_schema.AXES if a.default is REQUIRED and a.toml_key not in data]
    if missing == ["work_ms"] and _all_called_once(data):
        missing = []  # no workload has a target length
    if missing:
        workload = axis_schema.get("workload")
        if workload.toml_key in data:
            # A refused function says why before a key it might not have needed is asked for.
            for value in _as_list(workload.toml_key, data[workload.toml_key]):
                workload.parse(workload.toml_key, value)
        raise UsageError(f"matrix {source} needs the key {missing[0]!r}")

    grid_values: list[list[Any]] = []
    for axis in axis_schema.AXES:
        if axis.name == "work_ms" and axis.toml_key not in data:
            grid_values.append([None])
            continue
        written = _as_list(axis.toml_key, data.get(axis.toml_key, axis.default))
        parsed = [axis.parse(axis.toml_key, v) for v in written]
        _refuse_duplicates(axis.toml_key, axis_schema.duplicates(axis, zip(written, parsed)))
        grid_values.append(parsed)
    scalars: dict[str, Any] = {}
    for key, kind in SCALARS.items():
        if key not in data or key in ("repeats", "description"):
            continue
        value = data[key]
        ok = isinstance(value, kind) if kind in (str, bool) else (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            and (kind is float or isinstance(value, int)))
        if not ok:
            expected = {str: "a string", bool: "true or false"}.get(kind, "a number")
            raise UsageError(f"{key}: expected {expected}, got {value!r}")
        scalars[key] = value
    repeats = data.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        raise UsageError(f"repeats: expected an integer from 1 to 100, got {repeats!r}")
    if "description" in data and not isinstance(data["description"], str):
        raise UsageError("description: expected a string")

    for key, (owner, param) in param_keys.items():
        if key in data:
            for v in _as_list(key, data[key]):
                try:
                    workloads.get(owner).resolve_params({param: v})
                except ValueError as exc:
                    raise UsageError(f"{key}: {exc}") from None

    per_workload_axes: dict[str, list[list[tuple[str, Any]]]] = {}
    for name in grid_values[axis_schema.NAMES.index("workload")]:
        axes: list[list[tuple[str, Any]]] = []
        for key, (owner, param) in param_keys.items():
            if owner == name and key in data:
                values = _as_list(key, data[key])
                for v in values:
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise UsageError(f"{key}: expected integers, got {v!r}")
                _refuse_duplicates(key, [f"{v!r} and {v!r}" for i, v in enumerate(values) if v in values[:i]])
                axes.append([(param, v) for v in values])
        per_workload_axes[name] = axes
    per_workload_axes.update(_user_params(data, grid_values[axis_schema.NAMES.index("workload")]))

    # Count before building anything: a huge grid is refused in moments.
    wl = axis_schema.NAMES.index("workload")
    st = axis_schema.NAMES.index("strategy")
    others = 1
    for i, values in enumerate(grid_values):
        if i not in (wl, st):
            others *= len(values)
    count = sum(math.prod(len(a) for a in per_workload_axes[name]) * others * repeats
                for name in grid_values[wl] for strategy in grid_values[st]
                if not strategies.get(strategy).unsupported_reason(workloads.get(name)))
    if max_cells is not None and count > max_cells:
        raise UsageError(f"matrix {source} has {count} cells, more than {max_cells}; "
                         f"add --yes to run it anyway")
    if count > HARD_MAX_CELLS:
        raise UsageError(f"matrix {source} has {count:,} cells, more than {HARD_MAX_CELLS:,}, the most any "
                         f"matrix may have (even with --yes); split it into smaller ones")
    per_workload = {name: [dict(combo) for combo in itertools.product(*axes)] or [{}]
                    for name, axes in per_workload_axes.items()}

    matrix = Matrix(source=source, definition=data)
    # What the file gives, for the rules between parameters (a timeout given without pings).
    stated = [a.name for a in axis_schema.AXES if a.toml_key in data] + list(scalars)
    ids: dict[str, PlannedCell] = {}
    for values in itertools.product(*grid_values):
        chosen = dict(zip(axis_schema.NAMES, values))
        for params in per_workload[chosen["workload"]]:
            cell = CellConfig(**chosen, workload_params=dict(params), **scalars)
            reason = cell.unsupported_reason()
            if reason:
                matrix.skipped.append((cell, reason))
                continue
            try:
                cell.validate(stated)
            except UsageError as exc:
                raise UsageError(f"matrix {source}: {exc}") from None
            for repeat in range(repeats):
                planned = PlannedCell(cell, repeat)
                other = ids.setdefault(planned.cell_id, planned)
                if other is not planned and cell.ignored_work_ms is not None:
                    break  # the same function call under another, ignored, work_ms
                if other is not planned:
                    raise UsageError(f"matrix {source}: two cells would share the id {planned.cell_id!r}")
                matrix.cells.append(planned)
    if not matrix.cells:
        reasons = sorted({reason for _, reason in matrix.skipped})
        raise UsageError(f"matrix {source} has no cell to run: every cell is skipped"
                         + (f" ({reasons[0]}{'; ...' if len(reasons) > 1 else ''})" if reasons else ""))
    return matrix


USER_PARAMS = "params"
"""The matrix key of the keyword arguments of users' functions."""

ALLOW_STDLIB = "allow_stdlib_functions"
"""The matrix key that allows functions of the standard library as workloads (as ``--allow-stdlib-functions``)."""


def _allow_stdlib(data: dict[str, Any], source: str) -> None:
    """Allow functions of the standard library for this process if the matrix says so, before any is looked up."""
    if ALLOW_STDLIB not in data:
        return
    if not isinstance(data[ALLOW_STDLIB], bool):
        raise UsageError(f"{ALLOW_STDLIB}: expected true or false, got {data[ALLOW_STDLIB]!r}")
    if data[ALLOW_STDLIB]:
        workloads.locate.allow_stdlib(f"{ALLOW_STDLIB} in matrix {source}")


def _function(name: Any) -> workloads.FunctionWorkload | None:
    try:
        found = workloads.lookup(name)
    except (workloads.WorkloadError, TypeError):
        return None  # refused with its reason when the axis is parsed
    return found if isinstance(found, workloads.FunctionWorkload) else None


def _all_called_once(data: dict[str, Any]) -> bool:
    names = data.get("workloads")
    names = names if isinstance(names, list) else [names]
    found = [_function(n) for n in names if isinstance(n, str)]
    return bool(names) and len(found) == len(names) and all(f is not None and not f.calibrated for f in found)


def _user_params(data: dict[str, Any], names: list[str]) -> dict[str, list[list[tuple[str, Any]]]]:
    """The keyword-argument axes of each user's function in ``names`` (their product: its combinations)."""
    table = data.get(USER_PARAMS)
    functions = {n: f for n in names if (f := _function(n)) is not None}
    if table is None:
        return {n: [] for n in functions}
    if not isinstance(table, dict):
        raise UsageError(f"{USER_PARAMS}: expected a table of keyword arguments, got {table!r}")
    if not functions:
        raise UsageError(f"{USER_PARAMS}: no workload is a function (package.module:function); "
                         f"built-in workloads take <workload>_<param> keys")
    for key, value in table.items():
        if isinstance(value, dict) and key not in functions:
            raise UsageError(f"{USER_PARAMS}: a table for {key!r}, which is not a function among workloads")
    out = {}
    for name in functions:
        given = {k: v for k, v in table.items() if not isinstance(v, dict)}
        given.update(table.get(name, {}))
        axes: list[list[tuple[str, Any]]] = []
        for key, value in sorted(given.items()):
            values = _as_list(f"{USER_PARAMS}.{key}", value)
            for v in values:
                try:
                    workloads.functions.check_value(name, key, v)
                except workloads.WorkloadError as exc:
                    raise UsageError(f"{USER_PARAMS}.{key}: {exc}") from None
            _refuse_duplicates(f"{USER_PARAMS}.{key}",
                               [f"{v!r} and {v!r}" for i, v in enumerate(values) if v in values[:i]])
            axes.append([(key, v) for v in values])
        out[name] = axes
    return out


def _refuse_duplicates(key: str, clashes: list[str]) -> None:
    if clashes:
        raise UsageError(f"{key}: the same value twice ({'; '.join(clashes)})")
