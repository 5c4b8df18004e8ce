"""The measurement window, shared by the server and the load process.

The runner picks the window as wall-clock times; each process converts them
to its own monotonic clock once, so that measurements inside the window are
immune to clock adjustments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A half-open interval ``[start, end)`` on this process's monotonic clock.

    Attributes:
        start: Window start, ``time.monotonic()`` seconds.
        end: Window end, ``time.monotonic()`` seconds.
    """

    start: float
    end: float

    @classmethod
    def from_wall(cls, start_wall: float, end_wall: float) -> "Window":
        """Convert wall-clock (``time.time()``) bounds to the monotonic clock."""
        offset = time.monotonic() - time.time()
        return cls(start_wall + offset, end_wall + offset)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def contains(self, t: float) -> bool:
        """Whether monotonic time ``t`` lies in the window."""
        return self.start <= t < self.end

    def since_start(self, t: float) -> float:
        """Seconds from the window start to ``t``."""
        return t - self.start

    def overlap(self, a: float, b: float) -> float:
        """Seconds of ``[a, b)`` that fall inside the window."""
        return max(0.0, min(b, self.end) - max(a, self.start))
