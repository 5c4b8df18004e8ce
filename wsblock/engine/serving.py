"""What every cell server does, whatever its I/O: the serving core.

The asyncio server (:mod:`wsblock.engine.asyncio_server`) and the threaded
one (:mod:`wsblock.engine.threaded_server`) are two shells around one
:class:`Serving`: a shell owns the sockets, its event loop or threads and
the way it waits; the core owns everything else, once:

* the set-up of the process (:meth:`Serving.begin`): the cell's switch
  interval, the BLAS pin, the inline cut-off alarm, the lifeline to the
  runner; the heartbeat, the probes and the watchdog
  (:meth:`Serving.start_instruments`);
* the control messages (:meth:`Serving.control`): the window, the cut-off at
  its end (:mod:`wsblock.engine.cutoff`), the deadline;
* what one connection's messages mean (:meth:`Serving.receive`): echoes,
  jobs, refusals and bad input, returned as the step the shell takes
  (:class:`Reply`, :class:`Close`, :class:`Run`), and what became of a job
  (:meth:`Serving.done`, :meth:`Serving.failed`), counted in the job ledger;
* the measurements written to the stats file (:meth:`Serving.measurements`).

Everything it measures is restricted to the window the runner chose and to
the load's own connections, which carry the cell's token: jobs are run for
them alone, and no larger than the cell's (:mod:`wsblock.engine.gate`); any
other client, including one that never completes its handshake, is only
counted. Malformed messages are refused with a close code for bad data and
counted by kind; any exception the handler did not expect is counted by type
and closes its connection with 1011. Nothing goes unrecorded.

The threaded server's handler threads share the counters: every update is
made under :attr:`Serving.lock` (a real lock there, a no-op on the loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import json
import math
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil
from websockets.exceptions import ConnectionClosed

import workloads
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
from wsblock.engine.probe import Heartbeat, Watchdog, summarize_stalls
from wsblock.engine.proc import Lifeline, emit
from wsblock.engine.resources import ResourceSampler
from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window

TICKER_INTERVAL_S = 0.1
"""Period of the ticker: what a typical "monitor the loop with a periodic task" sees."""


class Flag(Protocol):
    """An event the core sets and the shell waits on (``asyncio.Event`` or ``threading.Event``)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


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
        """Count a connection's end: an abnormal close inside the window is a disconnect."""
        if info.abnormal and self.window.contains(at):
            self.disconnects.append(info.event(self.window.since_start(at)))


@dataclass(frozen=True)
class Reply:
    """Send ``text`` on the connection, then call :meth:`Serving.replied` with this step."""

    text: str
    echo: protocol.Echo | None = None
    arrived: float = 0.0


@dataclass(frozen=True)
class Close:
    """Close the connection with ``code`` (``None``: leave it as it is) and stop reading it."""

    code: int | None
    reason: str = ""


@dataclass(frozen=True)
class Run:
    """Run ``job`` with the cell's strategy, then hand its timing (or exception) back."""

    job_id: Any
    job: workloads.Job
    ticket: int


Step = Reply | Close | Run | None
"""What the shell does next with a connection (``None``: nothing, read on)."""


@dataclass
class Instruments:
    """The heartbeat's probes and the watchdog, running from the start of the process."""

    probe: Any
    ticker: Any
    watchdog: Watchdog


