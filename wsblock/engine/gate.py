"""Whom a cell's server serves: the load's connections and the cell's job; every other client counted.

The runner gives the server and the load one random token per cell; the load
sends it in the ``X-Wsblock-Token`` header of every connection. The server
answers anyone's echoes, but runs a job only for a connection that carried
the token, and only the cell's job: its workload, at most its units (and
chunk units). Anything else is refused with an error reply and counted, so no
client can make the server run work it was not asked to measure.

A connection that never completes the opening handshake (a raw TCP
connection, a client that sends nothing or too slowly, a request that is not
a WebSocket upgrade) reaches no handler, yet it costs the server an accept, a
read and a timer: :class:`HandshakeWatch` counts it, unless its request
carried the token (a load connection whose handshake failed, which the load
counts itself among its failed connects).
"""

from __future__ import annotations

import hmac
import threading
from typing import Any, Callable

from workloads import Job
from wsblock.engine.process_config import TOKEN_HEADER, JobConfig


class Gate:
    """The token and the job a cell's server accepts.

    Args:
        token: The cell's token; ``""`` takes every connection for the load's.
        job: The job the load sends; ``None`` bounds jobs by the workload's
            own limit only.
    """

    def __init__(self, token: str, job: JobConfig | None) -> None:
        self.token = token
        self.job = job

    def is_load(self, request: Any) -> bool:
        """Whether an HTTP request (``None``: none was read) carried the cell's token."""
        if not self.token:
            return True
        headers = getattr(request, "headers", None)
        offered = headers.get(TOKEN_HEADER) if headers is not None else None
        # Compared in constant time: the answer must not leak how much of a
        # guess was right.
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    def refusal(self, job: Job, ours: bool) -> str | None:
        """Why a parsed job request is not run, or ``None`` to run it.

        Args:
            job: The request, parsed and checked against the catalogue.
            ours: Whether its connection carried the token.
        """
        if not ours:
            return "jobs are run only for the cell's load"
        expected = self.job
        if expected is None:
            return None
        if job.workload != expected.workload:
            return f"this server runs {expected.workload} jobs only"
        if job.units > expected.units or job.chunk_units > expected.chunk_units:
            return (f"jobs of this cell have at most {expected.units} units "
                    f"in steps of at most {expected.chunk_units}")
        return None


class HandshakeWatch:
    """Counts connections that ended their opening handshake without opening, and those still in it.

    Thread-safe: the threaded server calls it from one thread per connection.

    Args:
        is_load: Whether a request (or ``None``) carried the cell's token.
    """

    def __init__(self, is_load: Callable[[Any], bool]) -> None:
        self._is_load = is_load
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[float, Any]] = {}
        self._failed: list[float] = []

    def opened(self, connection: Any, at: float) -> None:
        """A TCP connection was accepted at monotonic time ``at``; its handshake begins.

        Args:
            connection: Its websockets connection, whose ``request`` is set
                once the client's request has been read.
        """
        with self._lock:
            self._pending[id(connection)] = (at, connection)

    def ended(self, connection: Any, *, opened: bool) -> None:
        """Its opening handshake ended, ``opened`` if it succeeded."""
        with self._lock:
            entry = self._pending.pop(id(connection), None)
            if entry is not None and not opened and not self._is_load(getattr(connection, "request", None)):
                self._failed.append(entry[0])

    def count(self, before: float) -> int:
        """Connections accepted before ``before`` that failed their handshake or are still in it.

        A connection still waiting for its request when the server reports is
        counted too: the load's own requests are sent as soon as it connects,
        so only a foreign client can be that slow.
        """
        with self._lock:
            pending = list(self._pending.values())
            failed = sum(1 for at in self._failed if at < before)
        return failed + sum(1 for at, connection in pending
                            if at < before and not self._is_load(getattr(connection, "request", None)))


def accepted_at(connection: Any, default: float) -> float:
    """When ``connection`` was accepted (monotonic s): a foreign client counts if it came before the window's end.

    ``default`` for a connection not made by the classes below.
    """
    return float(getattr(connection, "accepted_at", default))


def asyncio_connection(watch: HandshakeWatch) -> type:
    """A ``websockets.asyncio.server.ServerConnection`` that reports its handshake to ``watch``.

    Passed to ``serve(create_connection=...)``.
    """
    import time

    from websockets.asyncio.server import ServerConnection
    from websockets.protocol import State

    class WatchedConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.accepted_at = time.monotonic()
            watch.opened(self, self.accepted_at)

        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().handshake(*args, **kwargs)
            finally:
                # Also when cancelled by the server's open timeout.
                watch.ended(self, opened=self.protocol.state is State.OPEN)

    return WatchedConnection


def sync_connection(watch: HandshakeWatch) -> type:
    """A ``websockets.sync.server.ServerConnection`` that reports its handshake to ``watch``.

    Passed to ``serve(create_connection=...)``.
    """
    import time

    from websockets.protocol import State
    from websockets.sync.server import ServerConnection

    class WatchedConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.accepted_at = time.monotonic()
            watch.opened(self, self.accepted_at)

        def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().handshake(*args, **kwargs)
            finally:
                watch.ended(self, opened=self.protocol.state is State.OPEN)

    return WatchedConnection
