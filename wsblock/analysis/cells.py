"""From the tidy table to cells: one row per parameter combination.

A cell may have been measured more than once (repeats). Figures and tables
show the median over the repeats that produced a measurement; survival is
stricter: a cell survived only if *every* repeat kept every connection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

import workloads
from wsblock.analysis import aggregate as spread
from wsblock.analysis import tidy
from wsblock.engine import strategies as strategy_catalogue
from wsblock.schema import axes, metrics
from wsblock.schema.axes import is_none
from wsblock.schema.keepalive import Keepalive, timeout_sort_key

KEEPALIVE_KEY = axes.KEEPALIVE
BASE_KEY = axes.NAMES

SUMMARISED = (*metrics.COLUMNS, "machine_cpus")

INTERVAL_METRICS = tuple(m.column for m in metrics.METRICS
                         if m.aggregate == "median" and m.column != spread.LOSS)
"""Metrics whose median gets an interval in the aggregated cells."""

INTERVAL_COLUMNS = (
    *(f"{m}_{suffix}" for m in INTERVAL_METRICS for suffix in spread.SUFFIXES),
    *spread.EXTREME_COLUMNS, "repeats_stalled",
    "lost_k", "lost_n", "lost_share", "lost_low", "lost_high", "loss_repeats", "repeats_lost_any",
    *spread.LABELS, "unstable", "unstable_reasons",
)
"""Columns :func:`aggregate` adds from :mod:`wsblock.analysis.aggregate`."""
"""Columns summarised over repeats, each as its metric declares (the
machine's size: the median)."""


def _rank(order: list[str], name: Any) -> tuple[int, str]:
    return (order.index(name), "") if name in order else (len(order), str(name))


def workload_key(name: Any) -> tuple[int, str]:
    """Sort workloads in catalogue order, unknown ones after, by name."""
    return _rank(workloads.names(), name)


def strategy_key(name: Any) -> tuple[int, str]:
    """Sort strategies in catalogue order: from "blocks the loop" to "leaves the process"."""
    return _rank(strategy_catalogue.names(), name)


SHOWN_AXES = ("workload", "work_ms", "strategy", *KEEPALIVE_KEY)
"""Axes that figures and tables show in their own right (panels, columns, series)."""


def varied_axes(df: pd.DataFrame) -> list[str]:
    """The other axes (switch interval, event loop, ...) that take several values in a run."""
    return [a for a in BASE_KEY if a not in SHOWN_AXES and a in df.columns
            and df[a].astype(str).nunique(dropna=False) > 1]


def variant(row: Mapping[str, Any], params: Iterable[str], axes_varied: Iterable[str] = ()) -> str:
    """A workload with its parameters, e.g. ``pandas (chunksize=10000)``.

    Cells of different workload parameters are different experiments, so
    figures and tables keep them apart under this label; so are cells that
    differ in an axis the figures do not otherwise show (``axes_varied``,
    e.g. ``pure_python (switch_interval_ms=20)``).
    """
    name = str(row.get("workload"))
    prefix = f"{name}_"
    parts = [f"{c[len(prefix):]}={_param_text(row[c])}" for c in params
             if c.startswith(prefix) and not is_none(row.get(c))]
    parts += [f"{a}={'unset' if is_none(row.get(a)) else _param_text(row.get(a))}" for a in axes_varied]
    return f"{name} ({', '.join(parts)})" if parts else name


def _param_text(value: Any) -> str:
    # Numbers as the built-in workloads' parameters print; text and
    # true/false (keyword arguments of a user's function) as they are.
    if isinstance(value, (str, bool)):
        return str(value).lower() if isinstance(value, bool) else value
    return f"{float(value):g}"


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Collapse repeats: one row per cell, in a stable order.

    Args:
        df: A tidy table (:func:`wsblock.analysis.tidy.frame`).

    Returns:
        Key columns (:func:`wsblock.analysis.tidy.key_columns`); ``variant`` (see
        :func:`variant`); ``cell`` (:func:`wsblock.analysis.tidy.cell_ids`); ``repeats``, ``ok_repeats``, ``failed_repeats``;
        ``status`` (``ok`` if any repeat measured, else ``failed``);
        ``error`` (the first failed repeat's); every metric summarised
        over the ``ok`` repeats as it declares (:data:`SUMMARISED`); ``survived``
        (every ``ok`` repeat had ``disconnect_share == 0``; None when
        nothing was measured) and ``repeats_disagree`` (some repeats lost
        connections and others did not); and :data:`INTERVAL_COLUMNS`: for
        each metric summarised by its median, the interval and repeats
        behind it (``<metric>_low``, ``_high``, ``_conf``, ``_n``), the
        pooled loss (``lost_k`` of ``lost_n``, Wilson interval ``lost_low``
        .. ``lost_high``, ``repeats_lost_any``) and ``unstable`` with
        ``unstable_reasons`` (:func:`wsblock.analysis.aggregate.summarise`),
        and the cell's qualifiers over its repeats: ``verdict``, ``warnings``
        (codes, comma-joined), ``echo_lower_bound``, ``job_ms_lower_bound``,
        ``stalls_primary`` (:func:`wsblock.analysis.aggregate.labels`).
    """
    keys = tidy.key_columns(df)
    out_columns = [*keys, "variant", "cell", "repeats", "ok_repeats", "failed_repeats", "status", "error",
                   *SUMMARISED, "survived", "repeats_disagree", *INTERVAL_COLUMNS]
    if df.empty:
        return pd.DataFrame(columns=out_columns)
    work = df.copy()
    work["cell"] = tidy.cell_ids(work)
    shown_apart = varied_axes(work)
    rows = []
    for ident, group in work.groupby("cell", sort=False):
        first = group.iloc[0]
        ok = group[group["status"] == "ok"]
        failed = group[group["status"] != "ok"]
        row: dict[str, Any] = {c: first[c] for c in keys}
        row["cell"] = ident
        row["variant"] = variant(first, keys, shown_apart)
        row.update({
            "repeats": len(group), "ok_repeats": len(ok), "failed_repeats": len(failed),
            "status": "ok" if len(ok) else "failed",
            "error": None if failed.empty else failed["error"].iloc[0],
        })
        for metric in metrics.METRICS:
            row[metric.column] = metric.summarise(ok[metric.column]) if metric.column in ok else math.nan
        # The machine's size is known even when the measurement failed.
        cpus = pd.to_numeric(group["machine_cpus"], errors="coerce").dropna() if "machine_cpus" in group else []
        row["machine_cpus"] = float(np.median(cpus)) if len(cpus) else math.nan
        shares = pd.to_numeric(ok["disconnect_share"], errors="coerce").dropna()
        row["survived"] = bool((shares == 0).all()) if len(shares) else None
        row["repeats_disagree"] = bool(len(shares) > 1 and (shares == 0).any() and (shares > 0).any())
        # Intervals, pooled losses and stability (wsblock.analysis.aggregate).
        repeats = spread.CellRepeats(ident, tuple(group.to_dict("records")))
        summary = spread.summarise(repeats, INTERVAL_METRICS)
        row.update({c: summary[c] for c in INTERVAL_COLUMNS})
        rows.append(row)
    out = pd.DataFrame(rows)
    settings = [Keepalive.of(row) for row in out.to_dict("records")]
    for column in KEEPALIVE_KEY:
        out[column] = pd.Series([getattr(k, column) for k in settings], index=out.index, dtype=object)
    order = sorted(
        range(len(out)),
        key=lambda i: (workload_key(out.at[i, "workload"]),
                       tuple(timeout_sort_key(out.at[i, c]) for c in keys[len(BASE_KEY):]),
                       float(out.at[i, "work_ms"]),
                       strategy_key(out.at[i, "strategy"]), settings[i].sort_key(), out.at[i, "cell"]),
    )
    return out.iloc[order].reset_index(drop=True)[out_columns]


@dataclass(frozen=True)
class Skip:
    """A cell the matrix did not run, from the manifest.

    Missing parameters match any value (a skip reason often concerns a whole
    workload x strategy pair).
    """

    params: Mapping[str, Any]
    reason: str

    def matches(self, **axes: Any) -> bool:
        """Whether this skip covers the cell with these axis values."""
        for name, value in axes.items():
            if name not in self.params:
                continue
            wanted = self.params[name]
            if is_none(wanted) or is_none(value):
                if not (is_none(wanted) and is_none(value)):
                    return False
            elif isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
                if float(value) != float(wanted):
                    return False
            elif value != wanted:
                return False
        return True


def skips(manifest: Mapping[str, Any] | None) -> list[Skip]:
    """The manifest's skipped cells (an empty list without a manifest)."""
    out = []
    for entry in (manifest or {}).get("skipped") or []:
        if isinstance(entry, Mapping):
            out.append(Skip(dict(entry.get("params") or {}), str(entry.get("reason", ""))))
    return out


def keepalives(cells: pd.DataFrame, skipped: Iterable[Skip] = ()) -> list[Keepalive]:
    """Every keepalive setting of a run, sorted (see :meth:`Keepalive.sort_key`)."""
    found = {Keepalive.of(row) for row in cells.to_dict("records")}
    for skip in skipped:
        if "ping_timeout" in skip.params and "ping_interval" in skip.params:
            found.add(Keepalive.of(skip.params))
    return sorted(found, key=Keepalive.sort_key)


def lookup_keepalive(cells: pd.DataFrame, setting: Keepalive, **axes: Any) -> pd.DataFrame:
    """The cells with this keepalive setting (and the other axis values)."""
    mask = pd.Series([Keepalive.of(row) == setting for row in cells.to_dict("records")],
                     index=cells.index, dtype=bool)
    return lookup(cells[mask], **axes)


def ordered(values: Iterable[Any], key: Any = None) -> list[Any]:
    """Distinct values, sorted with ``key``."""
    return sorted(set(values), key=key)


def lookup(cells: pd.DataFrame, **axes: Any) -> pd.DataFrame:
    """The cells matching axis values (``None`` matches a "none" setting)."""
    mask = pd.Series(True, index=cells.index)
    for name, value in axes.items():
        column = cells[name]
        if is_none(value):
            mask &= column.map(is_none)
        elif isinstance(value, (int, float)):
            mask &= column.map(lambda v, x=float(value): not is_none(v) and float(v) == x)
        else:
            mask &= column == value
    return cells[mask]


OK, FAILED, SKIPPED, NOT_RUN = "ok", "failed", "skipped", "not run"
"""The states of a cell in a report: measured, failed, an unsupported pair, absent."""


def state(cells: pd.DataFrame, skipped: Iterable[Skip], *, workload: str, size: float, strategy: str,
          keepalive: Keepalive) -> tuple[str, pd.Series | None]:
    """The state of one cell of a run, and its aggregated row when it has one.

    Args:
        cells: Aggregated cells (of one panel, or the whole run).
        skipped: Skipped cells from the manifest.
        workload: Workload name (for the skip entries).
        size: Work size in ms.
        strategy: Strategy name.
        keepalive: Keepalive setting.

    Returns:
        ``(OK or FAILED, row)`` for a cell with a row, else ``(SKIPPED,
        None)`` or ``(NOT_RUN, None)``.
    """
    found = lookup_keepalive(cells, keepalive, strategy=strategy)
    if not found.empty:
        row = found.iloc[0]
        return (OK if row["status"] == "ok" else FAILED), row
    for skip in skipped:
        if skip.matches(workload=workload, work_ms=size, strategy=strategy, **keepalive.axes()):
            return SKIPPED, None
    return NOT_RUN, None
