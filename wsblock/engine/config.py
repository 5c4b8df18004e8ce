"""The parameters of one cell, with defaults and validation.

Every field is an axis or a setting of the experiment and ends up, unchanged,
under ``params`` in the record.
"""

from __future__ import annotations

import math
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

import workloads
from workloads.functions import slug
from wsblock.engine.sizing import LONGEST_MAX_WINDOW_S, MAX_WINDOW_S, MIN_WINDOW_S
from wsblock.errors import UsageError
from wsblock.schema.axis import (AXIS_KEY, REQUIRED, Axis, as_float, as_handler, as_name, as_pings, axis, boolean, is_none,
                                 bounded, handler_label, handler_seconds, name_in, number_text, one_of,
                                 positive, positive_or_unset, seconds_label, seconds_or_none,
                                 seconds_or_none_text, seconds_or_none_word, seconds_text, true_or_false,
                                 within)


MAX_WORK_MS = 600_000.0
"""Longest job a cell may ask for (10 minutes); workloads also cap their units."""

MAX_CONNECTIONS = 256
"""Most job connections, and most observers, of one cell."""

MAX_WORKERS = 64
"""Largest thread or process pool, given or derived from the job connections."""

MAX_KEEPALIVE_S = 3600.0
"""Longest keepalive interval or timeout."""

LIMITS: dict[str, tuple[float, float]] = {
    "duration": (0.0, 3600.0),
    "warmup": (0.0, 600.0),
    "close_timeout": (0.0, 600.0),
    "echo_interval_ms": (1.0, 60_000.0),
    "chunk_ms": (0.1, 60_000.0),
    "probe_interval_ms": (0.1, 1000.0),
    "stall_ms": (1.0, 60_000.0),
    "max_window": (MIN_WINDOW_S, LONGEST_MAX_WINDOW_S),
}
"""Inclusive ``(low, high)`` of each number setting (low 0 means "positive");
an axis declares its own range."""


def default_start_method() -> str:
    """Return the process start method used when none is given.

    ``forkserver`` on Linux (forking a process that runs threads, as the
    server does, is unsafe), ``spawn`` elsewhere.
    """
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


class _WorkloadName:
    """Parser and check of the workload axis: a catalogue name or a user's function.

    A function (``package.module:function``, or a name an installed package
    registers) is imported here, so a bad one is refused with its cause
    before anything runs.
    """

    def parse(self, key: str, value: Any) -> Any:
        try:
            self(key, value)
        except UsageError as exc:
            raise UsageError(f"{key}: {exc}") from None
        return value

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise UsageError(f"unknown workload {value!r} (choose from {', '.join(workloads.names())}, "
                             f"or name a function as package.module:function)")
        try:
            workloads.lookup(value)
        except workloads.WorkloadError as exc:
            raise UsageError(str(exc)) from None

    def __str__(self) -> str:
        return ", ".join(workloads.names()) + ", or a function as package.module:function"


_WORKLOAD = _WorkloadName()


def _work_ms_label(value: Any) -> str:
    return "once per job" if value is None else f"{float(value):g} ms"


LOOPS = ("asyncio", "uvloop")
"""Event loops the server can run on."""


class _LoopName:
    """Check of the loop axis: a known loop whose package is installed."""

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or value not in LOOPS:
            raise UsageError(f"unknown loop {value!r} (choose from {', '.join(LOOPS)})")
        if value == "uvloop":
            import importlib.util

            if importlib.util.find_spec("uvloop") is None:
                raise UsageError("loop uvloop needs the uvloop package, which is not installed "
                                 "(pip install 'wsblock[uvloop]'; it exists for Linux and macOS)")

    def __str__(self) -> str:
        return ", ".join(LOOPS)


SERVERS = ("asyncio", "threaded")
"""websockets servers a cell can run: ``websockets.asyncio.server`` and
``websockets.sync.server`` (threads; no event loop)."""

THREADED_KEEPALIVE_SINCE = "15.0"
"""First websockets release whose threaded server sends keepalive pings."""


def threaded_keepalive_missing() -> str | None:
    """Say why the installed websockets cannot run the threaded server, or ``None`` if it can.

    Its threaded server takes ``ping_interval`` and ``ping_timeout`` only
    since websockets 15.0; without them it would measure a server that never
    pings, which is not the cell asked for.
    """
    import inspect

    try:
        from websockets.sync.server import serve
    except ImportError:
        serve = None
    if serve is not None and {"ping_interval", "ping_timeout"} <= set(inspect.signature(serve).parameters):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("websockets")
    except PackageNotFoundError:
        installed = "unknown"
    return (f"the threaded server of websockets {installed} has no keepalive pings "
            f"(added in websockets {THREADED_KEEPALIVE_SINCE})")


def _strategies() -> list[str]:
    # Imported when first asked: the strategies import the process machinery.
    from wsblock.engine import strategies

    return strategies.names()


