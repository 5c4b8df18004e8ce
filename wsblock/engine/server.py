"""The server process's entry point: one cell's server, of the kind the cell names.

Started by the runner as ``python -m wsblock.engine.server CONFIG.json`` (or
ahead of its cell, waiting for the config: :mod:`wsblock.engine.ahead`). It
reads the config and runs the asyncio server
(:mod:`wsblock.engine.asyncio_server`) or the threaded one
(:mod:`wsblock.engine.threaded_server`); both are shells around the same
serving core (:mod:`wsblock.engine.serving`). The server binds, sets up the
cell's work, prints a ``ready`` event with its port, serves until stdin
closes, writes its measurements to the stats file named in the config, as
JSON, and exits.
"""

from __future__ import annotations

import sys

from wsblock.engine import asyncio_server
from wsblock.engine.proc import awaited_argv
from wsblock.engine.process_config import ServerConfig


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
        # Imported only for its cells: the asyncio server is the default.
        from wsblock.engine import threaded_server

        return threaded_server.run(config)
    return asyncio_server.run(config)


if __name__ == "__main__":
    raise SystemExit(main())
