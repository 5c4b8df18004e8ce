"""Cells over their repeats: medians with intervals, losses, stability.

The tidy table (:mod:`wsblock.analysis.tidy`) has one row per repeat of a
cell. This module groups the repeats of each cell and summarises them with
the methods of :mod:`wsblock.analysis.intervals`:

* every metric: the median over the repeats that measured it, the
  distribution-free order-statistic interval of the median, its achieved
  confidence and the number of repeats behind it;
* the disconnect outcome: original connections lost out of original
  connections (:func:`lost_of`), pooled over the repeats, with a Wilson 95 % interval, plus how many
  repeats lost any connection at all (connections of one repeat share one
  event loop, so the pooled interval alone overstates what is known);
* stability, in the manner of pyperf's warnings: a cell is *unstable* when
  the coefficient of variation of a primary metric over its repeats exceeds
  :data:`CV_LIMIT` (by more than the metric's resolution), or when some
  repeats lost connections and others did not. The reasons are kept with
  the flag.

Nothing here re-runs work or reads files: the input is a tidy table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from wsblock.analysis import intervals as iv
from wsblock.analysis import tidy
from wsblock.schema import axes, metrics

CV_LIMIT = 0.25
"""A primary metric whose repeats vary more than this (std / mean) marks its cell unstable."""

PRIMARY = ("lag_p99_ms", "echo_p99_ms", "jobs_per_s")
"""Metrics whose spread over repeats decides stability."""

PER_WINDOW = ("jobs_per_s", "echo_per_s")
"""Rates of events counted in the window: their step is one event per window.

Jobs count whole only in records before version 3, which have no
``jobs_in_window`` (version 3 counts the part of a job done in the window).
"""

LOSS = "disconnect_share"
"""The disconnect outcome: a proportion, not a per-repeat value."""

ORIGINAL_COLUMNS = ("original_lost", "original_connections")
"""Original connections lost, original connections: what a loss is counted over."""

LEGACY_COLUMNS = ("disconnects_total", "connections_opened")
"""Every connection lost, every connection opened: the basis of records before version 3."""

LOSS_COLUMNS = (*ORIGINAL_COLUMNS, *LEGACY_COLUMNS)
"""The tidy columns :func:`lost_of` reads."""

SURVIVAL_VERDICTS = ("lost", "kept", "inconclusive", "not_applicable")
"""The survival verdicts of a record (``survival.verdict``)."""

LABELS = ("verdict", "warnings", "echo_lower_bound", "job_ms_lower_bound", "stalls_primary")
"""The qualifiers a cell carries over its repeats (:func:`summarise`), named as the tidy labels."""

EXTREMES = ("lag_p50_ms", "lag_p99_ms", "stall_max_ms", "stalled_share", "stalls_count", "cycles_observed",
            "work_ratio_to_target")
"""Metrics whose best and worst repeat the verdict rules read (``<metric>_min``, ``<metric>_max``).

