"""The server process: a websockets server that does blocking work.

Started by the runner as ``python -m wsblock.engine.server CONFIG.json``. It binds,
starts the lag probe and watchdog, warms the strategy's pool, prints a
``ready`` event with its port, and serves until stdin closes. It then writes
its measurements to the stats file named in the config, as JSON, and exits.
Everything it measures is restricted to the window the runner chose.
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
from dataclasses import dataclass, field
from typing import Any

import psutil
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import workloads
from workloads import Job
from wsblock import atomic
from wsblock.engine import closes
from wsblock.engine import protocol
from wsblock.engine import strategies
from wsblock.engine.blas import pin_blas_threads
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.probe import Heartbeat, LagProbe, Watchdog, summarize_stalls
from wsblock.engine.proc import Lifeline, emit
from wsblock.engine.resources import ResourceSampler
from wsblock.engine.stats import LatencyHistogram
from wsblock.engine.window import Window


TICKER_INTERVAL_S = 0.1


@dataclass
class ServerStats:
    """What the server counts inside the window."""

    window: Window
    connections_opened: int = 0
    disconnects: list[dict[str, Any]] = field(default_factory=list)
    jobs_done: int = 0
    job_wall: LatencyHistogram = field(default_factory=LatencyHistogram)
    job_cpu: LatencyHistogram = field(default_factory=LatencyHistogram)
    echoes: int = 0
    request_errors: int = 0
    protocol_closes: int = 0
    in_flight: int = 0

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
        self.stats = ServerStats(self.window)
        self.heartbeat = Heartbeat(config.stall_ms / 1000.0)
        self.strategy = strategies.create(
            config.strategy, workers=config.workers, start_method=config.start_method
        )
        self.data_dir = config.data_dir
        self.stop_requested = asyncio.Event()
        self.window_set = asyncio.Event()
        self.lifeline: Lifeline | None = None
        self.bind_failed = False

    def _control(self, message: dict[str, Any]) -> None:
        # Runs in the loop thread (scheduled by the lifeline thread).
        if "window_start" in message:
            self.window = Window.from_wall(message["window_start"], message["window_end"])
            self.stats.window = self.window
            if self.lifeline is not None:
                self.lifeline.deadline = message["deadline"]
            self.window_set.set()

    async def handler(self, ws: ServerConnection) -> None:
        if self.window.contains(time.monotonic()):
            self.stats.connections_opened += 1
        override = self.config.handler_ping_timeout
        if override is not None:
            # The advice under test: change the live connection's setting.
            ws.ping_timeout = None if override == "none" else float(override)
        try:
            async for message in ws:
                try:
                    request = protocol.parse(message, self.data_dir)
                except protocol.ProtocolError as exc:
                    self.stats.protocol_closes += 1
                    await ws.close(1008, str(exc))
                    break
                except protocol.RequestError as exc:
                    self.stats.request_errors += 1
                    await ws.send(json.dumps({"op": "error", "error": str(exc)}))
                    continue
                if isinstance(request, protocol.Echo):
                    await ws.send(json.dumps({"op": "echo", "seq": request.seq}))
                    if self.window.contains(time.monotonic()):
                        self.stats.echoes += 1
                    continue
                job_id, job = request
                reason = self.strategy.unsupported_reason(workloads.get(job.workload))
                if reason:
                    self.stats.request_errors += 1
                    await ws.send(json.dumps({"op": "error", "id": job_id, "error": reason}))
                    continue
                started = time.monotonic()
                self.stats.in_flight += 1
                try:
                    timing = await self.strategy.run(job)
                except concurrent.futures.BrokenExecutor as exc:
                    # A pool worker died: the cell cannot be measured. Tell
                    # the runner, which stops the run as a harness failure.
                    emit({"event": "fatal", "message": f"a pool worker died: {exc}"})
                    self.stop_requested.set()
                    await ws.close(1011, "worker died")
                    return
                done = time.monotonic()
                self.stats.in_flight -= 1
                if self.window.contains(done):
                    self.stats.jobs_done += 1
                # A job's own time is worth knowing even when it outlasts the
                # window (a slow job is the finding): time every job that
                # overlapped the window and ended before the server stopped.
                if started < self.window.end and done >= self.window.start:
                    self.stats.job_wall.record(timing.wall_ms / 1000.0)
                    self.stats.job_cpu.record(timing.cpu_ms / 1000.0)
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
        except ConnectionClosed as exc:
            self.stats.closed(closes.from_exception(exc, side="server"), time.monotonic())
            return
        await ws.wait_closed()
        self.stats.closed(closes.from_connection(ws, side="server"), time.monotonic())

    async def main(self) -> dict[str, Any]:
        config = self.config
        blas = pin_blas_threads(1)
        loop = asyncio.get_running_loop()
        self.lifeline = Lifeline(
            config.deadline,
            lambda message: loop.call_soon_threadsafe(self._control, message),
            lambda: loop.call_soon_threadsafe(self.stop_requested.set),
        )
        watchdog = Watchdog(self.heartbeat, threading.get_ident())
        warm = config.warm_job.job(self.data_dir)
        try:
            server = await serve(
                self.handler,
                config.host,
                config.port,
                ping_interval=config.ping_interval,
                ping_timeout=config.ping_timeout,
                close_timeout=config.close_timeout,
                max_size=protocol.MAX_MESSAGE_BYTES,
                compression=None,
            )
        except OSError as exc:
            kind = "port_in_use" if exc.errno == errno.EADDRINUSE else "bind_failed"
            emit({"event": "error", "kind": kind, "message": str(exc)})
            self.bind_failed = True
            return {}
        try:
            await self.strategy.start(warm)
            port = server.sockets[0].getsockname()[1]
            emit({"event": "ready", "port": port, "pid": os.getpid()})
            waiter = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait([waiter, asyncio.ensure_future(self.window_set.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if not self.window_set.is_set():
                return {}  # stopped before any window: nothing to report
            probe = LagProbe(config.probe_interval_ms / 1000.0, self.window, self.heartbeat)
            # What a typical "monitor the loop with a periodic task" sees: a
            # 100 ms ticker, kept apart from the heartbeat so it cannot help
            # the real probe.
            ticker = LagProbe(TICKER_INTERVAL_S, self.window, Heartbeat(math.inf))
            sampler = ResourceSampler(psutil.Process(), self.window, self.strategy.worker_pids)
            probe.start()
            ticker.start()
            watchdog.start()
            sampler.start()
            await waiter
            await probe.stop()
            await ticker.stop()
            stalls = watchdog.stop()
            resources = sampler.stop()
            result = {
                "connections_opened": self.stats.connections_opened,
                "disconnects": self.stats.disconnects,
                "jobs_done": self.stats.jobs_done,
                "job_ms": {**self.stats.job_wall.summary(("p50", "p99")),
                           "in_flight_at_stop": self.stats.in_flight},
                "job_cpu_ms": self.stats.job_cpu.summary(("p50", "p99")),
                "echoes": self.stats.echoes,
                "request_errors": self.stats.request_errors,
                "protocol_closes": self.stats.protocol_closes,
                "loop_lag_ms": probe.histogram.summary(),
                "stalls": summarize_stalls(stalls, self.window),
                "ticker_lag_ms": {
                    **ticker.histogram.summary(("p50", "p99")),
                    "interval_ms": TICKER_INTERVAL_S * 1000,
                    "late_ticks": ticker.late(config.stall_ms / 1000.0),
                },
                "resources": resources,
                "blas": blas,
                "switch_interval_s": sys.getswitchinterval(),
                "start_method": config.start_method if config.strategy == "process" else None,
            }
            atomic.write_json(config.stats_path, result)
            return result
        finally:
            server.close(close_connections=True)
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=config.close_timeout + 1)
            except asyncio.TimeoutError:
                pass
            await self.strategy.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the server process.

    Args:
        argv: ``[CONFIG.json]``.

    Returns:
        Exit code: 0 after a normal stop, 3 if the address could not be
        bound, 4 if stopped before a window was set.
    """
    args = sys.argv[1:] if argv is None else argv
    config = ServerConfig.read(args[0])
    server = CellServer(config)
    result = asyncio.run(server.main())
    if not result:
        return 3 if server.bind_failed else 4
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