class Serving:
    """The I/O-free side of one cell's server.

    Args:
        config: The server config written by the runner.
        stop_requested: Set when the server must stop (stdin closed, a fatal fault).
        window_set: Set once the runner has sent the window.
        lock: Held around every update of the counters (a no-op context
            where one thread updates them).
    """

    def __init__(self, config: ServerConfig, *, stop_requested: Flag, window_set: Flag,
                 lock: contextlib.AbstractContextManager[Any] | None = None) -> None:
        self.config = config
        self.cell = config.cell
        self.data_dir = config.data_dir
        self.stop_requested = stop_requested
        self.window_set = window_set
        self.lock: contextlib.AbstractContextManager[Any] = lock if lock is not None else contextlib.nullcontext()
        # The runner sends the window once the server is ready; until then no
        # instant is inside it.
        self.window = Window(math.inf, math.inf)
        expected = None if config.expected_job_ms is None else config.expected_job_ms / 1000.0
        self.stats = ServerStats(self.window, JobLedger(self.window, expected))
        self.heartbeat = Heartbeat(self.cell.stall_ms / 1000.0)
        self.strategy = strategies.create(
            self.cell.strategy, workers=self.cell.pool_size, start_method=self.cell.start_method
        )
        self.lifeline: Lifeline | None = None
        self.bind_failed = False
        self.blas: Any = None
        self.alarm = cutoff.InlineAlarm()
        self.gate = gate.Gate(config.token, config.load_job)
        self.handshakes = gate.HandshakeWatch(self.gate.is_load)
        # When the set-up ended (``ready``): stalls that began before it are
        # the harness's, never the strategy's (wsblock.engine.setup_phase).
        self.ready_at = math.inf
        self.setup_ms: dict[str, float | None] = {}
        # Set once the measurements are written: a pool closed under a
        # waiting handler is then the end of the run, not a dead worker.
        self.closing = False

    # -- the process: set-up, control, instruments ---------------------------------------------

    def begin(self, hand_over: Callable[..., Any], *, interrupt_inline: bool) -> None:
        """Apply the cell's process settings and tie the process to the runner, once.

        Args:
            hand_over: ``hand_over(f, *args)`` calls ``f(*args)`` where the
                server's state may change (called from the lifeline's
                thread): ``loop.call_soon_threadsafe`` on an event loop, which
                also wakes the loop; a plain call where threads share a lock.
            interrupt_inline: Whether inline jobs run on this (the main)
                thread, where the window's end can interrupt them.
        """
        cell = self.cell
        if cell.switch_interval_ms is not None:
            # How long a thread holding the GIL may keep it while the loop's
            # thread waits; recorded in the measurements as the interpreter
            # reports it.
            sys.setswitchinterval(cell.switch_interval_ms / 1000.0)
        # One BLAS thread unless the cell says otherwise: a pool of one thread
        # per core would compete with the loop for the cores it measures.
        self.blas = pin_blas_threads(cell.blas_threads or 1)
        if cell.strategy == "inline" and interrupt_inline:
            # Built-in workloads' inline jobs are cut at the window's end
            # (wsblock.engine.cutoff); the signal handler needs the main thread.
            if self.alarm.install():
                self.strategy.interrupt_with(self.alarm)

        def received(message: dict[str, Any]) -> None:
            # Runs in the lifeline thread. The inline alarm is set here, not
            # where the control runs: a job that arrived before the window did
            # may hold the loop already, and must still be cut at its end.
            if "window_end" in message:
                self.alarm.arm(Window.from_wall(message["window_start"], message["window_end"]).end)
            hand_over(self.control, message)

        self.lifeline = Lifeline(self.config.deadline, received, lambda: hand_over(self.stop_requested.set))

    def control(self, message: dict[str, Any]) -> None:
        """Act on a control message from the runner (the window, and the deadline with it)."""
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

    def start_instruments(self, probe: Callable[[float, Window, Heartbeat, str], Any],
                          watched_thread: int) -> Instruments:
        """Start the heartbeat's probe, the ticker and the watchdog.

        They run from the start, so that stalls before the window (the
        set-up's included) are seen with their sites; the probes record
        samples only once the window is set (:meth:`open_window`).

        Args:
            probe: Makes a probe from its interval, window, heartbeat and name.
            watched_thread: The thread whose stack the watchdog samples (0: none).
        """
        self.heartbeat.last = time.monotonic()
        main = probe(self.cell.probe_interval_ms / 1000.0, self.window, self.heartbeat, "wsblock-probe")
        # Kept apart from the heartbeat so it cannot help the real probe.
        ticker = probe(TICKER_INTERVAL_S, self.window, Heartbeat(math.inf), "wsblock-ticker")
        watchdog = Watchdog(self.heartbeat, watched_thread)
        main.start()
        ticker.start()
        watchdog.start()
        return Instruments(main, ticker, watchdog)

    def open_window(self, instruments: Instruments) -> ResourceSampler:
        """Point the probes at the window and start sampling resources; returns the sampler."""
        instruments.probe.window = instruments.ticker.window = self.window
        sampler = ResourceSampler(psutil.Process(), self.window, self.strategy.worker_pids)
        sampler.start()
        return sampler

    def ready(self, port: int, pid: int) -> None:
        """Tell the runner the server listens: the set-up ends here."""
        self.ready_at = time.monotonic()
        emit({"event": "ready", "port": port, "pid": pid})

    async def set_up(self, warm: Any) -> None:
        """Import what the cell calls, start the strategy and call the work once where it runs.

        Runs before ``ready``, so that nothing of it can fall in the window
        (see :mod:`wsblock.engine.setup_phase`).
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

    def serve_options(self, connection_class: type) -> dict[str, Any]:
        """The websockets ``serve`` options of the cell, the same for both servers.

        Args:
            connection_class: The shell's connection class that reports its
                opening handshake to the watch (:mod:`wsblock.engine.gate`).
        """
        cell = self.cell
        return {"ping_interval": cell.ping_interval, "ping_timeout": cell.ping_timeout,
                "close_timeout": cell.close_timeout, "max_size": protocol.MAX_MESSAGE_BYTES,
                "compression": None, "create_connection": connection_class}

    def report_bind_error(self, exc: OSError) -> None:
        """Tell the runner the server could not listen (a busy port is its own kind)."""
        kind = "port_in_use" if exc.errno == errno.EADDRINUSE else "bind_failed"
        emit({"event": "error", "kind": kind, "message": str(exc)})
        self.bind_failed = True

    def job_failed(self, workload: str, exc: BaseException, when: str) -> None:
        """Tell the runner that the work raised what no job may (the cell fails), and stop."""
        emit({"event": "fatal", "kind": "work",
              "message": f"{workload} raised {contained.cause(exc)} {when} ({self.cell.strategy})"})
        self.stop_requested.set()

    # -- one connection -------------------------------------------------------------------------

    def opened(self, ws: Any) -> bool:
        """Count a new connection and apply the cell's handler settings; returns whether it is the load's."""
        ours = self.gate.is_load(getattr(ws, "request", None))
        now = time.monotonic()
        with self.lock:
            if not ours:
                # Its echoes are answered and its jobs refused; it is counted
                # apart and kept out of every measurement.
                if gate.accepted_at(ws, now) < self.window.end:
                    self.stats.foreign_connections += 1
            elif self.window.contains(now):
                self.stats.connections_opened += 1
        override = self.cell.handler_ping_timeout
        if override is not None:
            # The advice under test: change the live connection's setting
            # (both servers' keepalive read it before every wait).
            ws.ping_timeout = None if override == "none" else float(override)
        return ours

    def receive(self, message: Any, ours: bool) -> Step:
        """What to do with one message of a connection (counted here)."""
        arrived = time.time()
        stats = self.stats
        if not ours:
            with self.lock:
                stats.foreign_messages += 1
        try:
            request = protocol.parse(message, self.data_dir, allowed=self.cell.workload)
        except protocol.ProtocolError as exc:
            with self.lock:
                stats.protocol_closes += 1
                stats.bad_input[exc.kind] += 1
            return Close(exc.code, str(exc))
        except protocol.RequestError as exc:
            self._count_invalid()
            return Reply(json.dumps({"op": "error", "error": str(exc)}))
        if isinstance(request, protocol.Echo):
            return Reply(json.dumps({"op": "echo", "seq": request.seq}), echo=request, arrived=arrived)
        job_id, job = request
        with self.lock:
            refused = self._refused(job, ours)
        if refused:
            return Reply(json.dumps({"op": "error", "id": job_id, "error": refused}))
        reason = self.strategy.unsupported_reason(workloads.get(job.workload))
        if reason:
            self._count_invalid()
            return Reply(json.dumps({"op": "error", "id": job_id, "error": reason}))
        with self.lock:
            if time.monotonic() >= self.window.end:
                # A job of the load that would start only now (queued behind
                # the job the window ended in) is not run: the ledger keeps
                # no job that starts after the window, and it would only
                # delay the stop by a whole job.
                return None
            ticket = stats.jobs.start(time.monotonic())
        return Run(job_id, job, ticket)

    def replied(self, step: Reply, ours: bool) -> None:
        """Count what a reply, once sent, measured: an echo of the load's, inside the window."""
        if step.echo is None or not ours or not self.window.contains(time.monotonic()):
            return
        with self.lock:
            self.stats.echoes += 1
            if step.echo.sent is not None:
                self.stats.io_lag.record(max(0.0, step.arrived - step.echo.sent))

    def done(self, run: Run, timing: Any, ours: bool) -> Reply:
        """Record a job that ran to its end; returns the reply to send."""
        with self.lock:
            # The ledger keeps every job that overlapped the window; one that
            # ended after it is censored at the window's end.
            self.stats.jobs.finish(run.ticket, time.monotonic(), wall_ms=timing.wall_ms, cpu_ms=timing.cpu_ms)
        self.took_result(timing, ours)
        return Reply(json.dumps({"op": "done", "id": run.job_id, "wall_ms": round(timing.wall_ms, 3),
                                 "cpu_ms": round(timing.cpu_ms, 3)}))

    def failed(self, run: Run, exc: BaseException, propagate: tuple[type[BaseException], ...]) -> Step:
        """Record a job that raised ``exc``; returns the step to take.

        Raises:
            BaseException: ``exc`` itself if it is one of ``propagate``: the
                handler counts it as a fault of its own and closes with 1011.
        """
        if isinstance(exc, cutoff.Cut):
            # The window ended before the job did: censored where it was cut,
            # and nothing is sent (the load has stopped listening).
            with self.lock:
                self.stats.jobs.cut(run.ticket, exc.at, worked=exc.worked)
            return None
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            if self.closing:
                return Close(None)
            # A pool worker died: the cell cannot be measured. Tell the
            # runner, which stops the run as a harness failure.
            emit({"event": "fatal", "message": f"a pool worker died while running {run.job.workload} "
                                                 f"(os._exit, or a crash): {exc}"})
            self.stop_requested.set()
            return Close(1011, "worker died")
        with self.lock:
            self.stats.jobs.abandon(run.ticket)
        if isinstance(exc, propagate):
            raise exc
        # SystemExit, KeyboardInterrupt or another BaseException from the work
        # (a user's function): it must not end the server unrecorded, nor
        # pass for a measurement.
        self.job_failed(run.job.workload, exc, "in a job")
        return Close(1011, "job failed")

    def dropped(self, exc: ConnectionClosed, ours: bool) -> None:
        """Count a connection that ended while the handler read or wrote it."""
        info = closes.from_exception(exc, side="server")
        with self.lock:
            if info.code == 1009 and info.initiator == "server":
                self.stats.bad_input["too_big"] += 1
            if ours:
                self.stats.closed(info, time.monotonic())

    def faulted(self, exc: Exception) -> None:
        """Count an exception the handler did not expect (its connection then closes with 1011)."""
        with self.lock:
            self.stats.handler_errors[type(exc).__name__] += 1
        traceback.print_exc(file=sys.stderr)

    def ended(self, ws: Any, ours: bool) -> None:
        """Count a connection that closed after its handler was done with it."""
        if ours:
            info = closes.from_connection(ws, side="server")
            with self.lock:
                self.stats.closed(info, time.monotonic())

    def took_result(self, timing: Any, ours: bool) -> None:
        """Note the result a job handed back to the handler, which then drops it.

        The reply a real handler would build from it is the job's timing
        here; what reaching the handler cost (the unpickling of a worker's
        result, in the server) is recorded for the load's jobs in the window.
        """
        returned = timing.result
        if ours and isinstance(returned, carry.Returned) and self.window.contains(time.monotonic()):
            with self.lock:
                self.stats.results.record(returned)

    def _count_invalid(self) -> None:
        with self.lock:
            self.stats.request_errors += 1
            self.stats.bad_input["invalid_request"] += 1

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

    # -- the measurements -----------------------------------------------------------------------

    def stall_measurements(self, stalls: Any, probe_samples: int) -> dict[str, Any]:
        """The record's ``stalls``: the window's (set-up left out) and those before it."""
        charged = setup_phase.strategy_stalls(stalls, self.ready_at)
        out = summarize_stalls(charged, self.window, probe_samples=probe_samples)
        out["before_window"] = setup_phase.before_window(stalls, self.window, ready_at=self.ready_at,
                                                         setup_ms=self.setup_ms)
        return out

    def measurements(self, stopped_at: float, *, probe: Any, ticker: Any, stalls: Any, resources: dict[str, Any],
                     event_loop: Any, probe_kind: dict[str, str]) -> dict[str, Any]:
        """The server's measurements of the window, as its stats file holds them.

        Both servers write the same keys; taken under the counters' lock.
        """
        with self.lock:
            return self._measurements(stopped_at, probe=probe, ticker=ticker, stalls=stalls, resources=resources,
                                      event_loop=event_loop, probe_kind=probe_kind)

    def _measurements(self, stopped_at: float, *, probe: Any, ticker: Any, stalls: Any, resources: dict[str, Any],
                      event_loop: Any, probe_kind: dict[str, str]) -> dict[str, Any]:
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
            "blas": self.blas,
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