A median hides the one repeat that held the loop for a second, or the one
whose jobs ran short; the rules of :mod:`wsblock.analysis.rules` judge the
worst repeat, and a difference between two cells on these figures counts
only where their ranges over the repeats do not overlap."""

EXTREME_COLUMNS = tuple(f"{m}_{end}" for m in EXTREMES for end in ("min", "max"))
"""Columns :func:`summarise` adds for :data:`EXTREMES`."""

BOUNDED_BY = {
    "echo_p50_ms": "echo_lower_bound", "echo_p99_ms": "echo_lower_bound", "echo_max_ms": "echo_lower_bound",
    "job_ms_p50": "job_ms_lower_bound", "job_ms_max": "job_ms_lower_bound",
}
"""Metric column -> the label that says its value is only a lower bound (the true value may be larger)."""

SUFFIXES = ("low", "high", "conf", "n")
"""Per metric, the aggregated table has ``<metric>`` (the median) and ``<metric>_<suffix>``."""


@dataclass(frozen=True)
class Resolution:
    """How finely a metric is resolved, and the smallest change worth a verdict.

    Attributes:
        floor: Values below this are equal (zeros and sub-resolution noise
            compare as the floor).
        min_ratio: Smallest ratio of medians a comparison reports as a change.
    """

    floor: float
    min_ratio: float = iv.MIN_RATIO


DEFAULT_RESOLUTION = Resolution(1e-3, iv.MIN_RATIO)


def resolution(metric: str) -> Resolution:
    """The resolution and minimum effect of a metric, as its declaration says.

    (:attr:`wsblock.schema.metrics.Metric.resolution` and
    :attr:`~wsblock.schema.metrics.Metric.min_effect`; a conservative
    default for an undeclared column.)
    """
    declared = metrics.BY_COLUMN.get(metric)
    if declared is None:
        return DEFAULT_RESOLUTION
    return Resolution(declared.resolution, declared.min_effect)


def step(metric: str, rows: Iterable[Mapping[str, Any]] = ()) -> float:
    """The smallest difference of ``metric`` a cell can show.

    Args:
        metric: A tidy metric column.
        rows: The cell's repeats (their window length, ``window_s`` or else
            ``duration``, and whether they count partial jobs).

    Returns:
        The metric's resolution; for a rate of whole events in the window
        (:data:`PER_WINDOW`) at least one event per window.
    """
    floor = resolution(metric).floor
    if metric not in PER_WINDOW:
        return floor
    rows = list(rows)
    if metric == "jobs_per_s" and any(math.isfinite(metrics.number(r.get("jobs_in_window"))) for r in rows):
        return floor  # partial jobs count: no step of one job
    lengths = []
    for r in rows:
        length = metrics.number(r.get("window_s"))
        if not math.isfinite(length):
            length = metrics.number(r.get("duration"))
        if math.isfinite(length) and length > 0:
            lengths.append(length)
    return max(floor, 1.0 / max(lengths)) if lengths else floor


def lost_of(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """Connections lost and connections at risk in one measured repeat.

    The original connections (the first connection of each load slot) and
    how many of them ended abnormally inside the window: the basis of the
    record's ``disconnects.share``. Reconnects are left out: a connection
    that replaces a lost one is not a second trial of the same slot. Records
    older than version 3 have no original counts; for them every connection
    opened in the window and every abnormal close count, as their share did.

    Returns:
        ``(k, n)``, or None when the row has neither pair of counts.
    """
    for columns in (ORIGINAL_COLUMNS, LEGACY_COLUMNS):
        k, n = (metrics.number(row.get(c)) for c in columns)
        if math.isfinite(k) and math.isfinite(n) and n > 0:
            return int(round(k)), int(round(n))
    return None


def verdict_over(verdicts: Iterable[Any]) -> str | None:
    """The survival verdict of a cell from the verdicts of its measured repeats.

    ``lost`` when any repeat lost a connection (a loss is observed whatever
    the other repeats show); ``kept`` only when every repeat kept every
    connection; ``not_applicable`` when no repeat had keepalive; otherwise
    ``inconclusive`` (including a repeat without a verdict next to others).

    Args:
        verdicts: One verdict per measured repeat (None or NaN: unknown).

    Returns:
        The cell's verdict, or None when there are no repeats.
    """
    found = [v if isinstance(v, str) and v in SURVIVAL_VERDICTS else None for v in verdicts]
    if not found:
        return None
    if "lost" in found:
        return "lost"
    if all(v == "kept" for v in found):
        return "kept"
    if all(v == "not_applicable" for v in found):
        return "not_applicable"
    return "inconclusive"


def warning_codes(values: Iterable[Any]) -> list[str]:
    """The warning codes of some repeats, each once, in first-seen order.

    Args:
        values: The tidy ``warnings`` column of the repeats (comma-joined
            codes; None or NaN: no warnings).
    """
    codes: dict[str, None] = {}
    for value in values:
        if isinstance(value, str):
            codes.update((c.strip(), None) for c in value.split(",") if c.strip())
    return list(codes)


def any_flag(values: Iterable[Any]) -> bool:
    """Whether any repeat has a label flag set (None and NaN count as unset)."""
    return any(v is True or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 1)
               or (isinstance(v, str) and v.lower() == "true") for v in values)


@dataclass(frozen=True)
class CellRepeats:
    """The repeats of one cell, as the tidy table holds them.

    Attributes:
        cell: The cell (:func:`wsblock.analysis.tidy.cell_ids`).
        rows: Every repeat's row, measured or failed, in repeat order.
    """

    cell: str
    rows: tuple[Mapping[str, Any], ...]

    @property
    def measured(self) -> list[Mapping[str, Any]]:
        """The repeats with ``status`` ``ok``."""
        return [r for r in self.rows if r.get("status") == "ok"]

    @property
    def failed(self) -> int:
        """Repeats that produced no measurement."""
        return len(self.rows) - len(self.measured)

    def values(self, metric: str) -> list[float]:
        """The finite values of ``metric`` over the measured repeats."""
        out = [metrics.number(r.get(metric)) for r in self.measured]
        return [v for v in out if math.isfinite(v)]

    def estimate(self, metric: str) -> iv.Estimate:
        """Median over repeats with its interval."""
        return iv.median_interval(self.values(metric))

    def losses(self) -> list[tuple[int, int]]:
        """``(lost, at risk)`` of each measured repeat that has both counts."""
        return [kn for kn in (lost_of(r) for r in self.measured) if kn is not None]

    def lost(self) -> iv.Proportion:
        """Connections lost, pooled over the measured repeats, with a Wilson interval."""
        pairs = self.losses()
        return iv.wilson(sum(k for k, _ in pairs), sum(n for _, n in pairs))

    def loss_shares(self) -> list[float]:
        """The share of connections lost in each measured repeat."""
        return [k / n for k, n in self.losses()]

    def repeats_lost_any(self) -> int:
        """Measured repeats that lost at least one connection."""
        return sum(1 for k, _ in self.losses() if k > 0)

    def verdict(self) -> str | None:
        """The survival verdict over the measured repeats (:func:`verdict_over`)."""
        return verdict_over(r.get("verdict") for r in self.measured)

    def warnings(self) -> list[str]:
        """The warning codes of every repeat, measured or not, each once."""
        return warning_codes(r.get("warnings") for r in self.rows)

    def flagged(self, label: str) -> bool:
        """Whether any measured repeat sets a label flag (e.g. ``echo_lower_bound``)."""
        return any_flag(r.get(label) for r in self.measured)

    def step(self, metric: str) -> float:
        """The smallest difference of ``metric`` this cell can show.

        The metric's resolution; for a rate of whole events (echoes/s, and
        jobs/s of records that count whole jobs) at least one event per
        window, since 0, 1 or 2 jobs in a 4 s window read 0, 0.25 or 0.5
        jobs/s.
        """
        return step(metric, self.measured or self.rows)

    def instability(self, primary: Iterable[str] = PRIMARY) -> list[str]:
        """Why this cell's repeats cannot be summarised with confidence (empty: stable).

        A metric is unstable when its coefficient of variation over the
        repeats exceeds :data:`CV_LIMIT` and its range exceeds one
        :meth:`step`: values are raised to the step first, and a spread of
        one step (one job more in a window) is resolution, not instability.
        Repeats that disagree on whether connections were lost are always
        unstable.

        Args:
            primary: Metrics whose spread is checked.
        """
        reasons = []
        for metric in primary:
            step = self.step(metric)
            values = [max(v, step) for v in self.values(metric)]
            cv = iv.coefficient_of_variation(values)
            if math.isfinite(cv) and cv > CV_LIMIT and max(values) - min(values) > step:
                reasons.append(f"{metric} varies {cv:.0%} over repeats")
        pairs = self.losses()
        lost_any = self.repeats_lost_any()
        if 0 < lost_any < len(pairs):
            reasons.append(f"{lost_any} of {len(pairs)} repeats lost connections")
        return reasons


def group(df: pd.DataFrame) -> dict[str, CellRepeats]:
    """The repeats of every cell of a tidy table, in first-seen order.

    Args:
        df: A tidy table (:func:`wsblock.analysis.tidy.frame`).

    Returns:
        Cell -> its repeats, sorted by ``repeat`` within a cell.
    """
    cells: dict[str, list[Mapping[str, Any]]] = {}
    for cell, row in zip(tidy.cell_ids(df), df.to_dict("records")):
        cells.setdefault(cell, []).append(row)
    return {cell: CellRepeats(cell, tuple(sorted(rows, key=lambda r: int(r.get("repeat") or 0))))
            for cell, rows in cells.items()}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The declared metrics present in the table (loss excluded: it is a proportion)."""
    return [c for c in metrics.COLUMNS if c in df.columns and c != LOSS]


