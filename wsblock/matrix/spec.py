"""Matrix definitions: named profiles and user TOML files.

A matrix is a TOML document. Lists under the axis keys are multiplied out;
scalars apply to every cell:

* axes: ``workloads``, ``work_ms``, ``strategies``, ``ping_interval``,
  ``ping_timeout`` (numbers, or ``"none"``), and the keepalive variants
  ``client_pings`` (booleans) and ``handler_ping_timeout`` (numbers or
  ``"none"``, or ``"unset"``: the handler leaves the setting alone, as
  when the key is absent);
* scalars: ``duration``, ``warmup``, ``repeats``, ``job_connections``,
  ``observers``, ``echo_interval_ms``, ``close_timeout``, ``workers``,
  ``chunk_ms``, ``start_method``, ``stall_ms``, ``description``;
* workload parameters, named ``<workload>_<param>`` (for example
  ``pandas_chunksize``): a number, or a list that becomes one more axis for
  that workload only.

Unsupported pairs (``chunked`` x ``c_holds_gil``) are not cells: they are
listed as skipped with the reason. Everything is validated before anything
runs, and an error names the key.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import workloads
from wsblock.engine import strategies
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError

AXES = ("workloads", "work_ms", "strategies", "ping_interval", "ping_timeout",
        "client_pings", "handler_ping_timeout")
SCALARS = {
    "duration": float, "warmup": float, "repeats": int, "job_connections": int,
    "observers": int, "echo_interval_ms": float, "close_timeout": float, "workers": int,
    "chunk_ms": float, "start_method": str, "stall_ms": float, "description": str,
    "min_cycles": int,
}
PROFILES = ("smoke", "quick", "default")


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
        c = self.cell
        parts = [c.workload, f"{c.work_ms:g}ms", c.strategy,
                 f"pi{_fmt(c.ping_interval)}", f"pt{_fmt(c.ping_timeout)}"]
        parts += [f"{k}{v}" for k, v in sorted(c.workload_params.items())]
        if not c.client_pings:
            parts.append("noclientpings")
        if c.handler_ping_timeout is not None:
            parts.append(f"hpt{c.handler_ping_timeout if isinstance(c.handler_ping_timeout, str) else _fmt(c.handler_ping_timeout)}")
        parts.append(f"r{self.repeat}")
        return "-".join(parts)


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

    @property
    def repeats(self) -> int:
        """Repeats per cell."""
        return int(self.definition.get("repeats", 1))


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def profile_path(name: str) -> Path:
    """Path of a shipped profile file.

    Raises:
        UsageError: If there is no profile of that name.
    """
    if name not in PROFILES:
        raise UsageError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return Path(str(resources.files("wsblock.matrix") / "profiles" / f"{name}.toml"))


def load_profile(name: str) -> Matrix:
    """Load and validate a shipped profile by name."""
    return load_file(profile_path(name), source=name)


def load_file(path: str | Path, *, source: str | None = None) -> Matrix:
    """Load and validate a matrix TOML file.

    Args:
        path: The file.
        source: Name to record (defaults to the path).

    Raises:
        UsageError: Unreadable file, bad TOML, or a bad key or value.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read matrix file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    return expand(data, source=source or str(path))


def _as_list(key: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{key}: the list is empty")
    return values


def _seconds(key: str, value: Any, *, allow_none: bool) -> float | None:
    if allow_none and isinstance(value, str) and value.lower() == "none":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        hint = ' or "none"' if allow_none else ""
        raise UsageError(f"{key}: expected positive numbers{hint}, got {value!r}")
    return float(value)


def _workload_param_keys() -> dict[str, tuple[str, str]]:
    keys = {}
    for w in workloads.all_workloads():
        for spec in w.params:
            keys[f"{w.name}_{spec.name}"] = (w.name, spec.name)
    return keys


def expand(data: dict[str, Any], *, source: str) -> Matrix:
    """Validate a parsed matrix and multiply out its cells.

    Args:
        data: The parsed TOML document.
        source: Where it came from, for the record.

    Raises:
        UsageError: Naming the first bad key.
    """
    param_keys = _workload_param_keys()
    unknown = sorted(set(data) - set(AXES) - set(SCALARS) - set(param_keys))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in matrix {source}")
    missing = [k for k in ("workloads", "work_ms", "strategies") if k not in data]
    if missing:
        raise UsageError(f"matrix {source} needs the key {missing[0]!r}")

    names = _as_list("workloads", data["workloads"])
    for name in names:
        if name not in workloads.names():
            raise UsageError(f"workloads: unknown workload {name!r} (choose from {', '.join(workloads.names())})")
    strats = _as_list("strategies", data["strategies"])
    for name in strats:
        if name not in strategies.names():
            raise UsageError(f"strategies: unknown strategy {name!r} (choose from {', '.join(strategies.names())})")
    work = [_seconds("work_ms", v, allow_none=False) for v in _as_list("work_ms", data["work_ms"])]
    intervals = [_seconds("ping_interval", v, allow_none=True)
                 for v in _as_list("ping_interval", data.get("ping_interval", 20))]
    timeouts = [_seconds("ping_timeout", v, allow_none=True)
                for v in _as_list("ping_timeout", data.get("ping_timeout", 20))]

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

    per_workload: dict[str, list[dict[str, int]]] = {}
    for name in names:
        axes: list[list[tuple[str, int]]] = []
        for key, (owner, param) in param_keys.items():
            if owner == name and key in data:
                values = _as_list(key, data[key])
                for v in values:
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise UsageError(f"{key}: expected integers, got {v!r}")
                axes.append([(param, v) for v in values])
        per_workload[name] = [dict(combo) for combo in itertools.product(*axes)] or [{}]

    client_pings = _as_list("client_pings", data.get("client_pings", True))
    for value in client_pings:
        if not isinstance(value, bool):
            raise UsageError(f"client_pings: expected true or false, got {value!r}")
    handler: list[float | str | None] = []
    for value in _as_list("handler_ping_timeout", data.get("handler_ping_timeout", ["unset"])):
        if value == "unset":
            handler.append(None)
        elif isinstance(value, str) and value.lower() == "none":
            handler.append("none")
        else:
            handler.append(_seconds("handler_ping_timeout", value, allow_none=False))

    matrix = Matrix(source=source, definition=data)
    grid = itertools.product(names, work, strats, intervals, timeouts, client_pings, handler)
    for name, ms, strategy, interval, timeout, pings, override in grid:
        for params in per_workload[name]:
            cell = CellConfig(workload=name, work_ms=ms, strategy=strategy,  # type: ignore[arg-type]
                              ping_interval=interval, ping_timeout=timeout,
                              client_pings=pings, handler_ping_timeout=override,
                              workload_params=dict(params), **scalars)
            reason = strategies.get(strategy).unsupported_reason(workloads.get(name))
            if reason:
                matrix.skipped.append((cell, reason))
                continue
            try:
                cell.validate()
            except UsageError as exc:
                raise UsageError(f"matrix {source}: {exc}") from None
            for repeat in range(repeats):
                matrix.cells.append(PlannedCell(cell, repeat))
    return matrix
