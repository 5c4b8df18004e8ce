"""Connection survival: does the way the work runs keep connections alive?

The design's central claim: inline work longer than ``ping_interval +
ping_timeout`` ends in keepalive timeouts (1011); a thread or process pool
keeps connections open. Lower is better.
"""

from __future__ import annotations

from .common import tracking_classes

# The classes and their track_ methods come from the metric declarations
# (``asv=...`` in wsblock/schema/metrics.py).
globals().update(tracking_classes(__name__))