def identity_columns(df: pd.DataFrame) -> list[str]:
    """Columns that describe a cell and are shared by its repeats.

    The axes, the keepalive budget, the settings and the workload
    parameters; not the per-repeat columns, the measurements or the metadata.
    """
    per_repeat = {"cell_id", "repeat", "status", "error"}
    measured = {*tidy.WORK_COLUMNS, *tidy.METRIC_COLUMNS, *tidy.LABEL_COLUMNS, *tidy.META_COLUMNS}
    return [c for c in df.columns
            if c not in per_repeat and c not in measured and not c.startswith("disconnects_")]


def summarise(cell: CellRepeats, metrics: Sequence[str], identity: Sequence[str] = (),
              primary: Iterable[str] = PRIMARY) -> dict[str, Any]:
    """One row of the aggregated table.

    Args:
        cell: The cell's repeats.
        metrics: Metric columns to summarise.
        identity: Columns copied from the cell's first repeat.
        primary: Metrics whose spread decides stability.

    Returns:
        See :func:`aggregate`.
    """
    first = cell.rows[0]
    row: dict[str, Any] = {"cell": cell.cell, **{c: first.get(c) for c in identity}}
    measured = cell.measured
    row.update({
        "repeats": len(cell.rows), "ok_repeats": len(measured), "failed_repeats": cell.failed,
        "status": "ok" if measured else "failed",
        "error": next((r.get("error") for r in cell.rows if r.get("status") != "ok"), None),
    })
    for metric in metrics:
        e = cell.estimate(metric)
        row.update({metric: e.median, f"{metric}_low": e.low, f"{metric}_high": e.high,
                    f"{metric}_conf": e.confidence, f"{metric}_n": e.n})
    for metric in EXTREMES:
        values = cell.values(metric)
        row[f"{metric}_min"] = min(values) if values else math.nan
        row[f"{metric}_max"] = max(values) if values else math.nan
    stalls = cell.values("stalls_count")
    row["repeats_stalled"] = sum(1 for v in stalls if v >= 1)
    lost = cell.lost()
    pairs = cell.losses()
    row.update({
        "lost_k": lost.k, "lost_n": lost.n, "lost_share": lost.share,
        "lost_low": lost.low, "lost_high": lost.high,
        "loss_repeats": len(pairs), "repeats_lost_any": cell.repeats_lost_any(),
    })
    row.update(labels(cell))
    reasons = cell.instability(primary) if measured else []
    row["unstable"] = bool(reasons)
    row["unstable_reasons"] = "; ".join(reasons)
    return row


