"""The tidy table: one flat row per record, one column per measurement.

Records are nested JSON (``docs/record.md``); analysis wants one row per cell
and repeat with flat snake_case columns. This module reads a run directory,
flattens every record and writes ``DIR/cells.csv``. It never re-runs work.

A run directory is either what ``wsblock matrix`` writes (records under
``DIR/cells/*.json`` plus ``DIR/manifest.json``) or a directory of standalone
records from ``wsblock run --out`` (``DIR/*.json``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from wsblock import atomic
from wsblock.engine import strategies
from wsblock.schema import axes, metrics, record, rundir
from wsblock.schema.rundir import CSV_NAME

NAN = float("nan")

# Cell settings that are columns (the rest, such as host and port, do not
# change the experiment).
SETTING_COLUMNS = ("duration", "job_connections", "observers", "workers", "chunk_ms", "start_method")

# Columns in the order they appear in the table. Two families are inserted at
# run time because their members depend on the data: ``<workload>_<param>``
# after the ID columns and ``disconnects_<code>`` after
# ``first_disconnect_s``. Axes come from :mod:`wsblock.schema.axes`, metrics
# from :mod:`wsblock.schema.metrics`.
_AXIS_COLUMNS = tuple(c for a in axes.AXES
                      for c in ((a.name, "keepalive_budget_s") if a.name == "ping_timeout" else (a.name,)))
ID_COLUMNS = ("cell_id", "repeat", "status", "error", *_AXIS_COLUMNS, *SETTING_COLUMNS)
WORK_COLUMNS = ("units", "unit")
METRIC_COLUMNS = metrics.COLUMNS
LABEL_COLUMNS = metrics.LABEL_COLUMNS
META_COLUMNS = ("machine_cpus", "python_version", "websockets_version", "timestamp_utc", "file")
FIXED_COLUMNS = frozenset({*ID_COLUMNS, *WORK_COLUMNS, *METRIC_COLUMNS, *LABEL_COLUMNS, *META_COLUMNS})
"""Every column whose name does not depend on the data."""

# Columns that may legitimately hold None ("no keepalive"; for the handler,
# "not set"), kept as Python objects so None is not confused with NaN.
NONE_COLUMNS = tuple(a.name for a in axes.AXES if a.none_text is not None)


Loaded = rundir.Loaded
"""What :func:`load_records` finds in a run directory (:class:`wsblock.schema.rundir.Loaded`)."""


def load_records(directory: str | Path) -> Loaded:
    """Read every record (and the manifest) of a run directory.

    :func:`wsblock.schema.rundir.load`, the one reader of run directories,
    under the name the notebooks read runs by: a file that cannot be used, a damaged manifest or a record that does not
    belong to the run goes to ``errors`` with a short reason, so a report
    can still render what is there.

    Raises:
        UsageError: If ``directory`` does not exist or is not a directory.
    """
    return rundir.load(directory)


def _metrics(rec: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "units": metrics.number(record.get_path(rec, "work", "units")),
        "unit": record.get_path(rec, "work", "unit"),
    }
    row.update(metrics.read_all(rec))
    for code, count in (record.get_path(rec, "disconnects", "by_code") or {}).items():
        row[f"disconnects_{code}"] = metrics.number(count)
    return row


def flatten(rec: Mapping[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Flatten one record into a row of the tidy table.

    Args:
        rec: A record that passed :func:`wsblock.schema.record.validate`
            (of any version).
        path: The file it came from; its name goes to the ``file`` column.

    Returns:
        A flat mapping. ``ping_interval``/``ping_timeout`` keep ``None`` for
        "no keepalive"; metrics of a failed record (and percentiles that
        recorded nothing) are NaN. ``<workload>_<param>`` and
        ``disconnects_<code>`` columns appear only for what the record has.
    """
    rec = record.upgrade(rec)
    params = rec.get("params", {})
    meta = rec.get("meta") or {}
    matrix = rec.get("matrix") or {}
    status = rec.get("status", "ok")
    values = axes.normal(params)
    row: dict[str, Any] = {
        "cell_id": matrix.get("cell_id") or axes.cell_id(params),
        "repeat": int(matrix.get("repeat", 0)),
        "status": status,
        "error": rec.get("error"),
        **values,
        "keepalive_budget_s": axes.keepalive_budget(values["ping_interval"], values["ping_timeout"]),
    }
    row["work_ms"] = metrics.number(row["work_ms"])
    for column in SETTING_COLUMNS:
        row[column] = metrics.number(params.get(column)) if column != "start_method" else (
            # Only a strategy in other processes has a start method; elsewhere
            # the setting is inert.
            params.get(column) if strategies.has(params.get("strategy"), "out_of_process") else None)
    for key, value in sorted((params.get("workload_params") or {}).items()):
        # Keyword arguments of a user's function may be text or true/false:
        # kept as they are, so that different values stay different cells.
        row[f"{params.get('workload')}_{key}"] = value if isinstance(value, (str, bool)) else metrics.number(value)
    if status == "ok":
        row.update(_metrics(rec))
    else:
        row.update({name: NAN for name in METRIC_COLUMNS})
        row.update({"units": NAN, "unit": None})
    row.update(metrics.read_labels(rec))
    row.update({
        "machine_cpus": metrics.number(record.get_path(rec, "resources", "machine", "cpus")
                                       or record.get_path(meta, "cpu", "count")),
        "python_version": record.get_path(meta, "python", "version"),
        "websockets_version": record.get_path(meta, "packages", "websockets"),
        "timestamp_utc": meta.get("timestamp_utc"),
        "file": Path(path).name if path is not None else None,
    })
    return row


