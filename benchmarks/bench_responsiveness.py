"""Responsiveness: how late the event loop runs, and what a client feels.

``track_loop_delay`` is the loop figure: the watchdog's longest stall wherever
the loop stalled, the in-loop probe's p99 only where it never did
(``wsblock/schema/loopdelay.py``); ``track_loop_lag_p99`` is the probe
alone (how late a 1 ms sleep woke, one sample per wake-up, so it can
understate a blocked loop). ``track_echo_p99`` is measured by observer
connections from each echo's *scheduled* send time, so a stall is not hidden
by a waiting sender. Times are in milliseconds; lower is better for every one.
"""

from __future__ import annotations

from .common import tracking_classes

# The classes and their track_ methods come from the metric declarations
# (``asv=...`` in wsblock/schema/metrics.py).
globals().update(tracking_classes(__name__))
