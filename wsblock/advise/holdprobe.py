"""How long a call holds the GIL at once, measured by a thread that wants it every millisecond.

A thread that sleeps needs the GIL back to wake up: ``time.sleep`` releases
it, and the thread must take it again before its next bytecode. A probe
thread that sleeps :data:`PERIOD_S` in a loop therefore wakes late by as
long as another thread keeps the GIL from it:

* a C call that does not release the GIL (``json.loads``, building a large
  object) keeps it for the whole call: the probe wakes when the call ends;
* pure Python hands the GIL over when a waiting thread asks for it, after
  the switch interval (``sys.getswitchinterval()``, 5 ms by default): the
  probe wakes about one switch interval late, again and again;
* a call that releases the GIL (hashing, compression, BLAS, a blocking
  read) lets the probe wake on time.

An event loop run beside the call in a thread pool waits for the GIL in the
same way, so the probe's lateness is the stall the call causes there, before
anything the loop adds itself (see :mod:`wsblock.advise.stallpred`).

The probe's own wake-up is never exact: a sleep of 1 ms ends a little
later even with nobody holding the GIL (timer slack, scheduling). The median
lateness over an idle stretch (:func:`baseline`) is taken off every sample.
On a machine shared with other work, a probe not scheduled for a while reads
as late too; that is what a server's loop would see on the same machine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

PERIOD_S = 0.001
"""How long the probe sleeps between wake-ups."""

IDLE_S = 0.2
"""Idle stretch over which the probe's own lateness is measured."""

SETTLE_S = 0.02
"""Pause before and after each call, so that holds of different calls stay apart."""


@dataclass(frozen=True)
class Hold:
    """The GIL holds during one call, as the probe saw them.

    Attributes:
        call_ms: The call's wall time, in the worker thread.
        longest_ms: Longest probe lateness inside the call (the longest hold).
        total_ms: Probe lateness summed over the call (time the GIL was kept from the probe).
        over_ms: Lateness summed over holds longer than the threshold.
        over_count: Holds longer than the threshold.
        samples: Probe wake-ups inside the call.
    """

    call_ms: float
    longest_ms: float
    total_ms: float
    over_ms: float
    over_count: int
    samples: int

    @property
    def share(self) -> float:
        """The share of the call the probe was kept waiting: the share spent holding the GIL."""
        return min(1.0, self.total_ms / self.call_ms) if self.call_ms > 0 else 0.0


class Probe:
    """A daemon thread that sleeps :data:`PERIOD_S` in a loop and keeps ``(due, woke)`` of each wake-up."""

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wsblock-gil-probe", daemon=True)

    def _run(self) -> None:
        clock, sleep, period, keep = time.perf_counter, time.sleep, self.period_s, self.samples.append
        while not self._stop.is_set():
            due = clock() + period
            sleep(period)
            keep((due, clock()))

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def since(self, index: int) -> Sequence[tuple[float, float]]:
        """Wake-ups recorded from ``index`` on."""
        return self.samples[index:]


def baseline(samples: Sequence[tuple[float, float]]) -> float:
    """The probe's own lateness (s): the median over wake-ups with nothing else running."""
    late = sorted(max(0.0, woke - due) for due, woke in samples)
    return late[len(late) // 2] if late else 0.0


def holds_in(samples: Sequence[tuple[float, float]], start: float, end: float, *, slack_s: float,
             threshold_ms: float) -> Hold:
    """The holds inside ``[start, end]``: each wake-up's lateness less ``slack_s``, clipped to the call.

    Args:
        samples: ``(due, woke)`` of the probe's wake-ups (perf_counter seconds).
        start: When the call began.
        end: When it returned.
        slack_s: The probe's own lateness (:func:`baseline`).
        threshold_ms: Holds longer than this are counted apart (the stall threshold).
    """
    longest = total = over = 0.0
    count = inside = 0
    for due, woke in samples:
        lo, hi = max(due + slack_s, start), min(woke, end)
        if hi <= lo:
            continue
        inside += 1
        late_ms = (hi - lo) * 1000.0
        longest = max(longest, late_ms)
        total += late_ms
        if late_ms > threshold_ms:
            over += late_ms
            count += 1
    return Hold((end - start) * 1000.0, longest, total, over, count, inside)


def measure(call: Callable[[], Any], count: int, *, threshold_ms: float,
            on_call: Callable[[int, Hold], None] | None = None) -> tuple[list[Hold], float]:
    """Run ``call`` ``count`` times in a worker thread beside a probe; return each call's holds.

    The calling thread waits in ``join`` (without the GIL), so only the call
    and the probe compete for it.

    Args:
        call: One call of the function (its result is dropped here).
        count: Calls to make.
        threshold_ms: See :func:`holds_in`.
        on_call: Told of each call's holds as it ends.

    Returns:
        ``(holds, slack_ms)``: one :class:`Hold` per call, and the probe's
        own lateness taken off every sample.

    Raises:
        BaseException: Whatever the call raised, re-raised here.
    """
    out: list[Hold] = []
    with Probe() as probe:
        time.sleep(IDLE_S)
        slack = baseline(probe.since(0))
        for i in range(count):
            began = len(probe.samples)
            span: list[float] = []
            failed: list[BaseException] = []

            def work() -> None:
                span.append(time.perf_counter())
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                    failed.append(exc)
                span.append(time.perf_counter())

            worker = threading.Thread(target=work, name="wsblock-profile-call", daemon=True)
            worker.start()
            worker.join()
            if failed:
                raise failed[0]
            time.sleep(SETTLE_S)  # the probe's last wake-up of the call is recorded
            hold = holds_in(probe.since(max(0, began - 2)), span[0], span[1], slack_s=slack,
                            threshold_ms=threshold_ms)
            out.append(hold)
            if on_call is not None:
                on_call(i, hold)
    return out, slack * 1000.0


__all__ = ["Hold", "IDLE_S", "PERIOD_S", "Probe", "SETTLE_S", "baseline", "holds_in", "measure"]
