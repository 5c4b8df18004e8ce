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
connections, the lifeline, the cut-off at the window's end and the stats
file are the serving core's (:mod:`wsblock.engine.serving`), shared with the
asyncio server (:mod:`wsblock.engine.asyncio_server`), so the load process
and every reader of records treat both alike. A pool does not begin a job
after the window's end; an inline job runs in a handler thread, which no
signal can interrupt, so it runs to its end (:mod:`wsblock.engine.cutoff`).
The one measure that cannot be the same is the loop lag: here a probe *thread* sleeps 1 ms and records how late it wakes
(:class:`wsblock.engine.probe.ThreadProbe`), which is how long a thread of
this process waits for the GIL (and for the operating system), and a
heartbeat gap longer than the stall threshold is a stall, as on the loop.
The record says which probe ran (``meta.probe.kind``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from wsblock import atomic
from wsblock.engine import gate, serving
from wsblock.engine.probe import Heartbeat, ThreadProbe
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.window import Window

PROBE = {"kind": "thread", "what": "lateness of a 1 ms time.sleep in a thread of the server process "
                                  "(waiting for the GIL and the CPU); no event loop"}
"""The record's ``meta.probe`` of this server."""

PROPAGATED = (Exception,)
"""What a job may raise that the handler treats as its own fault (counted, closed with 1011).

Any other ``BaseException`` (``SystemExit`` from a user's function) would end
the thread quietly: the cell fails instead, with the cause."""


def _thread_probe(interval_s: float, window: Window, heartbeat: Heartbeat, name: str) -> Any:
    return ThreadProbe(interval_s, window, heartbeat, name=name)


class ThreadedServer:
    """The server side of one cell, on ``websockets.sync.server``.

    Args:
        config: The server config written by the runner.
    """

    def __init__(self, config: ServerConfig) -> None:
        # Set from the lifeline's thread and waited on by the main thread.
        self.stop_requested = threading.Event()
        self.window_set = threading.Event()
        # Handler threads share the counters: one lock keeps every update whole.
        self.core = serving.Serving(config, stop_requested=self.stop_requested, window_set=self.window_set,
                                    lock=threading.Lock())

    def handler(self, ws: ServerConnection) -> None:
        """Serve one connection in its own thread: its messages through the core, until it closes."""
        core = self.core
        ours = core.opened(ws)
        try:
            self._serve(ws, ours)
        except ConnectionClosed as exc:
            core.dropped(exc, ours)
            return
        except Exception as exc:  # noqa: BLE001 - every fault is counted, then the connection ends
            core.faulted(exc)
            try:
                ws.close(1011, "internal error")
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            return
        _wait_closed(ws, core.cell.close_timeout + 1)
        core.ended(ws, ours)

    def _serve(self, ws: ServerConnection, ours: bool) -> None:
        core = self.core
        for message in ws:
            step = core.receive(message, ours)
            if isinstance(step, serving.Run):
                try:
                    timing = core.strategy.run_blocking(step.job)
                except BaseException as exc:
                    step = core.failed(step, exc, PROPAGATED)
                else:
                    step = core.done(step, timing, ours)
            if isinstance(step, serving.Reply):
                ws.send(step.text)
                core.replied(step, ours)
            elif isinstance(step, serving.Close):
                if step.code is not None:
                    ws.close(step.code, step.reason)
                return

    def serve_cell(self) -> dict[str, Any]:
        """Serve until stdin closes; return (and write) the measurements, or ``{}``."""
        core = self.core
        config = core.config
        cell = core.cell
        # The control runs in the lifeline's thread: there is no loop to hand it to.
        core.begin(_call, interrupt_inline=False)
        warm = config.warm_job.job(core.data_dir)
        # The watchdog has no one thread to sample: any thread may hold the
        # GIL the probe waits for. It still turns heartbeat gaps into stalls.
        instruments = core.start_instruments(_thread_probe, 0)
        probe, ticker, watchdog = instruments.probe, instruments.ticker, instruments.watchdog
        try:
            server = serve(self.handler, cell.host, cell.port,
                           **core.serve_options(gate.sync_connection(core.handshakes)))
        except OSError as exc:
            core.report_bind_error(exc)
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
                asyncio.run(core.set_up(warm))
            except BaseException as exc:  # noqa: BLE001 - the work's first call may raise anything
                core.job_failed(cell.workload, exc, "on the server's first call")
                return {}
            acceptor.start()
            core.ready(server.socket.getsockname()[1], os.getpid())
            while not (self.window_set.is_set() or self.stop_requested.is_set()):
                self.stop_requested.wait(0.05)
            if not self.window_set.is_set():
                return {}  # stopped before any window: nothing to report
            sampler = core.open_window(instruments)
            self.stop_requested.wait()
            probe.stop()
            ticker.stop()
            stopped_at = time.monotonic()
            stalls = watchdog.stop()
            resources = sampler.stop()
            result = core.measurements(stopped_at, probe=probe, ticker=ticker, stalls=stalls, resources=resources,
                                       event_loop=None, probe_kind=PROBE)
            atomic.write_json(config.stats_path, result)
            return result
        finally:
            core.closing = True
            probe.stop()
            ticker.stop()
            watchdog.stop()
            _shutdown(server, cell.close_timeout + 1)
            asyncio.run(core.strategy.close())


def _call(function: Any, *args: Any) -> None:
    function(*args)


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


def run(config: ServerConfig) -> int:
    """Run the threaded server of one cell.

    Returns:
        Exit code: 0 after a normal stop, 3 if the address could not be
        bound, 4 if stopped before a window was set.
    """
    server = ThreadedServer(config)
    result = server.serve_cell()
    code = 0 if result else 3 if server.core.bind_failed else 4
    # A handler thread still inside an inline job cannot be stopped, and the
    # interpreter would wait for it at exit: the measurements are written,
    # so the process ends now.
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
