"""``pandas.read_csv`` in chunks plus a groupby: the case from field reports.

Rows are read with ``chunksize`` (a parameter) and each chunk is aggregated by
key, then the partial results are combined. The input is one generated file of
``FILE_ROWS`` rows, read again from the top for larger jobs. Each chunk is one step, so the
``chunked`` strategy yields to the event loop between chunks and the other
strategies do not. The C parser releases the GIL for part of the work.
"""

from __future__ import annotations

import os
from typing import Iterator, Mapping

from workloads.base import Job, ParamSpec, Workload

FILE_ROWS = 1 << 20
"""Rows in the generated file (about 30 MB); larger jobs read it again."""


def _data_path(data_dir: str) -> str:
    return os.path.join(data_dir, f"pandas-v1-{FILE_ROWS}.csv")


def _generate(path: str, rows: int) -> None:
    import numpy as np
    import pandas as pd

    from wsblock.paths import partial_name

    rng = np.random.default_rng(2024)
    cities = np.array([f"city_{i:02d}" for i in range(40)])
    frame = pd.DataFrame(
        {
            "key": rng.integers(0, 1000, rows),
            "city": cities[rng.integers(0, len(cities), rows)],
            "value": rng.random(rows).round(6),
            "count": rng.integers(0, 100, rows),
        }
    )
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # A named partial file, renamed when complete: readers never see half a
    # file, and one left by a killed run is recognised and removed by the
    # next run (wsblock.paths.clean_stale).
    tmp = partial_name(path)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class PandasCsv(Workload):
    name = "pandas"
    order = 40
    description = "read_csv(chunksize=N) plus groupby-sum per chunk; partly releases the GIL"
    gil = "partly released (C tokenizer), held for groupby bookkeeping"
    unit = "CSV rows read and aggregated"
    max_units = 50_000_000
    calibration_start = 20_000
    params = (
        ParamSpec("chunksize", 10_000, 100, 10_000_000, "rows per read_csv chunk"),
    )

    def prepare(self, units: int, params: Mapping[str, int], data_dir: str) -> None:
        path = _data_path(data_dir)
        if not os.path.exists(path):
            _generate(path, FILE_ROWS)

    def steps(self, job: Job) -> Iterator[None]:
        import pandas as pd

        path = _data_path(job.data_dir)
        partials = []
        remaining = job.units
        # Jobs larger than the file read it again from the top, so the disk
        # cost stays fixed however large the work.
        while remaining > 0:
            rows = min(remaining, FILE_ROWS)
            with pd.read_csv(path, chunksize=job.params["chunksize"], nrows=rows) as reader:
                for chunk in reader:
                    partials.append(chunk.groupby("key")["value"].agg(["sum", "count"]))
                    yield
            remaining -= rows
            # Keep only the combined result between passes (bounded memory).
            partials = [pd.concat(partials).groupby(level=0).sum()]
        pd.concat(partials).groupby(level=0).sum()


WORKLOAD = PandasCsv()