def labels(cell: CellRepeats) -> dict[str, Any]:
    """The qualifiers of a cell over its repeats (:data:`LABELS`).

    ``verdict`` (:meth:`CellRepeats.verdict`); ``warnings``: the codes of
    every repeat's warnings, each once, comma-joined (``""``: none);
    ``echo_lower_bound``, ``job_ms_lower_bound``, ``stalls_primary``: true
    when any measured repeat sets them, since a median over repeats of
    which one is a lower bound is itself no more than a lower bound.
    """
    return {"verdict": cell.verdict(), "warnings": ",".join(cell.warnings()),
            **{label: cell.flagged(label) for label in LABELS[2:]}}


def aggregate(df: pd.DataFrame, metrics: Sequence[str] | None = None,
              primary: Iterable[str] = PRIMARY) -> pd.DataFrame:
    """The aggregated table: one row per cell.

    Args:
        df: A tidy table, one row per repeat.
        metrics: Metric columns to summarise (default: every metric column
            of the tidy table except the loss share, which is summarised as
            a proportion).
        primary: Metrics whose spread over repeats decides stability.

    Returns:
        Per cell, in first-seen order: ``cell``; the identity columns (axes,
        settings, workload parameters); ``repeats``, ``ok_repeats``,
        ``failed_repeats``, ``status``, ``error``; per metric the median
        (``<metric>``), interval (``<metric>_low``, ``<metric>_high``),
        achieved confidence (``<metric>_conf``) and repeats behind it
        (``<metric>_n``); the loss ``lost_k`` of ``lost_n`` connections,
        ``lost_share`` with its Wilson 95 % interval ``lost_low`` ..
        ``lost_high``, ``loss_repeats`` (repeats behind it) and
        ``repeats_lost_any``; the best and worst repeat of :data:`EXTREMES`
        (``<metric>_min``, ``<metric>_max``) and ``repeats_stalled``
        (repeats with at least one stall); the qualifiers :data:`LABELS` (:func:`labels`);
        ``unstable`` and ``unstable_reasons``.
    """
    chosen = list(metric_columns(df) if metrics is None else metrics)
    identity = identity_columns(df)
    columns = ["cell", *identity, "repeats", "ok_repeats", "failed_repeats", "status", "error"]
    for metric in chosen:
        columns += [metric, *(f"{metric}_{s}" for s in SUFFIXES)]
    columns += [*EXTREME_COLUMNS, "repeats_stalled", "lost_k", "lost_n", "lost_share", "lost_low", "lost_high",
                "loss_repeats", "repeats_lost_any", *LABELS, "unstable", "unstable_reasons"]
    primary = tuple(primary)
    rows = [summarise(cell, chosen, identity, primary) for cell in group(df).values()]
    out = pd.DataFrame(rows, columns=columns)
    for column in tidy.NONE_COLUMNS:
        if column in out:
            # Keep "none" keepalive settings as None, as the tidy table does.
            out[column] = pd.Series([r.get(column) for r in rows], index=out.index, dtype=object)
    return out


__all__ = ["BOUNDED_BY", "CV_LIMIT", "CellRepeats", "DEFAULT_RESOLUTION", "EXTREMES", "EXTREME_COLUMNS",
           "LEGACY_COLUMNS", "LOSS", "LOSS_COLUMNS",
           "LABELS", "ORIGINAL_COLUMNS", "PER_WINDOW", "PRIMARY",
           "Resolution", "SURVIVAL_VERDICTS",
           "aggregate", "any_flag", "group", "identity_columns", "labels", "lost_of", "metric_columns",
           "resolution", "step", "summarise", "verdict_over", "warning_codes"]
