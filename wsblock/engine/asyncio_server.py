"""The cell server on the asyncio websockets server.

One event loop runs every connection's handler, the lag probe and the
ticker; the cell's strategy decides where a job runs (inline on the loop, in
steps between which the loop runs, or in a pool the loop waits on). What the
messages mean, what is counted and what is written is the serving core's
(:mod:`wsblock.engine.serving`); this module owns the loop: it binds, calls
the set-up on the loop's thread, prints a ``ready`` event with its port,
serves until stdin closes, then writes the measurements to the stats file.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsblock import atomic
from wsblock.engine import gate, serving
from wsblock.engine.probe import Heartbeat, LagProbe
from wsblock.engine.process_config import ServerConfig
from wsblock.engine.window import Window

PROBE = {"kind": "loop", "what": "lateness of a 1 ms asyncio.sleep in the server's event loop"}
"""The record's ``meta.probe`` of this server (the threaded server has its own)."""

PROPAGATED = (Exception, asyncio.CancelledError)
"""What a job may raise that the handler treats as its own fault (counted, closed with 1011)."""


def _lag_probe(interval_s: float, window: Window, heartbeat: Heartbeat, name: str) -> Any:
    # A task on the loop; looked up at call time, so that a self-test may
    # replace the class.
    return LagProbe(interval_s, window, heartbeat)


class AsyncioServer:
    """The server side of one cell, on ``websockets.asyncio.server``.

    Args:
        config: The server config written by the runner.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.stop_requested = asyncio.Event()
        self.window_set = asyncio.Event()
        self.core = serving.Serving(config, stop_requested=self.stop_requested, window_set=self.window_set)

    async def handler(self, ws: ServerConnection) -> None:
        """Serve one connection: its messages through the core, until it closes."""
        core = self.core
        ours = core.opened(ws)
        try:
            await self._serve(ws, ours)
        except ConnectionClosed as exc:
            core.dropped(exc, ours)
            return
        except Exception as exc:  # noqa: BLE001 - every fault is counted, then the connection ends
            core.faulted(exc)
            try:
                await ws.close(1011, "internal error")
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            return
        await ws.wait_closed()
        core.ended(ws, ours)

    async def _serve(self, ws: ServerConnection, ours: bool) -> None:
        core = self.core
        async for message in ws:
            step = core.receive(message, ours)
            if isinstance(step, serving.Run):
                try:
                    timing = await core.strategy.run(step.job)
                except BaseException as exc:
                    step = core.failed(step, exc, PROPAGATED)
                else:
                    step = core.done(step, timing, ours)
            if isinstance(step, serving.Reply):
                await ws.send(step.text)
                core.replied(step, ours)
            elif isinstance(step, serving.Close):
                if step.code is not None:
                    await ws.close(step.code, step.reason)
                return

    def measurements(self, stopped_at: float, **kwargs: Any) -> dict[str, Any]:
        """The measurements to write (the core's; a self-test server adds its own)."""
        return self.core.measurements(stopped_at, **kwargs)

    async def main(self) -> dict[str, Any]:
        """Serve until stdin closes; return (and write) the measurements, or ``{}``."""
        core = self.core
        config = core.config
        cell = core.cell
        loop = asyncio.get_running_loop()
        core.begin(loop.call_soon_threadsafe, interrupt_inline=True)
        instruments = core.start_instruments(_lag_probe, threading.get_ident())
        probe, ticker, watchdog = instruments.probe, instruments.ticker, instruments.watchdog
        warm = config.warm_job.job(core.data_dir)
        try:
            server = await serve(self.handler, cell.host, cell.port,
                                 **core.serve_options(gate.asyncio_connection(core.handshakes)))
        except OSError as exc:
            core.report_bind_error(exc)
            await probe.stop()
            await ticker.stop()
            watchdog.stop()
            return {}
        try:
            try:
                await core.set_up(warm)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the work's first call may raise anything
                core.job_failed(cell.workload, exc, "on the server's first call")
                return {}
            core.ready(server.sockets[0].getsockname()[1], os.getpid())
            waiter = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait([waiter, asyncio.ensure_future(self.window_set.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if not self.window_set.is_set():
                return {}  # stopped before any window: nothing to report
            sampler = core.open_window(instruments)
            await waiter
            await probe.stop()
            await ticker.stop()
            stopped_at = time.monotonic()
            stalls = watchdog.stop()
            resources = sampler.stop()
            result = self.measurements(stopped_at, probe=probe, ticker=ticker, stalls=stalls, resources=resources,
                                       event_loop=describe_loop(loop), probe_kind=PROBE)
            atomic.write_json(config.stats_path, result)
            return result
        finally:
            core.alarm.uninstall()
            await probe.stop()
            await ticker.stop()
            watchdog.stop()
            server.close(close_connections=True)
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=cell.close_timeout + 1)
            except asyncio.TimeoutError:
                pass
            await core.strategy.close()


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


def run(config: ServerConfig) -> int:
    """Run the asyncio server of one cell.

    Returns:
        Exit code: 0 after a normal stop, 3 if the address could not be
        bound, 4 if stopped before a window was set.
    """
    server = AsyncioServer(config)
    with asyncio.Runner(loop_factory=loop_factory(config.cell.loop)) as runner:
        result = runner.run(server.main())
    if not result:
        return 3 if server.core.bind_failed else 4
    return 0
