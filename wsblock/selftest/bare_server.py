"""A bare websockets echo server, the yardstick of the harness's own server.

Run as ``python -m wsblock.selftest.bare_server CONFIG.json`` in the server
slot of :func:`wsblock.engine.runner.run_processes`. It sends every message
back as it came (the load's echo requests carry their ``seq``, which is all
the load reads of a reply) and has nothing else: no probe, no watchdog, no
protocol parsing, no workload machinery, no resource sampling. It binds with
the same connection settings as the engine's server (keepalive, close
timeout, message size, no compression), so the comparison is of the
machinery, not of the settings. It follows the server side of the runner's
protocol: a ``ready`` event with its port, the window and "stop" on stdin, a
stats file (which says only that it is the bare server) when it stops.
"""

from __future__ import annotations

import asyncio
import os
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsblock import atomic
from wsblock.engine import protocol
from wsblock.engine.proc import Lifeline, emit
from wsblock.engine.process_config import ServerConfig


async def _echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def serve_until_stopped(config: ServerConfig) -> None:
    """Serve echoes until stdin closes, then write the stats file."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    lifeline = Lifeline(config.deadline, lambda message: _on_message(lifeline, message),
                        lambda: loop.call_soon_threadsafe(stop.set))
    cell = config.cell
    async with serve(_echo, cell.host, cell.port, ping_interval=cell.ping_interval,
                     ping_timeout=cell.ping_timeout, close_timeout=cell.close_timeout,
                     max_size=protocol.MAX_MESSAGE_BYTES, compression=None) as server:
        emit({"event": "ready", "port": server.sockets[0].getsockname()[1], "pid": os.getpid()})
        await stop.wait()
        atomic.write_json(config.stats_path, {"server": "bare websockets echo"})
        server.close(close_connections=True)


def _on_message(lifeline: Lifeline, message: dict[str, object]) -> None:
    # The window message carries the hard deadline of the run.
    deadline = message.get("deadline")
    if isinstance(deadline, (int, float)):
        lifeline.deadline = float(deadline)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``CONFIG.json``."""
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(serve_until_stopped(ServerConfig.read(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
