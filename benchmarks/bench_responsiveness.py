"""Responsiveness: how late the event loop runs, and what a client feels.

``track_loop_lag_p99`` is the server's in-loop probe (how late a 1 ms sleep
woke); ``track_echo_p99`` is measured by observer connections from each echo's
*scheduled* send time, so a stall is not hidden by a waiting sender. Both are
99th percentiles in milliseconds; lower is better.
"""

from __future__ import annotations

from .common import tracking_classes

# The classes and their track_ methods come from the metric declarations
# (``asv=...`` in wsblock/schema/metrics.py).
globals().update(tracking_classes(__name__))
