"""A module that is slow to import, and a quick function in it.

Importing it builds a lookup table in pure Python (about a second on a
laptop), the way a module that loads a model, a schema or a large
configuration at import does. The function itself is quick. A server that
imported such a module on its first request would block its event loop for
the whole import while connections wait; wsblock's server imports the
cell's module before the window (its set-up), so the import is recorded as
the harness's set-up, never charged to the strategy under test::

    cd examples
    wsblock run --workload slow_import:lookup --strategy process --ping-interval 1 --ping-timeout 1 --duration 6
"""

from __future__ import annotations


def _build(n: int) -> dict[int, int]:
    # Fixed work (no clock involved): a table of n digit sums.
    table = {}
    for i in range(n):
        total, k = 0, i
        while k:
            total += k % 10
            k //= 10
        table[i] = total
    return table


TABLE_SIZE = 1_000_000
"""Entries built at import."""

TABLE = _build(TABLE_SIZE)


def lookup(key: int = 123_456) -> int:
    """Look ``key`` up in the table built at import (quick)."""
    return TABLE[key % TABLE_SIZE]
