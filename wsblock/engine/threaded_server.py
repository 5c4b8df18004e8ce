"""The server process of a cell on the threaded websockets server.

``websockets.sync.server`` serves each connection with threads: one runs
the handler, one reads the socket (and answers pings, and notes pongs), one
sends keepalive pings and fails the connection with 1011 when a pong is
late. There is no event loop, so the cell's strategies act on threads:

* ``inline``: the job runs in the connection's handler thread, which blocks
  that connection only; other connections' threads run while the job lets
  them have the GIL;
* ``thread`` and ``process``: the handler thread submits the job to the
  same pools as on the asyncio server and waits for it;
* ``chunked`` yields to a loop there is not: refused before the server starts.

Echoes, the job protocol, the measurement window, the token of the load's
connections, the lifeline and the stats file are those of the asyncio
server (:mod:`wsblock.engine.server`), so the load process and every reader
of records treat both alike. The one measure that cannot be the same is the
loop lag: here a probe *thread* sleeps 1 ms and records how late it wakes
(:class:`wsblock.engine.probe.ThreadProbe`), which is how long a thread of
this process waits for the GIL (and for the operating system), and a
heartbeat gap longer than the stall threshold is a stall, as on the loop.
The record says which probe ran (``meta.probe.kind``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import sys
import threading
import time
import traceback
from typing import Any

import psutil
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

import workloads
from wsblock import atomic
from wsblock.engine import closes, gate, protocol, strategies
from wsblock.engine.blas import pin_blas_threads
from wsblock.engine.probe import Heartbeat, ThreadProbe, Watchdog
from wsblock.engine.proc import Lifeline, emit
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.resources import ResourceSampler
from wsblock.engine.server import TICKER_INTERVAL_S, CellServer

PROBE = {"kind": "thread", "what": "lateness of a 1 ms time.sleep in a thread of the server process "
                                  "(waiting for the GIL and the CPU); no event loop"}
"""The record's ``meta.probe`` of this server."""


