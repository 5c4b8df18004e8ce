"""The tidy table: one flat row per record, one column per measurement.

Records are nested JSON (``docs/record.md``); analysis wants one row per cell
and repeat with flat snake_case columns. This module reads a run directory,
flattens every record and writes ``DIR/cells.csv``. It never re-runs work.

A run directory is either what ``wsblock matrix`` writes (records under
``DIR/cells/*.json`` plus ``DIR/manifest.json``) or a directory of standalone
records from ``wsblock run --out`` (``DIR/*.json``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from wsblock import atomic
from wsblock.errors import UsageError
from wsblock.schema.record import validate

MANIFEST = "manifest.json"
CSV_NAME = "cells.csv"

NAN = float("nan")

# Columns in the order they appear in the table. Two families are inserted at
# run time because their members depend on the data: ``<workload>_<param>``
# after ``start_method`` and ``disconnects_<code>`` after
# ``first_disconnect_s``.
ID_COLUMNS = (
    "cell_id", "repeat", "status", "error", "workload", "work_ms", "strategy",
    "ping_interval", "ping_timeout", "keepalive_budget_s", "client_pings", "handler_ping_timeout", "duration",
    "job_connections", "observers", "workers", "chunk_ms", "start_method",
)
WORK_COLUMNS = ("units", "unit")
DISCONNECT_COLUMNS = ("disconnects_total", "disconnect_share", "first_disconnect_s")
INITIATOR_COLUMNS = ("disconnects_by_client", "disconnects_by_server", "disconnects_by_none")
METRIC_COLUMNS = (
    "connections_opened",
    "lag_p50_ms", "lag_p90_ms", "lag_p99_ms", "lag_p999_ms", "lag_max_ms", "lag_samples",
    "ticker_lag_p99_ms", "ticker_lag_max_ms", "ticker_late_ticks",
    "stalls_count", "stall_max_ms", "stall_total_ms", "stalled_share", "stalls_sampled",
    "jobs_per_s", "echo_per_s", "echo_p50_ms", "echo_p99_ms", "echo_max_ms", "echo_lost",
    "job_ms_p50", "job_ms_max", "job_cpu_ms_p50", "job_latency_p50_ms", "job_latency_p99_ms",
    "server_cpu_util", "workers_cpu_util", "load_cpu_util", "machine_busy_cores",
)
META_COLUMNS = ("machine_cpus", "python_version", "websockets_version", "timestamp_utc", "file")

# Columns that may legitimately hold None ("no keepalive"; for the handler,
# "not set"), kept as Python objects so None is not confused with NaN.
NONE_COLUMNS = ("ping_interval", "ping_timeout", "handler_ping_timeout")


@dataclass
class Loaded:
    """What :func:`load_records` found in a run directory.

    Attributes:
        records: ``(path, record)`` for every readable, valid record, sorted
            by path.
        errors: ``(path, message)`` for every file that could not be used.
        manifest: The run's ``manifest.json``, or ``None`` if there is none
            (or it is unreadable; then it is listed in ``errors``).
    """

    records: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def record_files(directory: Path) -> list[Path]:
    """List the record files of a run directory.

    Args:
        directory: A run directory.

    Returns:
        ``DIR/cells/*.json`` if ``DIR/cells`` exists, else ``DIR/*.json``
        without the manifest; sorted so every tool sees the same order.
    """
    cells = directory / "cells"
    if cells.is_dir():
        return sorted(cells.glob("*.json"))
    return sorted(p for p in directory.glob("*.json") if p.name != MANIFEST)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def load_records(directory: str | Path) -> Loaded:
    """Read every record (and the manifest) of a run directory.

    A corrupt file does not stop the others: it goes to ``errors`` with a
    short reason, so a report can still render what is there.

    Args:
        directory: The run directory.

    Returns:
        The records, the files that could not be used, and the manifest.

    Raises:
        UsageError: If ``directory`` does not exist or is not a directory.
    """
    root = Path(directory)
    if not root.exists():
        raise UsageError(f"no such directory: {root}")
    if not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    loaded = Loaded()
    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = _read_json(manifest_path)
            if not isinstance(manifest, dict):
                raise ValueError("a manifest must be a JSON object")
            loaded.manifest = manifest
        except (OSError, ValueError) as exc:
            loaded.errors.append((manifest_path, str(exc)))
    for path in record_files(root):
        try:
            record = _read_json(path)
            validate(record)
        except (OSError, ValueError) as exc:
            loaded.errors.append((path, str(exc)))
            continue
        loaded.records.append((path, record))
    return loaded


def _get(data: Mapping[str, Any] | None, *keys: str) -> Any:
    """Walk nested mappings; ``None`` when any step is missing."""
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _num(value: Any) -> float:
    """A measurement as a float; NaN for null (nothing was recorded)."""
    if value is None or isinstance(value, bool):
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def derived_cell_id(params: Mapping[str, Any]) -> str:
    """An id for a record that came without one (``wsblock run --out``).

    Args:
        params: The record's ``params``.

    Returns:
        E.g. ``pure_python-200ms-inline-pi0.5-pt0.5`` (workload parameters
        appended as ``-<key><value>``), the form ``wsblock matrix`` uses
        without its ``-r<repeat>`` suffix.
    """
    parts = [
        str(params.get("workload")), f"{_label(params.get('work_ms'))}ms", str(params.get("strategy")),
        f"pi{_label(params.get('ping_interval'))}", f"pt{_label(params.get('ping_timeout'))}",
    ]
    for key, value in sorted((params.get("workload_params") or {}).items()):
        parts.append(f"{key}{_label(value)}")
    return "-".join(parts)


def _metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    d = record.get("disconnects", {})
    lag = record.get("loop_lag_ms", {})
    stalls = record.get("stalls", {})
    tp = record.get("throughput", {})
    echo = record.get("echo_latency_ms", {})
    res = record.get("resources", {})
    row: dict[str, Any] = {
        "units": _num(_get(record, "work", "units")),
        "unit": _get(record, "work", "unit"),
        "disconnects_total": _num(d.get("total")),
        "disconnect_share": _num(d.get("share")),
        "first_disconnect_s": _num(d.get("first_s")),
    }
    for code, count in (d.get("by_code") or {}).items():
        row[f"disconnects_{code}"] = _num(count)
    by_initiator = d.get("by_initiator") or {}
    for side in ("client", "server", "none"):
        row[f"disconnects_by_{side}"] = _num(by_initiator.get(side, 0))
    row.update({
        "connections_opened": _num(_get(record, "connections", "opened_total")),
        "lag_p50_ms": _num(lag.get("p50")),
        "lag_p90_ms": _num(lag.get("p90")),
        "lag_p99_ms": _num(lag.get("p99")),
        "lag_p999_ms": _num(lag.get("p999")),
        "lag_max_ms": _num(lag.get("max")),
        "lag_samples": _num(lag.get("samples")),
        # Records before the 100 ms ticker have no ticker_lag_ms: NaN.
        "ticker_lag_p99_ms": _num(_get(record, "ticker_lag_ms", "p99")),
        "ticker_lag_max_ms": _num(_get(record, "ticker_lag_ms", "max")),
        "ticker_late_ticks": _num(_get(record, "ticker_lag_ms", "late_ticks")),
        "stalls_count": _num(stalls.get("count")),
        "stall_max_ms": _num(stalls.get("max_ms")),
        "stall_total_ms": _num(stalls.get("total_ms")),
        "stalls_sampled": _num(stalls.get("sampled")),
        "stalled_share": _num(stalls.get("stalled_share")),
        "jobs_per_s": _num(tp.get("jobs_per_s")),
        "echo_per_s": _num(tp.get("echo_per_s")),
        "echo_p50_ms": _num(echo.get("p50")),
        "echo_p99_ms": _num(echo.get("p99")),
        "echo_max_ms": _num(echo.get("max")),
        "echo_lost": _num(echo.get("lost")),
        "job_ms_p50": _num(_get(record, "job_ms", "p50")),
        "job_ms_max": _num(_get(record, "job_ms", "max")),
        "job_cpu_ms_p50": _num(_get(record, "job_cpu_ms", "p50")),
        "job_latency_p50_ms": _num(_get(record, "job_latency_ms", "p50")),
        "job_latency_p99_ms": _num(_get(record, "job_latency_ms", "p99")),
        "server_cpu_util": _num(_get(res, "server", "cpu_util")),
        "workers_cpu_util": _num(_get(res, "server", "workers_cpu_util")),
        "load_cpu_util": _num(res.get("load_cpu_util")),
        "machine_busy_cores": _num(_get(res, "machine", "busy_cores")),
    })
    return row


def flatten(record: Mapping[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Flatten one record into a row of the tidy table.

    Args:
        record: A record that passed :func:`wsblock.schema.record.validate`.
        path: The file it came from; its name goes to the ``file`` column.

    Returns:
        A flat mapping. ``ping_interval``/``ping_timeout`` keep ``None`` for
        "no keepalive"; metrics of a failed record (and percentiles that
        recorded nothing) are NaN. ``<workload>_<param>`` and
        ``disconnects_<code>`` columns appear only for what the record has.
    """
    params = record.get("params", {})
    meta = record.get("meta") or {}
    matrix = record.get("matrix") or {}
    status = record.get("status", "ok")
    interval, timeout = params.get("ping_interval"), params.get("ping_timeout")
    budget = None if interval is None or timeout is None else float(interval) + float(timeout)
    handler = params.get("handler_ping_timeout")
    row: dict[str, Any] = {
        "cell_id": matrix.get("cell_id") or derived_cell_id(params),
        "repeat": int(matrix.get("repeat", 0)),
        "status": status,
        "error": record.get("error"),
        "workload": params.get("workload"),
        "work_ms": _num(params.get("work_ms")),
        "strategy": params.get("strategy"),
        "ping_interval": None if interval is None else float(interval),
        "ping_timeout": None if timeout is None else float(timeout),
        "keepalive_budget_s": budget,
        # Absent in records older than these options: their defaults then.
        "client_pings": bool(params.get("client_pings", True)),
        "handler_ping_timeout": handler if handler is None or isinstance(handler, str) else float(handler),
        "duration": _num(params.get("duration")),
        "job_connections": _num(params.get("job_connections")),
        "observers": _num(params.get("observers")),
        "workers": _num(params.get("workers")),
        "chunk_ms": _num(params.get("chunk_ms")),
        # Only a process pool has a start method; elsewhere the setting is inert.
        "start_method": params.get("start_method") if params.get("strategy") == "process" else None,
    }
    for key, value in sorted((params.get("workload_params") or {}).items()):
        row[f"{params.get('workload')}_{key}"] = _num(value)
    if status == "ok":
        row.update(_metrics(record))
    else:
        row.update({name: NAN for name in (*DISCONNECT_COLUMNS, *INITIATOR_COLUMNS, *METRIC_COLUMNS)})
        row.update({"units": NAN, "unit": None})
    row.update({
        "machine_cpus": _num(_get(record, "resources", "machine", "cpus") or _get(meta, "cpu", "count")),
        "python_version": _get(meta, "python", "version"),
        "websockets_version": _get(meta, "packages", "websockets"),
        "timestamp_utc": meta.get("timestamp_utc"),
        "file": Path(path).name if path is not None else None,
    })
    return row


def _code_sort_key(column: str) -> tuple[int, str]:
    code = column.removeprefix("disconnects_")
    return (int(code), "") if code.isdigit() else (10**9, code)


def columns_for(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The stable column order for a set of flattened rows."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row)
    fixed = {*ID_COLUMNS, *WORK_COLUMNS, *DISCONNECT_COLUMNS, *INITIATOR_COLUMNS,
             *METRIC_COLUMNS, *META_COLUMNS}
    codes = sorted((c for c in seen - fixed if c.startswith("disconnects_")), key=_code_sort_key)
    params = sorted(c for c in seen - fixed - set(codes))
    return [*ID_COLUMNS, *params, *WORK_COLUMNS, *DISCONNECT_COLUMNS, *codes,
            *INITIATOR_COLUMNS, *METRIC_COLUMNS, *META_COLUMNS]


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
        missing = "unset" if column == "handler_ping_timeout" else "none"
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
    loaded = load_records(root)
    target = root / CSV_NAME
    atomic.write_text(target, to_csv_text(frame(loaded.records)))
    return target
