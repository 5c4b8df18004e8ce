"""The server process: a websockets server that does blocking work.

Started by the runner as ``python -m wsblock.engine.server CONFIG.json``. It starts
the lag probe and watchdog, binds, imports the cell's work and calls it once
where its strategy runs it (:mod:`wsblock.engine.setup_phase`), prints a
``ready`` event with its port, and serves until stdin closes. It then writes
its measurements to the stats file named in the config, as JSON, and exits.
Everything it measures is restricted to the window the runner chose and to
the load's own connections, which carry the cell's token: jobs are run for
them alone, and no larger than the cell's (:mod:`wsblock.engine.gate`); any
other client, including one that never completes its handshake, is only
counted. Malformed messages are refused with a close code for bad data and
counted by kind; any exception the handler did not expect is counted by type
and closes its connection with 1011. Nothing goes unrecorded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import math
import os
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import workloads
from wsblock import atomic
from wsblock.engine import carry
from wsblock.engine import closes
from wsblock.engine import contained
from wsblock.engine import cutoff
from wsblock.engine import gate
from wsblock.engine import protocol
from wsblock.engine import setup_phase
from wsblock.engine import strategies
from wsblock.engine.blas import pin_blas_threads
from wsblock.engine.jobs import JobLedger
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.probe import Heartbeat, LagProbe, Watchdog, summarize_stalls
from wsblock.engine.proc import Lifeline, awaited_argv, emit
from wsblock.engine.resources import ResourceSampler
from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window


TICKER_INTERVAL_S = 0.1

PROBE = {"kind": "loop", "what": "lateness of a 1 ms asyncio.sleep in the server's event loop"}
"""The record's ``meta.probe`` of this server (the threaded server has its own)."""


@dataclass
class ServerStats:
    """What the server counts.

    Measurements (jobs, echoes, disconnects, I/O lag) count only the load's
    connections, inside the window. Bad input and handler errors count every
    connection, over the server's whole run: none may go unrecorded.
    """

    window: Window
    jobs: JobLedger
    connections_opened: int = 0
    disconnects: list[dict[str, Any]] = field(default_factory=list)
    echoes: int = 0
    io_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    request_errors: int = 0
    protocol_closes: int = 0
    bad_input: Counter[str] = field(default_factory=Counter)
    handler_errors: Counter[str] = field(default_factory=Counter)
    foreign_connections: int = 0
    foreign_jobs: int = 0
    foreign_messages: int = 0
    results: carry.ResultLedger = field(default_factory=carry.ResultLedger)

    def closed(self, info: closes.CloseInfo, at: float) -> None:
        if info.abnormal and self.window.contains(at):
            self.disconnects.append(info.event(self.window.since_start(at)))