def param_columns(df: pd.DataFrame) -> list[str]:
    """The ``<workload>_<param>`` columns of a tidy table."""
    return [c for c in df.columns if c not in FIXED_COLUMNS and not c.startswith("disconnects_")]


def key_columns(df: pd.DataFrame) -> list[str]:
    """Columns that identify a cell: the axes plus workload parameters."""
    return [*axes.NAMES, *param_columns(df)]


def cell_ids(df: pd.DataFrame) -> list[str]:
    """The cell of every row: :func:`wsblock.schema.axes.cell_id` without settings or repeat.

    Read from the row's key columns only (:func:`key_columns`), so a column
    that merely starts with the workload's name (``python_version`` for a
    workload called ``python``) is never taken for one of its parameters.
    Two runs of different workload sets, and a matrix repeat and a
    standalone record of the same cell, get the same id.
    """
    keys = [c for c in key_columns(df) if c in df.columns]
    return [axes.cell_id(row, settings=False) for row in df[keys].to_dict("records")]


def _code_sort_key(column: str) -> tuple[int, str]:
    code = column.removeprefix("disconnects_")
    return (int(code), "") if code.isdigit() else (10**9, code)


def columns_for(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The stable column order for a set of flattened rows."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row)
    fixed = FIXED_COLUMNS
    codes = sorted((c for c in seen - fixed if c.startswith("disconnects_")), key=_code_sort_key)
    params = sorted(c for c in seen - fixed - set(codes))
    split = METRIC_COLUMNS.index(metrics.CODES_AFTER) + 1
    return [*ID_COLUMNS, *params, *WORK_COLUMNS, *METRIC_COLUMNS[:split], *codes,
            *METRIC_COLUMNS[split:], *LABEL_COLUMNS, *META_COLUMNS]


def frame(records: Iterable[tuple[Path, Mapping[str, Any]] | Mapping[str, Any]]) -> pd.DataFrame:
    """Build the tidy table.

    Args:
        records: ``(path, record)`` pairs as in :attr:`Loaded.records`, or
            bare records.

    Returns:
        One row per record, columns in a stable order (see
        :func:`columns_for`). A close code a record did not see counts 0 for
        an ``ok`` record and NaN for a failed one.
    """
    rows = []
    for item in records:
        if isinstance(item, tuple):
            path, record = item
            rows.append(flatten(record, path))
        else:
            rows.append(flatten(item))
    columns = columns_for(rows)
    df = pd.DataFrame(rows, columns=columns)
    ok = df["status"] == "ok"
    for column in columns:
        if column.startswith("disconnects_") and column[len("disconnects_"):].isdigit():
            df.loc[ok, column] = df.loc[ok, column].fillna(0.0)
    for column in NONE_COLUMNS:
        # pandas turns None into NaN in a float column; keep it as None.
        df[column] = pd.Series([row[column] for row in rows], index=df.index, dtype=object)
    df["keepalive_budget_s"] = pd.to_numeric(df["keepalive_budget_s"], errors="coerce")
    return df


def _setting_text(value: Any, missing: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return value if isinstance(value, str) else repr(float(value))


def to_csv_text(df: pd.DataFrame) -> str:
    """Render the tidy table as CSV.

    ``none`` for no keepalive (``ping_interval``/``ping_timeout``), ``unset``
    for a handler that did not assign a ping_timeout, empty for NaN.
    """
    out = df.copy()
    for column in NONE_COLUMNS:
        missing = axes.get(column).none_text
        out[column] = [_setting_text(value, missing) for value in out[column]]
    return out.to_csv(index=False, na_rep="", lineterminator="\n")


def write_csv(directory: str | Path) -> Path:
    """Write ``DIR/cells.csv`` from the records in ``DIR``, atomically.

    Args:
        directory: A run directory.

    Returns:
        The path of the CSV file. Files that could not be read are left out
        (:func:`load_records` reports them).
    """
    root = Path(directory)
    loaded = rundir.load(root)
    target = root / CSV_NAME
    atomic.write_text(target, to_csv_text(frame(loaded.records)))
    return target
