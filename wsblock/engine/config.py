"""The parameters of one cell, with defaults and validation.

Every field is an axis or a setting of the experiment and ends up, unchanged,
under ``params`` in the record.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, Collection

import workloads
from wsblock.errors import UsageError
from wsblock.schema import settings
from wsblock.schema.axes import LoopName
from wsblock.schema.axes import field_of as axis
from wsblock.schema.axis import AXIS_KEY
from wsblock.schema.settings import MAX_WORKERS, SETTING_KEY
from wsblock.schema.settings import setting as declared

LIMITS = settings.LIMITS
"""Inclusive ``(low, high)`` of each number setting, from its declaration
(:data:`wsblock.schema.settings.SETTINGS`); an axis declares its own range."""

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
        blas_threads: Threads of each BLAS/OpenMP pool of the server
            process. Default: ``None`` (pinned to one).
        job_gap_ms: Pause of each job connection between a reply and its
            next job, in ms. Default: 0 (back to back).
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

    # Axes (wsblock.schema.axes) and settings (wsblock.schema.settings):
    # each field takes its default and its declaration from there; a test
    # checks that the annotations are the declared types. Axes enter a cell
    # id in the order of these fields.
    workload: str = axis("workload")
    work_ms: float | None = axis("work_ms")
    strategy: str = axis("strategy")
    ping_interval: float | None = axis("ping_interval")
    ping_timeout: float | None = axis("ping_timeout")
    # Settings: shared by the cells of a matrix.
    close_timeout: float = declared("close_timeout")
    duration: float | None = declared("duration")
    max_window: float = declared("max_window")
    warmup: float = declared("warmup")
    job_connections: int = declared("job_connections")
    observers: int = declared("observers")
    echo_interval_ms: float = declared("echo_interval_ms")
    workers: int | None = declared("workers")
    chunk_ms: float = declared("chunk_ms")
    start_method: str = declared("start_method")
    workload_params: dict[str, bool | int | float | str] = declared("workload_params")
    host: str = declared("host")
    port: int = declared("port")
    probe_interval_ms: float = declared("probe_interval_ms")
    stall_ms: float = declared("stall_ms")
    # The keepalive variants: axes too.
    client_pings: bool = axis("client_pings")
    handler_ping_timeout: float | str | None = axis("handler_ping_timeout")
    min_cycles: int = declared("min_cycles")
    switch_interval_ms: float | None = axis("switch_interval_ms")
    loop: str = axis("loop")
    server: str = axis("server")
    blas_threads: int | None = axis("blas_threads")
    job_gap_ms: float = declared("job_gap_ms")

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

    def validate(self, stated: Collection[str] | None = None) -> "CellConfig":
        """Check every field's type and range and the rules between them, and resolve workload parameters.

        Each axis and setting is checked as it declares
        (:mod:`wsblock.schema.axes`, :mod:`wsblock.schema.settings`), then
        every rule between them (:data:`wsblock.schema.settings.RULES`).
        Booleans are never accepted as numbers.

        Args:
            stated: The parameters the input gave (a matrix file's keys);
                ``None``: those that differ from their default (a cell
                alone cannot tell a default given from one left out).

        Returns:
            ``self``, for chaining.

        Raises:
            UsageError: Naming the first bad field, or the rule broken.
        """
        for f in fields(self):
            declaration = f.metadata.get(AXIS_KEY) or f.metadata[SETTING_KEY]
            declaration.check(f.name, getattr(self, f.name))
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if stated is None:
            stated = [name for name, value in values.items() if value != _default(name)]
        refused = settings.refusal(values, stated)
        if refused:
            raise UsageError(refused)
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
                LoopName()("loop", self.loop)
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


def _default(name: str) -> Any:
    f = next(f for f in fields(CellConfig) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default