class CellServer:
    """The server side of one cell.

    Args:
        config: The server config written by the runner.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # The runner sends the window once the server is ready; until then no
        # instant is inside it.
        self.window = Window(math.inf, math.inf)
        expected = None if config.expected_job_ms is None else config.expected_job_ms / 1000.0
        self.stats = ServerStats(self.window, JobLedger(self.window, expected))
        self.cell = config.cell
        self.heartbeat = Heartbeat(self.cell.stall_ms / 1000.0)
        self.strategy = strategies.create(
            self.cell.strategy, workers=self.cell.pool_size, start_method=self.cell.start_method
        )
        self.data_dir = config.data_dir
        self.stop_requested = asyncio.Event()
        self.window_set = asyncio.Event()
        self.lifeline: Lifeline | None = None
        self.bind_failed = False
        self.alarm = cutoff.InlineAlarm()
        self.gate = gate.Gate(config.token, config.load_job)
        self.handshakes = gate.HandshakeWatch(self.gate.is_load)
        # When the set-up ended (``ready``): stalls that began before it are
        # the harness's, never the strategy's (wsblock.engine.setup_phase).
        self.ready_at = math.inf
        self.setup_ms: dict[str, float | None] = {}

    def _on_message(self, loop: asyncio.AbstractEventLoop, message: dict[str, Any]) -> None:
        # Runs in the lifeline thread. The inline alarm is set here, not on
        # the loop: a job that arrived before the window did may hold the
        # loop already, and must still be cut at the window's end.
        if "window_end" in message:
            self.alarm.arm(Window.from_wall(message["window_start"], message["window_end"]).end)
        loop.call_soon_threadsafe(self._control, message)

    def _control(self, message: dict[str, Any]) -> None:
        # Runs in the loop thread (scheduled by the lifeline thread).
        if "window_start" in message:
            self.window = Window.from_wall(message["window_start"], message["window_end"])
            self.stats.window = self.window
            self.stats.jobs.window = self.window
            # From the window's end on, no work for the load: the strategy
            # cuts off what it can (see wsblock.engine.cutoff).
            self.strategy.cut_off_at(self.window.end)
            if self.lifeline is not None:
                self.lifeline.deadline = message["deadline"]
            self.window_set.set()

    def _is_load(self, ws: ServerConnection) -> bool:
        return self.gate.is_load(getattr(ws, "request", None))

    def _refused(self, job: Any, ours: bool) -> str | None:
        """Why a job is not run (counted here), or ``None``; see :class:`wsblock.engine.gate.Gate`."""
        reason = self.gate.refusal(job, ours)
        if reason is not None:
            if ours:
                self.stats.request_errors += 1
                self.stats.bad_input["invalid_request"] += 1
            else:
                self.stats.foreign_jobs += 1
        return reason

    async def handler(self, ws: ServerConnection) -> None:
        ours = self._is_load(ws)
        now = time.monotonic()
        if not ours:
            # Its echoes are answered and its jobs refused; it is counted
            # apart and kept out of every measurement.
            if gate.accepted_at(ws, now) < self.window.end:
                self.stats.foreign_connections += 1
        elif self.window.contains(now):
            self.stats.connections_opened += 1
        override = self.cell.handler_ping_timeout
        if override is not None:
            # The advice under test: change the live connection's setting.
            ws.ping_timeout = None if override == "none" else float(override)
        try:
            await self._serve(ws, ours)
        except ConnectionClosed as exc:
            info = closes.from_exception(exc, side="server")
            if info.code == 1009 and info.initiator == "server":
                self.stats.bad_input["too_big"] += 1
            if ours:
                self.stats.closed(info, time.monotonic())
            return
        except Exception as exc:  # noqa: BLE001 - every fault is counted, then the connection ends
            self.stats.handler_errors[type(exc).__name__] += 1
            traceback.print_exc(file=sys.stderr)
            try:
                await ws.close(1011, "internal error")
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            return
        await ws.wait_closed()
        if ours:
            self.stats.closed(closes.from_connection(ws, side="server"), time.monotonic())

    async def _serve(self, ws: ServerConnection, ours: bool) -> None:
        stats = self.stats
        async for message in ws:
            arrived = time.time()
            if not ours:
                stats.foreign_messages += 1
            try:
                request = protocol.parse(message, self.data_dir, allowed=self.cell.workload)
            except protocol.ProtocolError as exc:
                stats.protocol_closes += 1
                stats.bad_input[exc.kind] += 1
                await ws.close(exc.code, str(exc))
                return
            except protocol.RequestError as exc:
                stats.request_errors += 1
                stats.bad_input["invalid_request"] += 1
                await ws.send(json.dumps({"op": "error", "error": str(exc)}))
                continue
            if isinstance(request, protocol.Echo):
                await ws.send(json.dumps({"op": "echo", "seq": request.seq}))
                if ours and self.window.contains(time.monotonic()):
                    stats.echoes += 1
                    if request.sent is not None:
                        stats.io_lag.record(max(0.0, arrived - request.sent))
                continue
            job_id, job = request
            refused = self._refused(job, ours)
            if refused:
                await ws.send(json.dumps({"op": "error", "id": job_id, "error": refused}))
                continue
            reason = self.strategy.unsupported_reason(workloads.get(job.workload))
            if reason:
                stats.request_errors += 1
                stats.bad_input["invalid_request"] += 1
                await ws.send(json.dumps({"op": "error", "id": job_id, "error": reason}))
                continue
            if time.monotonic() >= self.window.end:
                # A job of the load that would start only now (queued behind
                # the job the window ended in) is not run: the ledger keeps
                # no job that starts after the window, and on the loop it
                # would only delay the stop by a whole job.
                continue
            ticket = stats.jobs.start(time.monotonic())
            try:
                timing = await self.strategy.run(job)
            except cutoff.Cut as cut:
                # The window ended before the job did: censored where it was
                # cut, and nothing is sent (the load has stopped listening).
                if ticket is not None:
                    stats.jobs.cut(ticket, cut.at, worked=cut.worked)
                continue
            except concurrent.futures.BrokenExecutor as exc:
                # A pool worker died: the cell cannot be measured. Tell
                # the runner, which stops the run as a harness failure.
                emit({"event": "fatal", "message": f"a pool worker died while running {job.workload} "
                                                         f"(os._exit, or a crash): {exc}"})
                self.stop_requested.set()
                await ws.close(1011, "worker died")
                return
            except BaseException as exc:
                if ticket is not None:
                    stats.jobs.abandon(ticket)
                if isinstance(exc, (Exception, asyncio.CancelledError)):
                    raise
                # SystemExit, KeyboardInterrupt or another BaseException from
                # the work (a user's function): it must not end the server
                # unrecorded, nor pass for a measurement.
                self.job_failed(job.workload, exc, "in a job")
                await ws.close(1011, "job failed")
                return
            if ticket is not None:
                # The ledger keeps every job that overlapped the window; one
                # that ended after it is censored at the window's end.
                stats.jobs.finish(ticket, time.monotonic(), wall_ms=timing.wall_ms, cpu_ms=timing.cpu_ms)
            self.took_result(timing, ours)
            await ws.send(
                json.dumps(
                    {
                        "op": "done",
                        "id": job_id,
                        "wall_ms": round(timing.wall_ms, 3),
                        "cpu_ms": round(timing.cpu_ms, 3),
                    }
                )
            )

    def job_failed(self, workload: str, exc: BaseException, when: str) -> None:
        """Tell the runner that the work raised what no job may (the cell fails), and stop."""
        emit({"event": "fatal", "kind": "work",
              "message": f"{workload} raised {contained.cause(exc)} {when} ({self.cell.strategy})"})
        self.stop_requested.set()

    def took_result(self, timing: Any, ours: bool) -> None:
        """Note the result a job handed back to the handler, which then drops it.

        The reply a real handler would build from it is the job's timing
        here; what reaching the handler cost (the unpickling of a worker's
        result, in the server) is recorded for the load's jobs in the window.
        """
        returned = timing.result
        if ours and isinstance(returned, carry.Returned) and self.window.contains(time.monotonic()):
            self.stats.results.record(returned)

    async def set_up(self, warm: Any) -> None:
        """Import what the cell calls, start the strategy and call the work once where it runs.

        Runs on the loop's thread before ``ready``, so that nothing of it
        can fall in the window (see :mod:`wsblock.engine.setup_phase`).
        """
        # The heartbeat beats between the steps, so that each step's stall is
        # a stall of its own, named by its own site.
        self.setup_ms["catalogue_ms"] = setup_phase.import_catalogue()
        await asyncio.sleep(setup_phase.BREATH_S)
        self.setup_ms["import_ms"] = setup_phase.import_work(self.cell.workload)
        await asyncio.sleep(setup_phase.BREATH_S)
        started = time.perf_counter()
        returned = await self.strategy.start(warm)
        self.setup_ms["first_call_ms"] = (time.perf_counter() - started) * 1000.0
        self.stats.results.set_up(returned, out_of_process=strategies.has(self.cell.strategy, "out_of_process"))

    def stall_measurements(self, stalls: Any, probe_samples: int) -> dict[str, Any]:
        """The record's ``stalls``: the window's (set-up left out) and those before it."""
        charged = setup_phase.strategy_stalls(stalls, self.ready_at)
        out = summarize_stalls(charged, self.window, probe_samples=probe_samples)
        out["before_window"] = setup_phase.before_window(stalls, self.window, ready_at=self.ready_at,
                                                         setup_ms=self.setup_ms)
        return out

    def serve_options(self) -> dict[str, Any]:
        """The websockets ``serve`` options of the cell, the same for both servers."""
        cell = self.cell
        return {"ping_interval": cell.ping_interval, "ping_timeout": cell.ping_timeout,
                "close_timeout": cell.close_timeout, "max_size": protocol.MAX_MESSAGE_BYTES,
                "compression": None, "create_connection": self.connection_class()}

    def connection_class(self) -> type:
        """The connection class ``serve`` creates: it reports its opening handshake to the watch."""
        return gate.asyncio_connection(self.handshakes)

    def report_bind_error(self, exc: OSError) -> None:
        """Tell the runner the server could not listen (a busy port is its own kind)."""
        kind = "port_in_use" if exc.errno == errno.EADDRINUSE else "bind_failed"
        emit({"event": "error", "kind": kind, "message": str(exc)})
        self.bind_failed = True

    def measurements(self, stopped_at: float, *, probe: Any, ticker: Any, stalls: Any, resources: dict[str, Any],
                     blas: Any, event_loop: Any, probe_kind: dict[str, str]) -> dict[str, Any]:
        """The server's measurements of the window, as its stats file holds them.

        Shared by the asyncio and the threaded server, so both write the same
        keys; the threaded server calls it holding its counters' lock.
        """
        st = self.stats
        jobs = st.jobs.summary(stopped_at)
        return {
            "connections_opened": st.connections_opened,
            "disconnects": list(st.disconnects),
            "jobs_done": jobs["work"]["completed_in_window"],
            "work": jobs["work"],
            "job_ms": jobs["job_ms"],
            "job_cpu_ms": jobs["job_cpu_ms"],
            "echoes": st.echoes,
            "io_lag_ms": st.io_lag.summary(),
            "request_errors": st.request_errors,
            "protocol_closes": st.protocol_closes,
            "bad_input": {"total": sum(st.bad_input.values()), "by_kind": dict(sorted(st.bad_input.items()))},
            "handler_errors": {"total": sum(st.handler_errors.values()),
                               "by_type": dict(sorted(st.handler_errors.items()))},
            "foreign": self._foreign(),
            "loop_lag_ms": probe.histogram.summary(),
            "stalls": self.stall_measurements(stalls, probe.histogram.count),
            "result": st.results.summary(pickled=strategies.has(self.cell.strategy, "out_of_process")),
            "setup": {k: (None if v is None else round(v, 3)) for k, v in self.setup_ms.items()},
            "ticker_lag_ms": {
                **ticker.histogram.summary(("p50", "p99")),
                "interval_ms": TICKER_INTERVAL_S * 1000,
                "late_ticks": ticker.late(self.cell.stall_ms / 1000.0),
            },
            "resources": resources,
            "blas": blas,
            "switch_interval_s": sys.getswitchinterval(),
            "event_loop": event_loop,
            "probe": probe_kind,
            "start_method": (self.cell.start_method if strategies.has(self.cell.strategy, "out_of_process")
                             else None),
        }

    def _foreign(self) -> dict[str, int]:
        """The record's ``server.foreign``: clients other than the load, up to the window's end."""
        st = self.stats
        unopened = self.handshakes.count(self.window.end)
        return {"connections": st.foreign_connections + unopened, "no_handshake": unopened,
                "jobs": st.foreign_jobs, "messages": st.foreign_messages}

    async def main(self) -> dict[str, Any]:
        config = self.config
        cell = self.cell
        if cell.switch_interval_ms is not None:
            # How long a thread holding the GIL may keep it while the loop's
            # thread waits; recorded below as the interpreter reports it.
            sys.setswitchinterval(cell.switch_interval_ms / 1000.0)
        blas = pin_blas_threads(1)
        loop = asyncio.get_running_loop()
        if cell.strategy == "inline":
            # Built-in workloads' inline jobs are cut at the window's end
            # (wsblock.engine.cutoff); the handler needs the main thread.
            if self.alarm.install():
                self.strategy.interrupt_with(self.alarm)
        self.lifeline = Lifeline(
            config.deadline,
            lambda message: self._on_message(loop, message),
            lambda: loop.call_soon_threadsafe(self.stop_requested.set),
        )
        # The heartbeat, its probes and the watchdog run from the start, so
        # that stalls before the window (the set-up's included) are seen with
        # their sites; the probes record samples only once the window is set.
        self.heartbeat.last = time.monotonic()
        probe = LagProbe(cell.probe_interval_ms / 1000.0, self.window, self.heartbeat)
        # What a typical "monitor the loop with a periodic task" sees: a
        # 100 ms ticker, kept apart from the heartbeat so it cannot help
        # the real probe.
        ticker = LagProbe(TICKER_INTERVAL_S, self.window, Heartbeat(math.inf))
        watchdog = Watchdog(self.heartbeat, threading.get_ident())
        probe.start()
        ticker.start()
        watchdog.start()
        warm = config.warm_job.job(self.data_dir)
        try:
            server = await serve(self.handler, cell.host, cell.port, **self.serve_options())
        except OSError as exc:
            self.report_bind_error(exc)
            await probe.stop()
            await ticker.stop()
            watchdog.stop()
            return {}
        try:
            try:
                await self.set_up(warm)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the work's first call may raise anything
                self.job_failed(cell.workload, exc, "on the server's first call")
                return {}
            port = server.sockets[0].getsockname()[1]
            self.ready_at = time.monotonic()
            emit({"event": "ready", "port": port, "pid": os.getpid()})
            waiter = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait([waiter, asyncio.ensure_future(self.window_set.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if not self.window_set.is_set():
                return {}  # stopped before any window: nothing to report
            probe.window = ticker.window = self.window
            sampler = ResourceSampler(psutil.Process(), self.window, self.strategy.worker_pids)
            sampler.start()
            await waiter
            await probe.stop()
            await ticker.stop()
            stopped_at = time.monotonic()
            stalls = watchdog.stop()
            resources = sampler.stop()
            result = self.measurements(stopped_at, probe=probe, ticker=ticker, stalls=stalls,
                                       resources=resources, blas=blas, event_loop=describe_loop(loop),
                                       probe_kind=PROBE)
            atomic.write_json(config.stats_path, result)
            return result
        finally:
            self.alarm.uninstall()
            await probe.stop()
            await ticker.stop()
            watchdog.stop()
            server.close(close_connections=True)
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=cell.close_timeout + 1)
            except asyncio.TimeoutError:
                pass
            await self.strategy.close()


def loop_factory(name: str) -> Any:
    """The factory of the event loop called ``name`` (``None``: asyncio's default).

    Raises:
        ImportError: For ``uvloop`` when it is not installed (the cell's
            validation says so before the server starts).
    """
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def describe_loop(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """The event loop that ran, for the record: its class and its package's version."""
    cls = type(loop)
    package = cls.__module__.split(".")[0]
    version = None
    if package != "asyncio":
        from importlib.metadata import PackageNotFoundError, version as installed

        try:
            version = installed(package)
        except PackageNotFoundError:
            pass
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "version": version}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the server process.

    Args:
        argv: ``[CONFIG.json]``.

    Returns:
        Exit code: 0 after a normal stop, 3 if the address could not be
        bound, 4 if stopped before a window was set.
    """
    args = sys.argv[1:] if argv is None else argv
    args = awaited_argv(args)
    if args is None:
        return 0  # started ahead, not needed after all
    config = ServerConfig.read(args[0])
    if config.cell.server == "threaded":
        from wsblock.engine import threaded_server

        return threaded_server.main(config)
    server = CellServer(config)
    with asyncio.Runner(loop_factory=loop_factory(config.cell.loop)) as runner:
        result = runner.run(server.main())
    if not result:
        return 3 if server.bind_failed else 4
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
