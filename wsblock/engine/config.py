"""The parameters of one cell, with defaults and validation.

Every field is an axis or a setting of the experiment and ends up, unchanged,
under ``params`` in the record.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import workloads
from wsblock.errors import UsageError


REQUIRED_KEYS = ("workload", "work_ms", "strategy")
"""Cell parameters without a default."""

MAX_WORK_MS = 600_000.0
"""Longest job a cell may ask for (10 minutes); workloads also cap their units."""

MAX_CONNECTIONS = 256
"""Most job connections, and most observers, of one cell."""

MAX_WORKERS = 64
"""Largest thread or process pool, given or derived from the job connections."""

LIMITS: dict[str, tuple[float, float]] = {
    "work_ms": (0.0, MAX_WORK_MS),
    "duration": (0.0, 3600.0),
    "warmup": (0.0, 600.0),
    "close_timeout": (0.0, 600.0),
    "ping_interval": (0.0, 3600.0),
    "ping_timeout": (0.0, 3600.0),
    "handler_ping_timeout": (0.0, 3600.0),
    "echo_interval_ms": (1.0, 60_000.0),
    "chunk_ms": (0.1, 60_000.0),
    "probe_interval_ms": (0.1, 1000.0),
    "stall_ms": (1.0, 60_000.0),
}
"""Inclusive ``(low, high)`` of each number (low 0 means "positive")."""


def default_start_method() -> str:
    """Return the process start method used when none is given.

    ``forkserver`` on Linux (forking a process that runs threads, as the
    server does, is unsafe), ``spawn`` elsewhere.
    """
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


@dataclass
class CellConfig:
    """One cell of the experiment.

    Attributes:
        workload: Workload name (see ``wsblock list``).
        work_ms: Target duration of one job on an idle machine, in ms; turned
            into fixed work through the calibration.
        strategy: How the server runs the work: ``inline``, ``chunked``,
            ``thread`` or ``process``.
        ping_interval: Seconds between keepalive pings, or ``None`` for no
            pings. Used by server and client alike. Default: 20 (websockets).
        ping_timeout: Seconds to wait for a pong, or ``None`` to wait forever.
            Default: 20 (websockets).
        close_timeout: Seconds to wait for the closing handshake. Default: 10.
        duration: Length of the measurement window, in seconds, or ``None``
            (the default) to size it to what the cell must observe: a
            keepalive verdict and a few jobs per connection (see
            :mod:`wsblock.engine.sizing`).
        warmup: Seconds of load before the window opens. Default: 2.
        job_connections: Connections that each keep one job in flight.
            Default: 2.
        observers: Connections that send echo messages on a fixed schedule.
            Default: 4.
        echo_interval_ms: Schedule of each observer, in ms. Default: 100.
        workers: Size of the thread or process pool; ``None`` means one per
            job connection, so jobs never queue for a worker.
        chunk_ms: Target length of one step of the ``chunked`` strategy, in
            ms (workloads with a natural chunk, such as pandas, use theirs).
            Default: 10.
        start_method: ``multiprocessing`` start method of the process pool.
        workload_params: Workload parameters, e.g. ``{"chunksize": 10000}``.
        host: Address the server binds. Default: 127.0.0.1.
        port: Port the server binds; 0 picks a free one. Default: 0.
        probe_interval_ms: Period of the in-loop lag probe. Default: 1.
        stall_ms: A loop gap longer than this counts as a stall. Default: 50.
        client_pings: Whether the load process sends keepalive pings of its
            own. Browsers never do (they only answer pings); ``False`` models
            them. Default: ``True``.
        handler_ping_timeout: If set, the server's handler assigns this to
            ``connection.ping_timeout`` as soon as a connection opens (the
            "raise it inside the handler" advice); ``"none"`` assigns
            ``None``. Default: ``None`` (leave it alone).
        min_cycles: Complete keepalive cycles every original connection
            must be at risk for before the cell may say it kept them.
            Default: 3.
    """

    workload: str
    work_ms: float
    strategy: str
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    duration: float | None = None
    warmup: float = 2.0
    job_connections: int = 2
    observers: int = 4
    echo_interval_ms: float = 100.0
    workers: int | None = None
    chunk_ms: float = 10.0
    start_method: str = field(default_factory=default_start_method)
    workload_params: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    probe_interval_ms: float = 1.0
    stall_ms: float = 50.0
    client_pings: bool = True
    handler_ping_timeout: float | str | None = None
    min_cycles: int = 3

    @property
    def pool_size(self) -> int:
        """Workers of the thread or process pool.

        ``workers`` when given, else one per job connection, capped at
        :data:`MAX_WORKERS` (a pool is never larger than ``--workers`` allows).
        """
        if self.workers is not None:
            return self.workers
        return min(MAX_WORKERS, max(1, self.job_connections))

    def to_dict(self) -> dict[str, Any]:
        """Return the cell as plain JSON-ready data (pool size resolved)."""
        data = asdict(self)
        data["workers"] = self.pool_size
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "CellConfig":
        """Build a cell from :meth:`to_dict` output (or a subset of it).

        Only the keys ``workload``, ``work_ms`` and ``strategy`` are required;
        the others take their defaults. Types are checked by :meth:`validate`.

        Raises:
            UsageError: On a non-object, unknown keys or a missing key.
        """
        if not isinstance(data, dict):
            raise UsageError("cell parameters must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown cell parameter: {', '.join(map(str, unknown))}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise UsageError(f"missing cell parameter: {', '.join(missing)}")
        return cls(**data)

    def validate(self) -> "CellConfig":
        """Check every field's type and range, and resolve workload parameters.

        The limits are in :data:`LIMITS`; booleans are never accepted as
        numbers.

        Returns:
            ``self``, for chaining.

        Raises:
            UsageError: Naming the first bad field.
        """
        from wsblock.engine import strategies

        if not isinstance(self.workload, str) or self.workload not in workloads.names():
            raise UsageError(
                f"unknown workload {self.workload!r} (choose from {', '.join(workloads.names())})"
            )
        if not isinstance(self.strategy, str) or self.strategy not in strategies.names():
            raise UsageError(
                f"unknown strategy {self.strategy!r} (choose from {', '.join(strategies.names())})"
            )
        for name in ("work_ms", "close_timeout", "echo_interval_ms", "chunk_ms",
                     "probe_interval_ms", "stall_ms"):
            _bounded(name, getattr(self, name))
        if self.duration is not None:
            # None: the runner sizes the window to what the cell must observe.
            _bounded("duration", self.duration)
        if isinstance(self.min_cycles, bool) or not isinstance(self.min_cycles, int) or not 1 <= self.min_cycles <= 100:
            raise UsageError("min_cycles must be an integer from 1 to 100")
        for name in ("ping_interval", "ping_timeout"):
            if getattr(self, name) is not None:
                _bounded(name, getattr(self, name))
        if not isinstance(self.client_pings, bool):
            raise UsageError(f"client_pings must be true or false, got {self.client_pings!r}")
        if self.handler_ping_timeout is not None and self.handler_ping_timeout != "none":
            _bounded("handler_ping_timeout", self.handler_ping_timeout)
        if not _finite(self.warmup) or not 0 <= self.warmup <= LIMITS["warmup"][1]:
            raise UsageError(
                f"warmup must be from 0 to {LIMITS['warmup'][1]:g} seconds, got {self.warmup!r}"
            )
        _integer("job_connections", self.job_connections, 0, MAX_CONNECTIONS)
        _integer("observers", self.observers, 0, MAX_CONNECTIONS)
        if self.job_connections + self.observers == 0:
            raise UsageError("a cell needs at least one job connection or observer")
        if self.workers is not None:
            _integer("workers", self.workers, 1, MAX_WORKERS)
        _integer("port", self.port, 0, 65535)
        if not isinstance(self.host, str) or not self.host.strip():
            raise UsageError(f"host must be an address such as 127.0.0.1, got {self.host!r}")
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        if not isinstance(self.start_method, str) or self.start_method not in methods:
            raise UsageError(
                f"unknown start method {self.start_method!r} (choose from {', '.join(methods)})"
            )
        if not isinstance(self.workload_params, dict):
            raise UsageError(f"workload_params must be an object, got {self.workload_params!r}")
        workload = workloads.get(self.workload)
        try:
            self.workload_params = workload.resolve_params(self.workload_params)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        reason = strategies.get(self.strategy).unsupported_reason(workload)
        if reason:
            raise UsageError(f"{self.strategy} x {self.workload} is not supported: {reason}")
        return self


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bounded(name: str, value: Any) -> None:
    low, high = LIMITS[name]
    if not _finite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{name} must be from {low:g} to {high:g}, got {value!r}")


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} must be an integer from {low} to {high}, got {value!r}")
