"""The rule between ``ping_interval`` and ``ping_timeout``, as the command line asks it.

The rule itself is declared with the others in :data:`wsblock.schema.settings.RULES`
and runs in cell validation; this asks it of two values alone, naming them
as the caller does.
"""

from __future__ import annotations

from typing import Any

from wsblock.schema import settings


def ping_timeout_without_pings(ping_interval: Any, ping_timeout: Any, *, interval_name: str = "--ping-interval",
                               timeout_name: str = "--ping-timeout") -> str | None:
    """Say why a ``ping_timeout`` given with ``ping_interval`` none is refused, or ``None``.

    Args:
        ping_interval: The cell's ping interval (``None``: no pings).
        ping_timeout: The ping timeout given (``None``: none given).
        interval_name: How the caller names the interval (an option, a key).
        timeout_name: How the caller names the timeout.
    """
    names = {"ping_interval": interval_name, "ping_timeout": timeout_name}
    values = {"ping_interval": ping_interval, "ping_timeout": ping_timeout}
    return settings.PING_TIMEOUT_WITHOUT_PINGS.refusal(values, ("ping_timeout",), spell=names.__getitem__)
