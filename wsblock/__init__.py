"""wsblock: what blocking work does to a websockets (asyncio) server.

The engine runs one *cell* (workload x strategy x keepalive setting) against a
real server process while a separate load process holds connections open, and
returns one JSON record. See :func:`wsblock.engine.runner.run_cell`.
"""

__version__ = "0.1.0"
