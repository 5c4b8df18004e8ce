"""The next cell's server and load interpreters, started ahead and waiting for their configs.

A serial matrix starts the next cell's process (:mod:`wsblock.engine.cell_main`) in standby
once the previous cell's measurements are in hand; that process calls
:func:`start_ahead` first of all, before its own imports, so that the two
interpreters' start-up and imports overlap its own and the previous cell's
last steps (ending its processes, writing its record) rather than the new
cell's start-up. They wait idle, with no socket and no pool, until the
runner configures them (:func:`child`); a cell that does not use them ends
them (:func:`discard_ahead`).
"""

from __future__ import annotations

from wsblock.engine.proc import Child

SERVER_MODULE = "wsblock.engine.server"
"""The module the server process runs (``python -m``)."""

LOAD_MODULE = "wsblock.engine.load"
"""The module the load process runs."""

SERVER_PRELOAD = ("numpy", "threadpoolctl")
"""Modules every server imports once configured (to pin its BLAS threads), imported ahead."""

_ahead: dict[str, Child] = {}


def start_ahead(server_module: str = SERVER_MODULE) -> None:
    """Start the next cell's server and load interpreters now, waiting for their configs.

    For a cell whose turn has not come: each imports its modules and then
    waits on stdin; neither binds a socket, starts a pool, reads a
    calibration or sends anything until :func:`child` configures it,
    so nothing they do before then can touch a measurement. A cell that
    does not use them ends them (:func:`discard_ahead`).
    """
    discard_ahead()
    _ahead["server"] = Child.ahead("server", server_module, SERVER_PRELOAD)
    _ahead["load"] = Child.ahead("load", LOAD_MODULE)


def discard_ahead() -> None:
    """End the processes :func:`start_ahead` started that no cell took."""
    while _ahead:
        _, ahead = _ahead.popitem()
        ahead.stop(1.0)


def child(name: str, module: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start ``python -m module ARGV`` for a cell: the process started ahead for this role, if any.

    The one started ahead is used if it runs the same module and still
    waits; otherwise it is ended and a new process started.

    Args:
        name: ``server`` or ``load``.
        module: The module it runs.
        argv: Its arguments.
        env: Environment variables to add (its temporary directory).
    """
    ahead = _ahead.pop(name, None)
    if ahead is not None and ahead.waiting and ahead.argv[:2] == ["-m", module] and ahead.proc.poll() is None:
        ahead.configure(argv, env)
        return ahead
    if ahead is not None:
        ahead.stop(1.0)
    return Child(name, ["-m", module, *argv], env=env)
