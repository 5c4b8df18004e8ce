"""How long an event loop stalls beside a call in a thread pool, measured by a small loop that does a server's system calls.

:mod:`wsblock.advise.holdprobe` measures how long a call keeps the GIL
from a thread that wakes once. A server's event loop does more than wake:
each of its iterations polls the selector, then receives and sends on its
sockets, and every one of these system calls releases the GIL. Beside a
call that holds the GIL in switch-interval slices (pure Python), the loop
gets it back after each system call only when the call's thread next hands
it over, about one switch interval later, so the waits of one iteration can
add up (the convoy effect) to stalls several switch intervals long, which the
hold probe's single wake-up does not show (how many add up depends on the
machine: beside another busy process, often one). A C call that holds the GIL for
its whole length stalls both the same; a call that releases the GIL stalls
neither.

So here the call runs as ``thread`` runs it (``loop.run_in_executor`` on a
one-thread pool) while the calling thread runs an asyncio loop that does
what a server's loop does, and nothing else:

* a timer that sleeps :data:`PERIOD_S` in a loop and keeps ``(due, woke)``
  of each wake-up, as the server's lag probe does (its lateness is the
  stall);
* an echo over a local socket pair (no address, no server): every
  :data:`ECHO_EVERY_S` one end sends :data:`ECHO_BYTES` bytes, the other
  sends them back, and the first reads them, so each round trip makes the
  loop poll, send and receive.

The timer's lateness with no call running (:func:`wsblock.advise.holdprobe.baseline`
over an idle stretch) is taken off every sample, and each call's stalls are
read as the hold probe reads its holds (:func:`wsblock.advise.holdprobe.holds_in`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
from typing import Any, Callable

from wsblock.advise import holdprobe
from wsblock.advise.holdprobe import Hold

PERIOD_S = 0.001
"""How long the loop's timer sleeps between wake-ups (as the server's lag probe)."""

ECHO_EVERY_S = 0.002
"""Pause between the echo's round trips over the socket pair."""

ECHO_BYTES = 64
"""Bytes sent each way per round trip (a small websocket frame)."""

IDLE_S = 0.2
"""Idle stretch over which the timer's own lateness is measured, with the echo running."""

SETTLE_S = 0.02
"""Pause after each call, so that stalls of different calls stay apart."""


async def _tick(keep: Callable[[tuple[float, float]], None]) -> None:
    """Sleep :data:`PERIOD_S` in a loop; keep ``(due, woke)`` of each wake-up."""
    clock = time.perf_counter
    while True:
        due = clock() + PERIOD_S
        await asyncio.sleep(PERIOD_S)
        keep((due, clock()))


async def _echo(sock: socket.socket) -> None:
    """Send back whatever arrives on ``sock``."""
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, ECHO_BYTES)
        if not data:
            return
        await loop.sock_sendall(sock, data)


async def _ping(sock: socket.socket) -> None:
    """Every :data:`ECHO_EVERY_S`, send :data:`ECHO_BYTES` bytes on ``sock`` and read them back."""
    loop = asyncio.get_running_loop()
    payload = b"\x00" * ECHO_BYTES
    while True:
        await loop.sock_sendall(sock, payload)
        got = 0
        while got < ECHO_BYTES:
            chunk = await loop.sock_recv(sock, ECHO_BYTES - got)
            if not chunk:
                return
            got += len(chunk)
        await asyncio.sleep(ECHO_EVERY_S)


def _timed(call: Callable[[], Any], span: list[float]) -> None:
    """Run ``call`` in the pool's thread, keeping when it began and ended there."""
    span.append(time.perf_counter())
    try:
        call()
    finally:
        span.append(time.perf_counter())


async def _measure(call: Callable[[], Any], count: int, threshold_ms: float,
                   on_call: Callable[[int, Hold], None] | None) -> tuple[list[Hold], float]:
    loop = asyncio.get_running_loop()
    samples: list[tuple[float, float]] = []
    near, far = socket.socketpair()
    near.setblocking(False)
    far.setblocking(False)
    tasks = [loop.create_task(_tick(samples.append)), loop.create_task(_echo(far)),
             loop.create_task(_ping(near))]
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wsblock-profile-loop-call")
    out: list[Hold] = []
    try:
        await asyncio.sleep(IDLE_S)
        slack = holdprobe.baseline(samples)
        for i in range(count):
            began = len(samples)
            span: list[float] = []
            await loop.run_in_executor(pool, _timed, call, span)
            await asyncio.sleep(SETTLE_S)  # the timer's last wake-up of the call is recorded
            stalls = holdprobe.holds_in(samples[max(0, began - 2):], span[0], span[1], slack_s=slack,
                                        threshold_ms=threshold_ms)
            out.append(stalls)
            if on_call is not None:
                on_call(i, stalls)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.shutdown(wait=True)
        near.close()
        far.close()
    return out, slack * 1000.0


def measure(call: Callable[[], Any], count: int, *, threshold_ms: float,
            on_call: Callable[[int, Hold], None] | None = None) -> tuple[list[Hold], float]:
    """Run ``call`` ``count`` times in a thread pool beside a small event loop; return each call's loop stalls.

    The loop runs in the calling thread (a fresh one, closed on return), so
    this must not be called from a thread that is running an event loop.

    Args:
        call: One call of the function (its result is dropped here).
        count: Calls to make.
        threshold_ms: Stalls longer than this are counted apart (the stall threshold).
        on_call: Told of each call's stalls as it ends.

    Returns:
        ``(stalls, slack_ms)``: one :class:`~wsblock.advise.holdprobe.Hold`
        per call (its ``longest_ms`` is the loop's longest stall in the
        call, its ``share`` the share of the call the loop was stalled),
        and the timer's own lateness taken off every sample.

    Raises:
        BaseException: Whatever the call raised, re-raised here.
    """
    return asyncio.run(_measure(call, count, threshold_ms, on_call))


__all__ = ["ECHO_BYTES", "ECHO_EVERY_S", "IDLE_S", "PERIOD_S", "SETTLE_S", "measure"]
