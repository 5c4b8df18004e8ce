"""Durations said for people, in the shortest unit that keeps them readable."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min``, ``3 min 25 s``, ``40 s``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
