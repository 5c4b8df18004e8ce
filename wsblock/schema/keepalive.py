"""The keepalive settings of a cell, as one value, and what follows from them.

Four axes set a connection's keepalive (:data:`wsblock.schema.axes.KEEPALIVE`):
``ping_interval`` and ``ping_timeout`` for both sides, whether the load pings
too (``client_pings``), and the timeout the server's handler may assign
instead (``handler_ping_timeout``). The engine reads from them the keepalive
cycle a window must cover, the boundary model each side's timeout, the
report a column of its disconnect map: all through :class:`Keepalive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from wsblock.schema import axes
from wsblock.schema.axis import is_none


def timeout_sort_key(value: Any) -> float:
    """Sort keepalive settings ascending, ``none`` (wait forever) last."""
    return math.inf if is_none(value) else float(value)


@dataclass(frozen=True)
class Keepalive:
    """The keepalive settings of one cell.

    Attributes:
        ping_interval: Seconds between pings of each side, or ``None`` for no pings.
        ping_timeout: Seconds either side waits for a pong, or ``None`` for
            "wait forever".
        client_pings: Whether the load process sent pings of its own.
        handler_ping_timeout: What the server's handler assigned to
            ``connection.ping_timeout``: ``None`` when it did not (unset),
            ``"none"`` or seconds.
    """

    ping_interval: float | None
    ping_timeout: float | None
    client_pings: bool = True
    handler_ping_timeout: float | str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "Keepalive":
        """The setting of a cell's ``params``, a tidy row, an aggregated cell or a skip's params.

        Records older than the keepalive variants have neither
        ``client_pings`` nor ``handler_ping_timeout``: they ran with client
        pings and an unset handler timeout, the defaults.
        """
        return cls(**{name: axes.get(name).normal(row[name] if name in row else axes.get(name).default)
                      for name in axes.KEEPALIVE})

    @property
    def client_timeout(self) -> float | None:
        """The load's pong timeout (``None``: it sends no pings, or waits forever)."""
        return self.ping_timeout if self.client_pings else None

    @property
    def server_timeout(self) -> float | None:
        """The server's pong timeout after the handler's override (``None``: no timeout)."""
        handler = self.handler_ping_timeout
        if handler is None:
            return self.ping_timeout
        if handler == "none":
            return None
        return float(handler)

    @property
    def can_fail(self) -> bool:
        """Whether any keepalive timeout can fail a connection."""
        return self.ping_interval is not None and (
            self.client_timeout is not None or self.server_timeout is not None)

    @property
    def cycle_s(self) -> float | None:
        """Seconds of one keepalive cycle, or ``None`` when no keepalive can fail.

        The server pings with ``ping_interval`` and its own timeout; the load
        pings too unless ``client_pings`` is false. The shorter cycle of the
        two sides decides, since either side's failure ends the connection.
        """
        if self.ping_interval is None:
            return None
        timeouts = [t for t in (self.server_timeout, self.client_timeout) if t is not None]
        if not timeouts:
            return None
        return self.ping_interval + min(timeouts)

    @property
    def budget_s(self) -> float | None:
        """``ping_interval + ping_timeout`` (``None`` without keepalive)."""
        return axes.keepalive_budget(self.ping_interval, self.ping_timeout)

    def axes(self) -> dict[str, Any]:
        """The setting as column values, for a lookup and ``Skip.matches``."""
        return {name: getattr(self, name) for name in axes.KEEPALIVE}

    def sort_key(self) -> tuple[Any, ...]:
        """Short timeouts first, none last; then interval, client pings, handler."""
        handler = self.handler_ping_timeout
        rank = (0, 0.0) if handler is None else ((2, 0.0) if isinstance(handler, str) else (1, float(handler)))
        return (timeout_sort_key(self.ping_timeout), timeout_sort_key(self.ping_interval),
                not self.client_pings, rank)
