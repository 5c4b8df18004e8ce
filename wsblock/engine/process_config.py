"""Typed configs that cross the process boundary: runner -> server, runner -> load.

The runner builds a :class:`ServerConfig` and a :class:`LoadConfig`, writes
each as a JSON file, and the child reads it back with
:meth:`ServerConfig.read` / :meth:`LoadConfig.read`. Both carry the whole
cell (:class:`~wsblock.engine.config.CellConfig`), so every axis and setting
reaches the process that applies it without a field of its own here; beside
it, what only the runner knows (the sized work, paths, deadline, token).
Reading checks every field's type, the cell's included, so a stale or
hand-edited file fails at start-up with a message that names the field, not
later with a ``KeyError`` in the middle of a window.
"""

from __future__ import annotations

import json
import math
import types
import typing
import dataclasses
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from workloads import Job
from wsblock import atomic
from wsblock.engine.config import CellConfig

T = TypeVar("T", bound="_Config")


class ConfigError(ValueError):
    """A config file does not match its type."""


_EXPECTED = {type(None): "null", bool: "true or false", int: "an integer", float: "a finite number",
             str: "a string"}
"""How an error names each plain type."""


def _check(name: str, value: Any, kind: Any) -> Any:
    """Check ``value`` against a type annotation; return it, converted where lossless."""
    if kind is Any:
        return value  # a section passed on as it is, its shape checked where it is read
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        for option in options:
            try:
                return _check(name, value, option)
            except ConfigError:
                pass
        expected = " or ".join(_EXPECTED.get(option, str(option)) for option in options)
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")
    if kind is type(None):
        if value is not None:
            raise ConfigError(f"{name}: expected null, got {value!r}")
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected an object, got {value!r}")
        return {_check(f"{name} key", k, key_type): _check(f"{name}.{k}", v, value_type)
                for k, v in value.items()}
    if origin is list:
        (item_type,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_check(f"{name}[{i}]", item, item_type) for i, item in enumerate(value)]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return build_checked(kind, value, prefix=f"{name}.")
    raise ConfigError(f"{name}: unsupported type {kind}")  # a bug in this module


def build_checked(cls: Any, data: Any, *, prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from parsed JSON, checking every field.

    Raises:
        ConfigError: Naming the first missing, unknown or mistyped field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected an object")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown field {prefix}{unknown[0]}")
    values = {}
    for name, spec in known.items():
        if name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"missing field {prefix}{name}")
            continue
        values[name] = _check(prefix + name, data[name], hints[name])
    return cls(**values)


class _Config:
    """Shared JSON round trip with type checks for the frozen dataclasses below."""

    @classmethod
    def from_dict(cls: type[T], data: Any, *, prefix: str = "") -> T:
        """Build the config from parsed JSON, checking every field.

        Raises:
            ConfigError: Naming the first missing, unknown or mistyped field.
        """
        return build_checked(cls, data, prefix=prefix)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the cell as :meth:`CellConfig.to_dict` gives it)."""
        data = asdict(self)  # type: ignore[call-overload]
        cell = getattr(self, "cell", None)
        if isinstance(cell, CellConfig):
            data["cell"] = cell.to_dict()
        return data

    def write(self, path: str | Path) -> None:
        """Write the config as JSON (atomically)."""
        atomic.write_json(path, self.to_dict())

    @classmethod
    def read(cls: type[T], path: str | Path) -> T:
        """Read and check a config written by :meth:`write`.

        Raises:
            ConfigError: If the file is unreadable or does not match the type.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class JobConfig(_Config):
    """A job as the runner describes it (the data directory is the server's).

    Attributes:
        workload: Workload name.
        units: Units of work per job.
        chunk_units: Units per step (the whole job unless chunked).
        params: Validated workload parameters.
    """

    workload: str
    units: int
    chunk_units: int
    params: dict[str, bool | int | float | str] = field(default_factory=dict)

    def job(self, data_dir: str = "") -> Job:
        """The :class:`workloads.Job` this spec describes."""
        return Job(self.workload, self.units, chunk_units=self.chunk_units,
                   params=dict(self.params), data_dir=data_dir)


@dataclass(frozen=True)
class ServerConfig(_Config):
    """Everything the server process needs.

    Attributes:
        cell: The cell; the server applies its axes and settings (bind
            address, keepalive, strategy and pool, probe, ...).
        data_dir: Directory of generated input data.
        warm_job: Small job run before the window to warm pools.
        stats_path: Where the server writes its measurements.
        deadline: ``time.time()`` after which the process kills itself.
        token: Identifies the load's connections, the only ones whose jobs
            are run; ``""`` takes every connection for the load's.
        expected_job_ms: The calibration's prediction for one job.
        load_job: The job the load sends (:attr:`LoadConfig.job`): a job
            request of another workload, or with more units or chunk units,
            is refused. ``None``: bounded by the workload's own limit only.
    """

    cell: CellConfig
    data_dir: str
    warm_job: JobConfig
    stats_path: str
    deadline: float
    token: str = ""
    expected_job_ms: float | None = None
    load_job: JobConfig | None = None


@dataclass(frozen=True)
class LoadConfig(_Config):
    """Everything the load process needs.

    Attributes:
        cell: The cell; the load applies its keepalive settings, its
            connections and its echo schedule.
        uri: The server's URI.
        open_timeout: Opening handshake timeout (s).
        job: The job each job connection sends (sized by the runner).
        results_path: Where the load writes its results.
        deadline: ``time.time()`` after which the process kills itself.
        token: Sent in the ``X-Wsblock-Token`` header of every connection.
    """

    cell: CellConfig
    uri: str
    open_timeout: float
    job: JobConfig
    results_path: str
    deadline: float
    token: str = ""


TOKEN_HEADER = "X-Wsblock-Token"
"""Header in which the load identifies its connections to the server."""
