"""Rules between axes, shared by the command line and matrix files.

An axis checks its own values (:mod:`wsblock.schema.axes`); a rule here
refuses a combination of values that the command line refuses, so a matrix
file cannot run a cell the command line would not.
"""

from __future__ import annotations

from typing import Any


def ping_timeout_without_pings(ping_interval: Any, ping_timeout: Any, *, interval_name: str = "--ping-interval",
                               timeout_name: str = "--ping-timeout") -> str | None:
    """Say why a ``ping_timeout`` given with ``ping_interval`` none is refused, or ``None``.

    No pings are sent without a ping interval, so a timeout has nothing to
    time out: a cell that states one says something it did not test.

    Args:
        ping_interval: The cell's ping interval (``None``: no pings).
        ping_timeout: The ping timeout given (``None``: none given).
        interval_name: How the caller names the interval (an option, a key).
        timeout_name: How the caller names the timeout.
    """
    if ping_timeout is not None and ping_interval is None:
        return f"{timeout_name} has no effect with {interval_name} none (no pings are sent)"
    return None
