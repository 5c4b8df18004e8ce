"""Labels of keepalive settings for figures and tables: only what varies within a run."""

from __future__ import annotations

from wsblock.analysis.cells import Keepalive
from wsblock.schema.axes import handler_label, seconds_label


def _varies(settings: list[Keepalive], name: str) -> bool:
    return len({repr(getattr(k, name)) for k in settings}) > 1


def keepalive_labels(settings: list[Keepalive], sep: str = ", ") -> list[str]:
    """Labels of keepalive settings: only what varies within the run.

    The timeout alone in the common case; the interval when it varies too
    (``interval / timeout``); ``no client pings`` and ``handler <timeout>``
    when those vary.
    """
    labels = []
    for k in settings:
        base = seconds_label(k.ping_timeout)
        if _varies(settings, "ping_interval"):
            base = f"{seconds_label(k.ping_interval)} / {base}"
        parts = [base]
        if _varies(settings, "client_pings") and not k.client_pings:
            parts.append("no client pings")
        if _varies(settings, "handler_ping_timeout") and k.handler_ping_timeout is not None:
            parts.append(f"handler {handler_label(k.handler_ping_timeout)}")
        labels.append(sep.join(parts))
    return labels


def keepalive_title(settings: list[Keepalive]) -> str:
    """What the keepalive labels mean, plus what all settings share.

    E.g. ``ping_timeout (ping_interval 1 s)`` or ``ping_interval /
    ping_timeout; client pings off``.
    """
    title = "ping_interval / ping_timeout" if _varies(settings, "ping_interval") else "ping_timeout"
    notes = []
    if settings and not _varies(settings, "ping_interval"):
        notes.append(f"ping_interval {seconds_label(settings[0].ping_interval)}")
    if settings and not _varies(settings, "client_pings") and not settings[0].client_pings:
        notes.append("the load sends no pings")
    if settings and not _varies(settings, "handler_ping_timeout") \
            and settings[0].handler_ping_timeout is not None:
        notes.append(f"handler sets ping_timeout {handler_label(settings[0].handler_ping_timeout)}")
    return title + (f" ({'; '.join(notes)})" if notes else "")
