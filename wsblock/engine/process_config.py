"""Typed configs that cross the process boundary: runner -> server, runner -> load.

The runner builds a :class:`ServerConfig` and a :class:`LoadConfig` from the
cell, writes each as a JSON file, and the child reads it back with
:meth:`ServerConfig.read` / :meth:`LoadConfig.read`. Reading checks every
field's type, so a stale or hand-edited file fails at start-up with a message
that names the field, not later with a ``KeyError`` in the middle of a window.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from workloads import Job
from wsblock import atomic

T = TypeVar("T", bound="_Config")


class ConfigError(ValueError):
    """A config file does not match its type."""


def _check(name: str, value: Any, kind: Any) -> Any:
    """Check ``value`` against a type annotation; return it, converted where lossless."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            try:
                return _check(name, value, option)
            except ConfigError:
                pass
        raise ConfigError(f"{name}: {value!r} does not match {kind}")
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
    if isinstance(kind, type) and issubclass(kind, _Config):
        return kind.from_dict(value, prefix=f"{name}.")
    raise ConfigError(f"{name}: unsupported type {kind}")  # a bug in this module


class _Config:
    """Shared JSON round trip with type checks for the frozen dataclasses below."""

    @classmethod
    def from_dict(cls: type[T], data: Any, *, prefix: str = "") -> T:
        """Build the config from parsed JSON, checking every field.

        Raises:
            ConfigError: Naming the first missing, unknown or mistyped field.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix or cls.__name__}: expected an object")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)  # type: ignore[call-overload]

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
    params: dict[str, int] = field(default_factory=dict)

    def job(self, data_dir: str = "") -> Job:
        """The :class:`workloads.Job` this spec describes."""
        return Job(self.workload, self.units, chunk_units=self.chunk_units,
                   params=dict(self.params), data_dir=data_dir)


@dataclass(frozen=True)
class ServerConfig(_Config):
    """Everything the server process needs.

    Attributes:
        host: Bind address.
        port: Bind port; 0 picks a free one.
        ping_interval: Keepalive ping interval (s) or ``None``.
        ping_timeout: Keepalive pong timeout (s) or ``None``.
        close_timeout: Closing handshake timeout (s).
        handler_ping_timeout: Seconds, ``"none"``, or ``None`` (leave alone).
        strategy: Strategy name.
        workers: Pool size.
        start_method: Process start method.
        probe_interval_ms: Lag probe period.
        stall_ms: Loop gap that counts as a stall.
        data_dir: Directory of generated input data.
        warm_job: Small job run before the window to warm pools.
        stats_path: Where the server writes its measurements.
        deadline: ``time.time()`` after which the process kills itself.
        token: Identifies the load's connections; ``""`` accepts every
            connection as the load's.
        job: The cell's job, for estimating how far running jobs got.
        expected_job_ms: The calibration's prediction for one job.
    """

    host: str
    port: int
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    strategy: str
    workers: int
    start_method: str
    probe_interval_ms: float
    stall_ms: float
    data_dir: str
    warm_job: JobConfig
    stats_path: str
    deadline: float
    handler_ping_timeout: float | str | None = None
    token: str = ""
    expected_job_ms: float | None = None


@dataclass(frozen=True)
class LoadConfig(_Config):
    """Everything the load process needs.

    Attributes:
        uri: The server's URI.
        ping_interval: The load's own keepalive ping interval, or ``None``.
        ping_timeout: The load's keepalive pong timeout, or ``None``.
        close_timeout: Closing handshake timeout (s).
        open_timeout: Opening handshake timeout (s).
        job_connections: Connections with one job in flight each.
        observers: Echo connections.
        echo_interval_ms: Each observer's send period.
        job: The job each job connection sends.
        results_path: Where the load writes its results.
        deadline: ``time.time()`` after which the process kills itself.
        token: Sent in the ``X-Wsblock-Token`` header of every connection.
    """

    uri: str
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    open_timeout: float
    job_connections: int
    observers: int
    echo_interval_ms: float
    job: JobConfig
    results_path: str
    deadline: float
    token: str = ""


TOKEN_HEADER = "X-Wsblock-Token"
"""Header in which the load identifies its connections to the server."""