@dataclass
class CellConfig:
    """One cell of the experiment.

    Attributes:
        workload: Workload name (see ``wsblock list``), or a user's function
            as ``package.module:function`` (:mod:`workloads.functions`).
        work_ms: Target duration of one job on an idle machine, in ms; turned
            into fixed work through the calibration. ``None`` for a user's
            function without ``units``, which runs once per job.
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
        max_window: Longest window sized to what the cell must observe, in
            seconds, from 3 to 3600; an explicit ``duration`` is obeyed
            whatever it is. Default: 600 (10 minutes), enough for three
            keepalive cycles at websockets' defaults.
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
        workload_params: Workload parameters, e.g. ``{"chunksize": 10000}``;
            for a user's function, its keyword arguments.
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
        switch_interval_ms: The server's ``sys.setswitchinterval``, in ms:
            how long a thread holding the GIL keeps it while another waits.
            Default: ``None`` (leave the interpreter's 5 ms).
        loop: The server's event loop, ``asyncio`` (default) or ``uvloop``
            (an optional dependency). The load process always runs asyncio's
            loop, so only the server under test changes.
        server: The websockets server, ``asyncio`` (default:
            ``websockets.asyncio.server``) or ``threaded``
            (``websockets.sync.server``: a thread per connection, no event
            loop; ``inline`` blocks the connection's handler thread). It
            needs websockets 15.0 or later (keepalive in the threaded
            server); ``chunked`` and ``uvloop`` have no meaning there.
    """

    # Axes (see wsblock.schema.axis.axis): a field declared with axis() is an
    # axis of the experiment; the matrix file, the `wsblock run` options,
    # the cell id, the tidy table and asv read its declaration. Axes enter
    # a cell id in the order of these fields.
    workload: str = axis(REQUIRED, Axis(
        description="the work the server does (see wsblock list), or a function as package.module:function",
        parse=_WORKLOAD.parse, normal=as_name, check=_WORKLOAD,
        id_part=slug, label=str, asv="always", toml_key="workloads",
        examples=("pure_python", "blocking_io")))
    work_ms: float | None = axis(REQUIRED, Axis(
        description="target length of one job on an idle machine, in ms "
                    "(not for a function without a units parameter, which runs once per job)",
        parse=positive, normal=as_float, check=within(0.0, MAX_WORK_MS, allow=(None,)),
        id_part=lambda v: None if v is None else f"{number_text(v)}ms", label=_work_ms_label,
        asv="always", metavar="MS", examples=(200, 2500)))
    strategy: str = axis(REQUIRED, Axis(
        description="how the server runs a job",
        parse=name_in(_strategies, "strategy"), normal=as_name, check=one_of(_strategies, "strategy"),
        id_part=str, label=str, asv="always", toml_key="strategies",
        examples=("inline", "thread")))
    ping_interval: float | None = axis(20.0, Axis(
        description="keepalive ping interval of server and client, seconds or none",
        parse=seconds_or_none, normal=as_float, check=within(0.0, MAX_KEEPALIVE_S, allow=(None,)),
        id_part=lambda v: f"pi{seconds_text(v)}", label=seconds_label, asv="always",
        metavar="S|none", from_text=seconds_or_none_text, none_text="none", examples=(1, "none")))
    ping_timeout: float | None = axis(20.0, Axis(
        description="keepalive pong timeout of server and client, seconds or none",
        parse=seconds_or_none, normal=as_float, check=within(0.0, MAX_KEEPALIVE_S, allow=(None,)),
        id_part=lambda v: f"pt{seconds_text(v)}", label=seconds_label, asv="always",
        metavar="S|none", from_text=seconds_or_none_text, none_text="none", examples=(0.5, "none")))
    # Settings: shared by the cells of a matrix.
    close_timeout: float = 10.0
    duration: float | None = None
    max_window: float = MAX_WINDOW_S
    warmup: float = 2.0
    job_connections: int = 2
    observers: int = 4
    echo_interval_ms: float = 100.0
    workers: int | None = None
    chunk_ms: float = 10.0
    start_method: str = field(default_factory=default_start_method)
    workload_params: dict[str, bool | int | float | str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    probe_interval_ms: float = 1.0
    stall_ms: float = 50.0
    # The keepalive variants: axes too.
    client_pings: bool = axis(True, Axis(
        description="whether the load sends keepalive pings of its own",
        parse=boolean, normal=as_pings, check=true_or_false,
        id_part=lambda v: None if v else "noclientpings",
        label=lambda v: "client pings" if v else "no client pings", asv="varied",
        examples=(True, False)))
    handler_ping_timeout: float | str | None = axis(None, Axis(
        description="what the server's handler assigns to connection.ping_timeout",
        parse=handler_seconds, normal=as_handler,
        check=within(0.0, MAX_KEEPALIVE_S, allow=(None, "none")),
        id_part=lambda v: None if v is None else f"hpt{v if isinstance(v, str) else number_text(v)}",
        label=handler_label, asv="varied", metavar="S|none", from_text=seconds_or_none_word,
        none_text="unset", examples=("unset", 5)))
    min_cycles: int = 3
    switch_interval_ms: float | None = axis(None, Axis(
        description="the server's sys.setswitchinterval, in ms; unset leaves the interpreter's (5 ms)",
        parse=positive_or_unset, normal=as_float, check=within(0.01, 1000.0, allow=(None,)),
        id_part=lambda v: None if v is None else f"swi{number_text(v)}",
        label=lambda v: "unset" if v is None else f"{float(v):g} ms", asv="varied",
        metavar="MS", none_text="unset", examples=("unset", 1)))
    loop: str = axis("asyncio", Axis(
        description="the server's event loop: asyncio's own, or uvloop (timers of 1 ms resolution)",
        parse=name_in(lambda: list(LOOPS), "loop"), normal=lambda v: "asyncio" if is_none(v) else str(v),
        check=_LoopName(), id_part=lambda v: None if v == "asyncio" else str(v), label=str, asv="varied",
        metavar="NAME", examples=("asyncio", "uvloop")))
    server: str = axis("asyncio", Axis(
        description="the websockets server: asyncio's, or the threaded one (websockets.sync.server, "
                    "a thread per connection; inline blocks that thread)",
        parse=name_in(lambda: list(SERVERS), "server"), normal=lambda v: "asyncio" if is_none(v) else str(v),
        check=one_of(lambda: list(SERVERS), "server"), id_part=lambda v: None if v == "asyncio" else str(v),
        label=str, asv="varied", metavar="NAME", examples=("asyncio", "threaded")))

    ignored_work_ms: ClassVar[float | None] = None
    """A ``work_ms`` given for a function that runs once per job, set aside
    by :meth:`validate` (not a field: it is no part of the cell)."""

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

        Only the axes without a default (``workload``, ``work_ms``,
        ``strategy``) are required; the others take their defaults. Types
        are checked by :meth:`validate`.

        Raises:
            UsageError: On a non-object, unknown keys or a missing key.
        """
        if not isinstance(data, dict):
            raise UsageError("cell parameters must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown cell parameter: {', '.join(map(str, unknown))}")
        missing = [f.name for f in fields(cls)
                   if f.default is MISSING and f.default_factory is MISSING and f.name not in data]
        if missing:
            raise UsageError(f"missing cell parameter: {', '.join(missing)}")
        return cls(**data)

    def validate(self) -> "CellConfig":
        """Check every field's type and range, and resolve workload parameters.

        Each axis is checked as it declares; the limits of the settings are
        in :data:`LIMITS`. Booleans are never accepted as numbers.

        Returns:
            ``self``, for chaining.

        Raises:
            UsageError: Naming the first bad field.
        """
        for f in fields(self):
            declaration = f.metadata.get(AXIS_KEY)
            if declaration is not None:
                declaration.check(f.name, getattr(self, f.name))
        for name in ("close_timeout", "echo_interval_ms", "chunk_ms",
                     "probe_interval_ms", "stall_ms", "max_window"):
            _bounded(name, getattr(self, name))
        if self.duration is not None:
            # None: the runner sizes the window to what the cell must observe.
            _bounded("duration", self.duration)
        if isinstance(self.min_cycles, bool) or not isinstance(self.min_cycles, int) or not 1 <= self.min_cycles <= 100:
            raise UsageError("min_cycles must be an integer from 1 to 100")
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
        workload = workloads.lookup(self.workload)
        try:
            self.workload_params = workload.resolve_params(self.workload_params)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if isinstance(workload, workloads.FunctionWorkload) and not workload.calibrated:
            # Called once per job: its length is the function's, measured.
            if self.work_ms is not None:
                self.ignored_work_ms = self.work_ms
                self.work_ms = None
        elif self.work_ms is None:
            raise UsageError(f"work_ms is required for workload {self.workload}")
        reason = self.unsupported_reason()
        if reason:
            raise UsageError(reason)
        return self

    def unsupported_reason(self) -> str | None:
        """Say why this cell cannot be measured, or ``None`` if it can.

        A matrix lists such cells as skipped, with this reason; ``validate``
        refuses them. The pairs: a strategy that cannot run the workload; on
        the threaded server, a strategy that yields to an event loop (it has
        none), a loop other than asyncio's (it runs none), or a websockets
        whose threaded server sends no keepalive pings; and uvloop where it is
        not installed.
        """
        from wsblock.engine import strategies

        reason = strategies.get(self.strategy).unsupported_reason(workloads.get(self.workload))
        if reason:
            return f"{self.strategy} x {self.workload} is not supported: {reason}"
        if self.loop == "uvloop":
            try:
                _LoopName()("loop", self.loop)
            except UsageError as exc:
                return str(exc)  # a matrix skips the cells it cannot run here
        if self.server == "threaded":
            if strategies.has(self.strategy, "chunks"):
                return (f"{self.strategy} x server threaded is not supported: the threaded server has no "
                        f"event loop for the steps to yield to")
            if self.loop != "asyncio":
                return (f"loop {self.loop} x server threaded is not supported: the threaded server "
                        f"runs no event loop")
            missing = threaded_keepalive_missing()
            if missing:
                return f"server threaded is not supported: {missing}"
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bounded(name: str, value: Any) -> None:
    bounded(name, value, *LIMITS[name])


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} must be an integer from {low} to {high}, got {value!r}")
