"""A report query with pandas against SQLite: a user's own blocking function.

``report`` is what a websockets handler of a dashboard might call: read the
sales of the last N orders from a database with ``pandas.read_sql_query``
and total them by region. SQLite does its part of the work with the GIL
released; building the DataFrame from the rows holds it. Whether a thread,
a process or cutting the read into chunks keeps the server's connections
alive depends on that mix, which only a measurement shows:

    cd examples
    wsblock run --workload sqlite_report:report --strategy inline
    wsblock run --workload sqlite_report:report --strategy thread
    wsblock run --workload sqlite_report:report --strategy process
    wsblock run --workload sqlite_report:report_chunks --strategy chunked

``report`` takes no ``units``, so it runs once per job, as it is: it is not
calibrated, and its own duration is measured and reported. ``report_chunks``
is a generator: each ``yield`` (one chunk of rows read and totalled) is a
step of the ``chunked`` strategy. Both take ``rows`` as a keyword argument
(``--param rows=400000``).

The database is created on first use next to this file
(``sqlite_report.db``, about 30 MB for the default million rows), with
reproducible data; nothing here needs a network or a server of its own.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

DATABASE = Path(__file__).resolve().with_name("sqlite_report.db")
"""Where the example database lives."""

TABLE_ROWS = 1_000_000
"""Rows of the ``sales`` table."""

QUERY = ("SELECT region, product, amount, quantity FROM sales "
         "ORDER BY id DESC LIMIT ?")


def build_database(path: Path = DATABASE, rows: int = TABLE_ROWS) -> Path:
    """Create the sales database once; reuse it afterwards.

    It is written under a temporary name and renamed when complete, so
    processes that start at the same time never read half a database.
    """
    if path.exists():
        return path
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "id": np.arange(rows),
        "region": rng.choice([f"region_{i:02d}" for i in range(24)], rows),
        "product": rng.choice([f"product_{i:03d}" for i in range(300)], rows),
        "amount": rng.random(rows).round(2) * 100,
        "quantity": rng.integers(1, 20, rows),
    })
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with sqlite3.connect(partial) as connection:
            frame.to_sql("sales", connection, index=False)
            connection.execute("CREATE INDEX sales_id ON sales (id)")
        connection.close()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def report(rows: int = 200_000) -> pd.DataFrame:
    """Total the last ``rows`` sales by region: one blocking call.

    Args:
        rows: How many of the latest sales to read.

    Returns:
        Amount and quantity per region.
    """
    connection = sqlite3.connect(build_database())
    try:
        sales = pd.read_sql_query(QUERY, connection, params=(rows,))
    finally:
        connection.close()
    return sales.groupby("region")[["amount", "quantity"]].sum()


def report_chunks(rows: int = 200_000, chunksize: int = 20_000) -> Iterator[None]:
    """The same report, read ``chunksize`` rows at a time: a step per chunk.

    Args:
        rows: How many of the latest sales to read.
        chunksize: Rows per chunk (per step of the ``chunked`` strategy).

    Yields:
        ``None`` after each chunk has been read and totalled.
    """
    connection = sqlite3.connect(build_database())
    try:
        partials = []
        for chunk in pd.read_sql_query(QUERY, connection, params=(rows,), chunksize=chunksize):
            partials.append(chunk.groupby("region")[["amount", "quantity"]].sum())
            yield
    finally:
        connection.close()
    pd.concat(partials).groupby(level=0).sum()


if __name__ == "__main__":
    import time

    build_database()
    started = time.perf_counter()
    print(report().head(3))
    print(f"report(): {(time.perf_counter() - started) * 1000:.0f} ms")
