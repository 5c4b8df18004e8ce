"""The window's end as a cut-off: the server does no work for the load after it.

Nothing a job does after the window's end can be recorded as anything but a
job time, and waiting for that time costs the matrix a whole job per cell
whose job holds the loop or the GIL. So from the window's end on, the
server's strategies cut the load's jobs off where they can, and the job
ledger records each cut job as *censored* at the moment it was cut (its time
so far is a lower bound, as for any job still running when the server
stops):

* a job handed to a pool inside the window whose work has not begun when the
  window ends (a worker busy, or its thread waiting for the GIL) is not run:
  the worker checks the clock before it starts the work;
* a job of a built-in workload running **inline** on the asyncio server's
  main thread is interrupted at the window's end: an interval timer
  (``SIGALRM``) raises in the job at the first point Python regains control
  (at once in Python code and in ``time.sleep``; after a C call that holds
  the GIL returns, which saves nothing but changes nothing either). A user's
  function is never interrupted: its clean-up is its own business.

Both servers cut their pools' jobs alike (the serving core,
:mod:`wsblock.engine.serving`, records the cut). What cannot be cut runs to
its end as before: a job already running in a thread or a worker process
(censored at the stop), and an inline job on the threaded server (it runs in
a handler thread, and only the main thread receives signals).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workloads import Job, JobTiming, execute


class Cut(Exception):
    """A job the window's end cut off, raised to the server's handler.

    Args:
        at: When it was cut (monotonic seconds).
        worked: Whether its work had begun.
    """

    def __init__(self, at: float, worked: bool) -> None:
        super().__init__(at, worked)
        self.at = at
        self.worked = worked


class NotStarted(Exception):
    """Raised in a pool worker for a job whose work would begin after the window's end."""

    def __init__(self, at: float) -> None:
        super().__init__(at)
        self.at = at


class _WindowEnded(BaseException):
    # A BaseException, so that a workload's ``except Exception`` cannot swallow it.
    pass


def execute_before(job: Job, not_after: float) -> JobTiming:
    """Run ``job`` in a pool worker unless the window has ended (module level, so it pickles).

    Raises:
        NotStarted: ``time.monotonic()`` (system-wide on Linux, so the
            server's clock too) is at or past ``not_after``.
    """
    now = time.monotonic()
    if now >= not_after:
        raise NotStarted(now)
    return execute(job)


class InlineAlarm:
    """Interrupts an inline job still running on the main thread at one instant.

    Only the main thread runs Python signal handlers, so the handler is
    installed there (:meth:`install`); the timer itself may be set from any
    thread (:meth:`arm`), so that the window's end is set even while an
    inline job holds the loop. The handler raises only while
    :meth:`running` is active, so a wake-up between jobs (the loop free)
    does nothing.
    """

    def __init__(self) -> None:
        self._active = False
        self._installed = False
        self._previous: Any = None

    def install(self) -> bool:
        """Install the handler; returns whether it could be (main thread only)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return False
        self._previous = signal.signal(signal.SIGALRM, self._fire)
        self._installed = True
        return True

    @property
    def installed(self) -> bool:
        """Whether the handler is installed (jobs run under it may be interrupted)."""
        return self._installed

    def arm(self, at: float) -> None:
        """Fire at monotonic time ``at`` (from any thread; nothing without :meth:`install`)."""
        if self._installed:
            signal.setitimer(signal.ITIMER_REAL, max(1e-6, at - time.monotonic()))

    def _fire(self, signum: int, frame: Any) -> None:
        if self._active:
            self._active = False
            raise _WindowEnded()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mark the code inside as an inline job the alarm may interrupt."""
        self._active = True
        try:
            yield
        finally:
            self._active = False

    def uninstall(self) -> None:
        """Cancel the timer and restore the previous handler."""
        if self._installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)
            self._installed = False


def run_inline(job: Job, alarm: InlineAlarm | None) -> JobTiming:
    """Run ``job`` in this thread, interrupted when the alarm fires.

    Raises:
        Cut: The alarm interrupted the job.
    """
    if alarm is None or not alarm.installed:
        return execute(job)
    try:
        with alarm.running():
            return execute(job)
    except _WindowEnded:
        raise Cut(time.monotonic(), worked=True) from None


__all__ = ["Cut", "InlineAlarm", "NotStarted", "execute_before", "run_inline"]
