"""Real blocking calls whose right strategy follows from how they use the GIL.

Each function is what a websockets handler might call: one blocking call of
a kind that a server meets, sized by a keyword argument so that one call
takes from tens to hundreds of milliseconds. They take no ``units``, so each
job is one call as it is, timed (``docs/extending.md``), and they return
what such a call returns, so that under ``process`` the result travels back
to the server as it would in a real one. How each uses the GIL decides which
strategy keeps the server's connections and its loop free, and
``docs/advise-catalogue.md`` lists the answer and what was measured:

* :func:`json_parse`: ``json.loads`` of a large document: one C call that
  holds the GIL from start to end. A thread cannot help (the loop waits for
  the GIL as long as the call lasts); only a process keeps the loop free.
* :func:`sha256` and :func:`compress`: ``hashlib`` and ``zlib`` release the
  GIL while they work on a large buffer: a thread keeps the loop free.
* :func:`matmul`: NumPy's matrix product releases the GIL: a thread.
* :func:`blocking_read`: a blocking socket read that waits for a peer
  slower than its timeout: the GIL is released while it waits: a thread.
* :func:`python_loop`: a pure-Python loop holds the GIL but must hand it
  over every switch interval (5 ms): a thread keeps connections, yet the loop
  waits behind it; a process keeps the loop free.
* :func:`large_result`: builds and returns a large list of dicts. Under
  ``process`` the server unpickles it, holding the GIL, so its loop waits
  for every result, however free the worker leaves it.
* ``slow_import:lookup`` (a module of its own) is slow to import: the
  server imports it before the window, so the import is the harness's
  set-up, never charged to a strategy.

Run one from this directory::

    cd examples
    wsblock run --workload gil_catalogue:json_parse --strategy process --ping-interval 1 --ping-timeout 1
"""

from __future__ import annotations

import hashlib
import json
import socket
import zlib
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def _document(mb: int) -> str:
    # A JSON array of order records, about ``mb`` MB, made once per process
    # (the server's set-up call makes it before the window).
    record = {"id": 0, "customer": "customer-000000", "region": "region-07", "amount": 1234.56,
              "items": [{"sku": "sku-00001", "qty": 3, "price": 9.99}, {"sku": "sku-00002", "qty": 1, "price": 24.5}],
              "paid": True, "note": None}
    one = len(json.dumps(record)) + 2
    rows = max(1, mb * 1_000_000 // one)
    return json.dumps([{**record, "id": i, "customer": f"customer-{i:06d}"} for i in range(rows)])


def json_parse(mb: int = 21) -> float:
    """Parse a JSON document of about ``mb`` MB and total its amounts (GIL held for the whole parse)."""
    orders = json.loads(_document(mb))
    return sum(order["amount"] for order in orders)


@lru_cache(maxsize=4)
def _buffer(mb: int) -> bytes:
    # Incompressible enough to make zlib work, reproducible, made once per process.
    return np.random.default_rng(mb).integers(0, 64, mb * 1_000_000, dtype=np.uint8).tobytes()


def sha256(mb: int = 64) -> str:
    """The SHA-256 of a ``mb`` MB buffer (``hashlib`` releases the GIL for large buffers)."""
    return hashlib.sha256(_buffer(mb)).hexdigest()


def compress(mb: int = 16) -> int:
    """``zlib.compress`` of a ``mb`` MB buffer; the compressed size (zlib releases the GIL)."""
    return len(zlib.compress(_buffer(mb), 6))


def matmul(n: int = 700) -> float:
    """The trace of the product of two ``n`` x ``n`` matrices (NumPy releases the GIL in BLAS)."""
    rng = np.random.default_rng(n)
    a = rng.random((n, n))
    b = rng.random((n, n))
    return float(np.trace(a @ b))


def blocking_read(ms: int = 300) -> int:
    """A blocking socket read from a peer that sends nothing for ``ms`` ms (the GIL is released while it waits).

    Returns the bytes read: 0, the read timed out, as a call to a slow
    service does.
    """
    ours, peer = socket.socketpair()
    try:
        ours.settimeout(ms / 1000.0)
        try:
            return len(ours.recv(1))
        except TimeoutError:
            return 0
    finally:
        ours.close()
        peer.close()


def python_loop(n: int = 3_000_000) -> int:
    """A pure-Python loop of ``n`` steps (holds the GIL, handing it over every switch interval)."""
    total = 0
    for i in range(n):
        total += i % 7
    return total


def large_result(rows: int = 300_000) -> list[dict[str, object]]:
    """Build and return ``rows`` small dicts: a large object for the caller to receive."""
    return [{"id": i, "name": f"row-{i}", "value": i * 0.5} for i in range(rows)]
