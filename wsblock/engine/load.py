"""The load process: job connections and observers, measured from outside.

Started by the runner as ``python -m wsblock.engine.load CONFIG.json``; it must be a
separate process, because a client inside the server would be blocked by the
very thing being measured.

* A *job connection* keeps one job in flight (closed loop) and times each
  round trip.
* An *observer* sends echo requests on a fixed schedule (open loop: sends do
  not wait for replies) and measures each reply from its *scheduled* send
  time, so a stall delays every message it covers and none is hidden by a
  sender that waited (coordinated omission). The schedule belongs to the
  observer's slot, not to one connection: ticks that fall while the slot is
  reconnecting are *missed*, and counted.

Every echo scheduled inside the window ends as exactly one of: answered
(timed from its schedule), lost with its connection, censored (unanswered at
the window end) or missed (no connection to send it on). Unanswered ones
enter the latency histogram with the time they had waited so far, a lower
bound.

A connection that ends abnormally is recorded (code, who closed first, when)
and reconnected, so the load continues through the window. Each connection's
lifetime is recorded for the keepalive exposure. The load also times its own
sends against their schedule: a load that sends late is saturated and cannot
measure the server. Results are written when the window closes; the process
then exits at once, its connections ending with it (nothing after the window
is recorded, and a polite close would wait for a busy server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from wsblock import atomic
from wsblock.engine import closes
from wsblock.engine import protocol
from wsblock.engine.proc import Lifeline, awaited_argv, emit
from wsblock.engine.process_config import TOKEN_HEADER, LoadConfig
from wsblock.engine.reports import Connections, Echoes, LoadReport, Sending
from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window

RECONNECT_DELAY_S = 0.1
POLL_CLOSES_S = 0.02
MAX_LIFETIMES = 500
"""Connections whose lifetime is kept (originals come first, so they are never cut)."""


class JobRefused(Exception):
    """The server answered a job with an error."""


@dataclass
class LoadStats:
    """What the load process counts inside the window."""

    window: Window
    opened: dict[str, int] = field(default_factory=lambda: {"job": 0, "observer": 0})
    lost: dict[str, int] = field(default_factory=lambda: {"job": 0, "observer": 0})
    lost_before_window: int = 0
    connect_failures: int = 0
    disconnects: list[dict[str, Any]] = field(default_factory=list)
    lifetimes: list[dict[str, Any]] = field(default_factory=list)
    jobs_done: int = 0
    job_errors: int = 0
    job_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    echo_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    send_lateness: LatencyHistogram = field(default_factory=LatencyHistogram)
    echoes: int = 0
    echo_lost: int = 0
    echo_missed: int = 0
    echo_censored_late: int = 0
    echo_sent: int = 0
    last_error: str | None = None

    def connection_ended(self, kind: str, slot: int, opened_at: float, ended_at: float, end: str) -> None:
        """Count a connection that ended, and keep its lifetime."""
        if opened_at < self.window.end and ended_at >= self.window.start:
            self.opened[kind] += 1
        if len(self.lifetimes) < MAX_LIFETIMES:
            self.lifetimes.append({
                "kind": kind, "slot": slot,
                "opened_s": round(self.window.since_start(opened_at), 4),
                "ended_s": round(self.window.since_start(ended_at), 4),
                "end": end,
            })

    def connection_failed(self, kind: str, info: closes.CloseInfo, at: float) -> None:
        """Count an abnormal close, timed when it was first seen."""
        if info.abnormal and self.window.contains(at):
            self.lost[kind] += 1
            self.disconnects.append(info.event(self.window.since_start(at), kind=kind))
        elif info.abnormal and at < self.window.start:
            self.lost_before_window += 1


@dataclass
class ObserverSlot:
    """The echo schedule of one observer slot, kept across its connections.

    Attributes:
        base: Monotonic time of tick 0.
        next_seq: The first tick not yet sent or counted as missed.
    """

    base: float
    next_seq: int = 0


class Load:
    """The client side of one cell.

    Args:
        config: The load config written by the runner.
        window: The measurement window.
    """

    def __init__(self, config: LoadConfig, window: Window) -> None:
        self.config = config
        self.window = window
        self.stats = LoadStats(self.window)
        self.job = config.job.job()
        self.interval = config.cell.echo_interval_ms / 1000.0
        self.job_gap_s = config.cell.job_gap_ms / 1000.0
        self._pending_echo: dict[tuple[int, int], float] = {}
        self._observer_slots: dict[int, ObserverSlot] = {}
        self._connected: set[tuple[str, int]] = set()
        self.stop = asyncio.Event()
        self._live: dict[object, tuple[str, int, float, ClientConnection]] = {}
        self._closing: set[object] = set()
        self._failed: dict[object, float] = {}
        self._failed_at: dict[int, float] = {}

    async def _watch_closes(self) -> None:
        # A connection fails when a close frame is sent or received, but
        # websockets raises ConnectionClosed only once the TCP connection is
        # gone, which against a blocked server takes up to close_timeout
        # more. Poll the protocol state so that each failure is timed (and
        # counted, even near the window's end) when it happens.
        while True:
            now = time.monotonic()
            for token, (kind, _, _, ws) in list(self._live.items()):
                if token not in self._closing:
                    p = ws.protocol
                    if p.close_sent is not None or p.close_rcvd is not None:
                        self._closing.add(token)
                        info = closes.from_connection(ws, side="client")
                        if info.abnormal:
                            self._failed[token] = now
                            self._failed_at[id(ws)] = now
                        self.stats.connection_failed(kind, info, now)
            await asyncio.sleep(POLL_CLOSES_S)

    def _connect(self) -> Any:
        c = self.config
        cell = c.cell
        return connect(
            c.uri,
            # A load without client pings models a browser: it only answers.
            ping_interval=cell.ping_interval if cell.client_pings else None,
            ping_timeout=cell.ping_timeout,
            close_timeout=cell.close_timeout,
            open_timeout=c.open_timeout,
            additional_headers={TOKEN_HEADER: c.token} if c.token else None,
            max_size=protocol.MAX_MESSAGE_BYTES,
            compression=None,
        )

    async def _slot(self, kind: str, slot: int, body: Any) -> None:
        # One connection at a time for this slot, reopened after a failure
        # until the window ends.
        while time.monotonic() < self.window.end:
            token = object()
            try:
                async with self._connect() as ws:
                    opened_at = time.monotonic()
                    self._live[token] = (kind, slot, opened_at, ws)
                    self._connected.add((kind, slot))
                    end = "closed"
                    try:
                        await body(ws)
                    except ConnectionClosed as exc:
                        if token not in self._closing:  # no close frame: the watcher saw nothing
                            info = closes.from_exception(exc, side="client")
                            if info.abnormal:
                                self._failed[token] = time.monotonic()
                            self.stats.connection_failed(kind, info, time.monotonic())
                    finally:
                        self._connected.discard((kind, slot))
                        del self._live[token]
                        self._closing.discard(token)
                        failed_at = self._failed.pop(token, None)
                        if failed_at is not None:
                            end = "disconnect"
                        self._failed_at.pop(id(ws), None)
                        ended = failed_at if failed_at is not None else time.monotonic()
                        self.stats.connection_ended(kind, slot, opened_at, ended, end)
            except (OSError, InvalidHandshake, asyncio.TimeoutError):
                if self.window.contains(time.monotonic()):
                    self.stats.connect_failures += 1
            except ConnectionClosed:
                pass  # raised while closing after the body ended: not in the body
            except JobRefused:
                return  # a refused job will be refused again: stop this slot
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _job_body(self, ws: ClientConnection) -> None:
        request = protocol.job_request(0, self.job)
        while True:
            sent = time.monotonic()
            await ws.send(request)
            reply = json.loads(await ws.recv())
            done = time.monotonic()
            if reply.get("op") != "done":
                self.stats.job_errors += 1
                self.stats.last_error = str(reply.get("error"))
                raise JobRefused(self.stats.last_error)
            if self.window.contains(done):
                self.stats.jobs_done += 1
                self.stats.job_latency.record(done - sent)
            if self.job_gap_s:
                # Time between jobs in which the server's loop is free of this
                # connection's work (keepalive pings can be answered).
                await asyncio.sleep(self.job_gap_s)

    def _miss_until(self, slot: int, until: float) -> None:
        """Count the slot's ticks before ``until`` that were never sent as missed."""
        state = self._observer_slots[slot]
        w = self.window
        while True:
            tick = state.base + state.next_seq * self.interval
            if tick >= until:
                return
            if w.contains(tick):
                self.stats.echo_missed += 1
                # It could not have been sent before ``until``: a lower bound.
                self.stats.echo_latency.record(min(until, w.end) - tick)
            state.next_seq += 1

    async def _observer_body(self, ws: ClientConnection, slot: int) -> None:
        interval = self.interval
        pending = self._pending_echo
        state = self._observer_slots[slot]
        self._miss_until(slot, time.monotonic())

        async def receive() -> None:
            async for message in ws:
                now = time.monotonic()
                scheduled = pending.pop((slot, json.loads(message).get("seq")), None)
                if scheduled is not None and self.window.contains(scheduled):
                    if now < self.window.end:
                        self.stats.echoes += 1
                        self.stats.echo_latency.record(now - scheduled)
                    else:  # answered after the window (a late load saw it late)
                        self.stats.echo_censored_late += 1
                        self.stats.echo_latency.record(self.window.end - scheduled)

        receiver = asyncio.create_task(receive())
        try:
            while True:
                seq = state.next_seq
                scheduled = state.base + seq * interval
                if scheduled >= self.window.end:
                    await ws.wait_closed()  # the window is over: nothing more to measure
                    return
                delay = scheduled - time.monotonic()
                # A load that is behind must still yield: a send that never
                # waits would starve every other task, the summary included.
                await asyncio.sleep(max(0.0, delay))
                if receiver.done():
                    receiver.result()  # re-raises ConnectionClosed
                    await ws.wait_closed()
                    return
                pending[(slot, seq)] = scheduled
                state.next_seq = seq + 1
                now = time.monotonic()
                # A send after the window closed is not one of the window's:
                # its echo counts as censored (the load was behind).
                if self.window.contains(scheduled) and now < self.window.end:
                    self.stats.echo_sent += 1
                    self.stats.send_lateness.record(max(0.0, now - scheduled))
                await ws.send(json.dumps({"op": "echo", "seq": seq, "sent": time.time()}))
        except ConnectionClosed:
            # Echoes still pending were lost with the connection. Each had
            # waited at least until the connection was seen to fail: record
            # that lower bound, so that losing every echo does not read as
            # "no latency".
            failed_at = self._failed_at.get(id(ws), time.monotonic())
            for key in [key for key in pending if key[0] == slot]:
                scheduled = pending.pop(key)
                if self.window.contains(scheduled):
                    if failed_at < self.window.end:
                        self.stats.echo_lost += 1
                    else:  # the failure came after the window: unanswered at its end
                        self.stats.echo_censored_late += 1
                    self.stats.echo_latency.record(max(0.0, min(failed_at, self.window.end) - scheduled))
            raise
        finally:
            receiver.cancel()

    def results(self, own_cpu_s: float, *, stopped_early: bool = False) -> LoadReport:
        """Summarise the window; called as soon as the window closes.

        Args:
            own_cpu_s: The load process's CPU seconds over the window.
            stopped_early: Whether it was told to stop before the window's end.
        """
        w = self.window
        # A saturated load reaches this late; everything after the window's
        # end is treated as not having happened yet.
        summarized_late_s = max(0.0, time.monotonic() - w.end)
        now = min(time.monotonic(), w.end)
        # Echoes still unanswered when the window closes have waited at least
        # since their scheduled time: count them with that lower bound rather
        # than drop the worst latencies.
        censored = 0
        for scheduled in self._pending_echo.values():
            if w.contains(scheduled):
                self.stats.echo_latency.record(now - scheduled)
                censored += 1
        # Ticks of the window never reached: on a slot without a connection
        # they are missed; on a connected slot the load itself was behind.
        unsent = 0
        for slot, state in self._observer_slots.items():
            if ("observer", slot) in self._connected:
                while (tick := state.base + state.next_seq * self.interval) < w.end:
                    if w.contains(tick):
                        unsent += 1
                        self.stats.echo_latency.record(now - tick)
                        self.stats.send_lateness.record(now - tick)
                    state.next_seq += 1
            else:
                self._miss_until(slot, w.end)
        s = self.stats
        opened = dict(s.opened)
        lifetimes = list(s.lifetimes)
        for token, (kind, slot, opened_at, _) in self._live.items():
            if opened_at < w.end:
                opened[kind] += 1
            # A connection that failed (its close frame sent or received, seen
            # by the watcher) may still be waiting for the blocked server to
            # finish the closing handshake: it ended at the failure, not with
            # the window.
            failed_at = self._failed.get(token)
            lifetimes.append({"kind": kind, "slot": slot,
                              "opened_s": round(w.since_start(opened_at), 4),
                              "ended_s": None if failed_at is None else round(w.since_start(failed_at), 4),
                              "end": "window" if failed_at is None else "disconnect"})
        censored += s.echo_censored_late
        scheduled_total = s.echoes + s.echo_lost + censored + unsent + s.echo_missed
        offered = scheduled_total - s.echo_missed
        return LoadReport(
            connections=Connections(opened=opened, lost=dict(s.lost), lost_before_window=s.lost_before_window),
            lifetimes=lifetimes,
            connect_failures=s.connect_failures,
            disconnects=list(s.disconnects),
            jobs_done=s.jobs_done,
            job_errors=s.job_errors,
            last_error=s.last_error,
            job_latency_ms=s.job_latency.summary(("p50", "p90", "p99")),
            echoes=s.echoes,
            echo=Echoes(scheduled=scheduled_total, answered=s.echoes, lost=s.echo_lost,
                        censored=censored + unsent, unsent=unsent, missed=s.echo_missed),
            echo_latency_ms=s.echo_latency.summary(("p50", "p90", "p99")),
            sending=Sending(
                offered_per_s=round(offered / w.duration, 3),
                achieved_per_s=round(s.echo_sent / w.duration, 3),
                lateness_ms=s.send_lateness.summary(("p50", "p90", "p99")),
                summarized_late_s=round(summarized_late_s, 3),
            ),
            cpu_s=round(own_cpu_s, 3),
            stopped_early=stopped_early,
        )

    async def main(self) -> LoadReport:
        c = self.config
        stop = self.stop
        me = psutil.Process()
        tasks = [
            asyncio.create_task(self._watch_closes()),
        ]
        tasks += [
            asyncio.create_task(self._slot("job", slot, self._job_body))
            for slot in range(c.cell.job_connections)
        ]
        for slot in range(c.cell.observers):
            self._observer_slots[slot] = ObserverSlot(time.monotonic())
            tasks.append(
                asyncio.create_task(
                    self._slot("observer", slot, lambda ws, slot=slot: self._observer_body(ws, slot))
                )
            )

        async def until(t: float) -> None:
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, t - time.monotonic()))
            except asyncio.TimeoutError:
                pass

        await until(self.window.start)
        cpu0 = sum(me.cpu_times()[:2])
        await until(self.window.end)
        result = self.results(sum(me.cpu_times()[:2]) - cpu0, stopped_early=stop.is_set())
        atomic.write_json(c.results_path, result.to_dict())
        # Results are safe and nothing after them is recorded (the server
        # counts no close after the window), so the load leaves at once and
        # its connections end with the process. Closing them politely would
        # wait for the server (up to close_timeout for a busy loop, and a
        # cancelled opening handshake waits that long even for a free one).
        return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the load process.

    It reports ``ready``, waits for the window on stdin, runs, writes its
    results and exits.

    Args:
        argv: ``[CONFIG.json]``.
    """
    args = sys.argv[1:] if argv is None else argv
    args = awaited_argv(args)
    if args is None:
        return 0  # started ahead, not needed after all
    config = LoadConfig.read(args[0])
    asyncio.run(_main_then_exit(config))
    return 0


async def _main_then_exit(config: LoadConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    window: asyncio.Future[dict[str, Any]] = loop.create_future()

    def on_message(message: dict[str, Any]) -> None:
        if "window_start" in message and not window.done():
            window.set_result(message)

    lifeline = Lifeline(
        config.deadline,
        lambda message: loop.call_soon_threadsafe(on_message, message),
        lambda: loop.call_soon_threadsafe(stop.set),
    )
    emit({"event": "ready", "pid": os.getpid()})
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([window, stopper], return_when=asyncio.FIRST_COMPLETED)
    if not window.done():
        os._exit(4)  # stopped before any window
    message = window.result()
    lifeline.deadline = message["deadline"]
    if isinstance(message.get("uri"), str):
        # Started while the server was still starting: its address comes
        # with the window.
        config = dataclasses.replace(config, uri=message["uri"])
    load = Load(config, Window.from_wall(message["window_start"], message["window_end"]))
    load.stop = stop
    await load.main()
    # The connections are still open: asyncio.run's clean-up would close
    # them one by one and wait; the results are written, so leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