class ThreadedCellServer(CellServer):
    """The server side of one cell, on ``websockets.sync.server``.

    Args:
        config: The server config written by the runner.
    """

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        # Set from the lifeline's thread and waited on by the main thread.
        self.stop_requested = threading.Event()  # type: ignore[assignment]
        self.window_set = threading.Event()  # type: ignore[assignment]
        # Handler threads share the counters: one lock keeps every update whole.
        self.lock = threading.Lock()
        # Set once the measurements are written: a pool closed under a
        # waiting handler is then the end of the run, not a dead worker.
        self.closing = False

    def handler(self, ws: ServerConnection) -> None:  # type: ignore[override]
        ours = self._is_load(ws)
        now = time.monotonic()
        with self.lock:
            if not ours:
                if gate.accepted_at(ws, now) < self.window.end:
                    self.stats.foreign_connections += 1
            elif self.window.contains(now):
                self.stats.connections_opened += 1
        override = self.cell.handler_ping_timeout
        if override is not None:
            # The keepalive thread reads the attribute before every wait.
            ws.ping_timeout = None if override == "none" else float(override)
        try:
            self._serve_sync(ws, ours)
        except ConnectionClosed as exc:
            info = closes.from_exception(exc, side="server")
            with self.lock:
                if info.code == 1009 and info.initiator == "server":
                    self.stats.bad_input["too_big"] += 1
                if ours:
                    self.stats.closed(info, time.monotonic())
            return
        except Exception as exc:  # noqa: BLE001 - every fault is counted, then the connection ends
            with self.lock:
                self.stats.handler_errors[type(exc).__name__] += 1
            traceback.print_exc(file=sys.stderr)
            try:
                ws.close(1011, "internal error")
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            return
        _wait_closed(ws, self.cell.close_timeout + 1)
        if ours:
            info = closes.from_connection(ws, side="server")
            with self.lock:
                self.stats.closed(info, time.monotonic())

    def connection_class(self) -> type:
        """The connection class ``serve`` creates: it reports its opening handshake to the watch."""
        return gate.sync_connection(self.handshakes)

    def _serve_sync(self, ws: ServerConnection, ours: bool) -> None:
        stats = self.stats
        lock = self.lock
        for message in ws:
            arrived = time.time()
            if not ours:
                with lock:
                    stats.foreign_messages += 1
            try:
                request = protocol.parse(message, self.data_dir, allowed=self.cell.workload)
            except protocol.ProtocolError as exc:
                with lock:
                    stats.protocol_closes += 1
                    stats.bad_input[exc.kind] += 1
                ws.close(exc.code, str(exc))
                return
            except protocol.RequestError as exc:
                with lock:
                    stats.request_errors += 1
                    stats.bad_input["invalid_request"] += 1
                ws.send(json.dumps({"op": "error", "error": str(exc)}))
                continue
            if isinstance(request, protocol.Echo):
                ws.send(json.dumps({"op": "echo", "seq": request.seq}))
                if ours and self.window.contains(time.monotonic()):
                    with lock:
                        stats.echoes += 1
                        if request.sent is not None:
                            stats.io_lag.record(max(0.0, arrived - request.sent))
                continue
            job_id, job = request
            with lock:
                refused = self._refused(job, ours)
            if refused:
                ws.send(json.dumps({"op": "error", "id": job_id, "error": refused}))
                continue
            reason = self.strategy.unsupported_reason(workloads.get(job.workload))
            if reason:
                with lock:
                    stats.request_errors += 1
                    stats.bad_input["invalid_request"] += 1
                ws.send(json.dumps({"op": "error", "id": job_id, "error": reason}))
                continue
            with lock:
                if time.monotonic() >= self.window.end:
                    # As on the asyncio server: a load job that would start
                    # only after the window is not run (the ledger keeps
                    # none, and it would only delay the stop).
                    continue
                ticket = stats.jobs.start(time.monotonic())
            try:
                timing = self.strategy.run_blocking(job)
            except concurrent.futures.BrokenExecutor as exc:
                if self.closing:
                    return
                emit({"event": "fatal", "message": f"a pool worker died while running {job.workload} "
                                                         f"(os._exit, or a crash): {exc}"})
                self.stop_requested.set()
                ws.close(1011, "worker died")
                return
            except BaseException as exc:
                if ticket is not None:
                    with lock:
                        stats.jobs.abandon(ticket)
                if isinstance(exc, Exception):
                    raise
                # A thread would end quietly on SystemExit: the cell fails
                # instead, with the cause (see CellServer.job_failed).
                self.job_failed(job.workload, exc, "in a job")
                ws.close(1011, "job failed")
                return
            if ticket is not None:
                with lock:
                    stats.jobs.finish(ticket, time.monotonic(), wall_ms=timing.wall_ms, cpu_ms=timing.cpu_ms)
            self.took_result(timing, ours)
            ws.send(json.dumps({"op": "done", "id": job_id, "wall_ms": round(timing.wall_ms, 3),
                                "cpu_ms": round(timing.cpu_ms, 3)}))

    def serve_cell(self) -> dict[str, Any]:
        """Serve until stdin closes; return (and write) the measurements, or ``{}``."""
        config = self.config
        cell = self.cell
        if cell.switch_interval_ms is not None:
            sys.setswitchinterval(cell.switch_interval_ms / 1000.0)
        blas = pin_blas_threads(1)
        self.lifeline = Lifeline(config.deadline, self._control, self.stop_requested.set)
        warm = config.warm_job.job(self.data_dir)
        # As on the asyncio server, the probe and the watchdog run from the
        # start, so stalls before the window are seen (the probes record
        # samples only once the window is set). The watchdog has no one
        # thread to sample: any thread may hold the GIL the probe waits for.
        # It still turns heartbeat gaps into stalls.
        self.heartbeat.last = time.monotonic()
        watchdog = Watchdog(self.heartbeat, 0)
        probe = ThreadProbe(cell.probe_interval_ms / 1000.0, self.window, self.heartbeat)
        ticker = ThreadProbe(TICKER_INTERVAL_S, self.window, Heartbeat(math.inf), name="wsblock-ticker")
        probe.start()
        ticker.start()
        watchdog.start()
        try:
            server = serve(self.handler, cell.host, cell.port, **self.serve_options())
        except OSError as exc:
            self.report_bind_error(exc)
            probe.stop()
            ticker.stop()
            watchdog.stop()
            return {}
        acceptor = threading.Thread(target=server.serve_forever, name="wsblock-accept", daemon=True)
        try:
            # Imports, the pools and the first calls, by the strategies' own
            # code, on a loop that lives only for that, before any
            # connection opens (wsblock.engine.setup_phase).
            try:
                asyncio.run(self.set_up(warm))
            except BaseException as exc:  # noqa: BLE001 - the work's first call may raise anything
                self.job_failed(cell.workload, exc, "on the server's first call")
                return {}
            acceptor.start()
            port = server.socket.getsockname()[1]
            self.ready_at = time.monotonic()
            emit({"event": "ready", "port": port, "pid": os.getpid()})
            while not (self.window_set.is_set() or self.stop_requested.is_set()):
                self.stop_requested.wait(0.05)
            if not self.window_set.is_set():
                return {}  # stopped before any window: nothing to report
            probe.window = ticker.window = self.window
            sampler = ResourceSampler(psutil.Process(), self.window, self.strategy.worker_pids)
            sampler.start()
            self.stop_requested.wait()
            probe.stop()
            ticker.stop()
            stopped_at = time.monotonic()
            stalls = watchdog.stop()
            resources = sampler.stop()
            with self.lock:
                result = self.measurements(stopped_at, probe=probe, ticker=ticker, stalls=stalls,
                                           resources=resources, blas=blas, event_loop=None, probe_kind=PROBE)
            atomic.write_json(config.stats_path, result)
            return result
        finally:
            self.closing = True
            probe.stop()
            ticker.stop()
            watchdog.stop()
            _shutdown(server, cell.close_timeout + 1)
            asyncio.run(self.strategy.close())


def _wait_closed(ws: ServerConnection, timeout: float) -> None:
    # wait_closed() is recent; older releases expose the reader thread.
    wait = getattr(ws, "wait_closed", None)
    if wait is not None:
        wait(timeout)
        return
    reader = getattr(ws, "recv_events_thread", None)
    if reader is not None:
        reader.join(timeout)


def _shutdown(server: Any, timeout: float) -> None:
    """Close the server and its connections, waiting at most ``timeout`` seconds.

    ``shutdown`` waits for every handler thread, and a handler may be in the
    middle of an inline job: it runs in a thread of its own, and whatever is
    still running at the deadline ends with the process.
    """
    closer = threading.Thread(target=server.shutdown, name="wsblock-shutdown", daemon=True)
    closer.start()
    closer.join(timeout)


def main(config: ServerConfig) -> int:
    """Run the threaded server of one cell.

    Returns:
        Exit code: 0 after a normal stop, 3 if the address could not be
        bound, 4 if stopped before a window was set.
    """
    server = ThreadedCellServer(config)
    result = server.serve_cell()
    code = 0 if result else 3 if server.bind_failed else 4
    # A handler thread still inside an inline job cannot be stopped, and the
    # interpreter would wait for it at exit: the measurements are written,
    # so the process ends now.
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
