"""The report's per-workload summary tables.

One table per workload and work size, one row per strategy. The
disconnect columns cover every keepalive setting; the responsiveness and
throughput columns come from a single reference cell per row, the one with
the longest ping_timeout of the run (``none`` if present), where lost
connections disturb the other measurements least. Every number is the
median over that cell's measured repeats.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from wsblock.analysis import aggregate as spread
from wsblock.analysis import cells as cellmod
from wsblock.report import markdown as md
from wsblock.report import plotting
from wsblock.report.labels import keepalive_labels
from wsblock.schema import metrics

METRICS = tuple((m.short, m.column, md.for_metric(m)) for m in metrics.in_table())
"""``(title, column, format)`` of the metric columns (:func:`wsblock.schema.metrics.in_table`)."""

VERDICT_TEXT = {"kept": "kept", "lost": "lost", "inconclusive": "inconclusive", "not_applicable": "n/a"}
"""How a cell's survival verdict reads in a table; a cell without one reads ``?``."""

BOUND = "≥"
"""Prefix of a value that is a lower bound (echoes or jobs cut short by lost connections or the window)."""

LOWER_BOUNDS = spread.BOUNDED_BY
"""Metric column -> the cell label that says its value is a lower bound."""

WITHHELD = {"lag_p99_ms": ("lag_max_ms", "lag_samples", "stall_max_ms")}
"""A percentile withheld under too few samples -> the maximum and sample count shown instead,
or the longest stall when the watchdog saw longer than that maximum (or the probe had no sample)."""

WARNING = "⚠"
"""Marks a row whose cells carry warnings; the codes are listed under the table."""


def reference_keepalive(pairs: list[cellmod.Keepalive]) -> cellmod.Keepalive:
    """The keepalive setting whose cells feed the metric columns.

    The longest ping_timeout; among variants of it, the default one (client
    pings on, handler timeout unset) if the run has it.
    """
    longest = [k for k in pairs if cellmod.timeout_sort_key(k.ping_timeout)
               == cellmod.timeout_sort_key(pairs[-1].ping_timeout)]
    plain = [k for k in longest if k.client_pings and k.handler_ping_timeout is None]
    return (plain or longest)[0]


def workload_table(cells: pd.DataFrame, skipped: list[cellmod.Skip], variant: str, size: float,
                   pairs: list[cellmod.Keepalive], strategies: list[str]) -> str:
    """The table of one workload variant and work size.

    Args:
        cells: Aggregated cells of the whole run.
        skipped: Skipped cells from the manifest.
        variant: Workload label.
        size: Work size in ms.
        pairs: Keepalive settings of the run, sorted.
        strategies: Strategies to list, in order.

    Returns:
        A markdown table; strategies with no cell and no skip entry for this
        workload and size are left out.
    """
    here = plotting.panel_cells(cells, variant, size)
    workload = str(here["workload"].iloc[0]) if not here.empty else variant
    labels = keepalive_labels(pairs)
    ref = reference_keepalive(pairs)
    cpus = pd.to_numeric(cells["machine_cpus"], errors="coerce").dropna()
    cpu_text = f"{cpus.max():g}" if len(cpus) else "?"
    header = ["strategy", *(f"lost @ {label}" for label in labels), "n",
              *(name for name, _, _ in METRICS), f"busy cores of {cpu_text}"]
    rows = []
    notes = []
    for strategy in strategies:
        states = [cellmod.state(here, skipped, workload=workload, size=size, strategy=strategy, keepalive=pair)
                  for pair in pairs]
        if all(state == "not run" for state, _ in states):
            continue
        lost = []
        for state, row in states:
            if state != "ok":
                lost.append(state)
            else:
                lost.append(f"{_lost(row)} {verdict_text(row)}")
        ref_state, ref_row = states[pairs.index(ref)]
        name = md.escape(strategy)
        warned = [(label, codes(row)) for label, (_, row) in zip(labels, states) if row is not None and codes(row)]
        if warned:
            name += f" {WARNING}"
            notes.append(f"{WARNING} {strategy}: "
                         + "; ".join(f"@ {label}: {', '.join(found)}" for label, found in warned))
        if ref_state == "ok":
            values = [str(int(ref_row["ok_repeats"]))]
            values += [_value(ref_row, column, fmt) for _, column, fmt in METRICS]
            values.append(md.number(ref_row["machine_busy_cores"], 2))
            if bool(ref_row.get("unstable")):
                name += " !"
        else:
            values = [ref_state] * (len(METRICS) + 2)
        rows.append([name, *lost, *values])
    text = md.table(header, rows)
    if notes:
        text += "\n" + "  \n".join(notes) + "\n"
    return text


def verdict_text(row: Mapping[str, Any]) -> str:
    """The cell's survival verdict as the table shows it (:data:`VERDICT_TEXT`)."""
    return VERDICT_TEXT.get(row.get("verdict"), "?")


def codes(row: Mapping[str, Any] | None) -> list[str]:
    """The warning codes of an aggregated cell (empty: none, or no row)."""
    value = None if row is None else row.get("warnings")
    return [c for c in value.split(",") if c] if isinstance(value, str) else []


def _flag(row: Mapping[str, Any], label: str) -> bool:
    value = row.get(label)
    return bool(value) and not cellmod.is_none(value) and value == value


def _lost(row: Mapping[str, Any]) -> str:
    """``0.33 (6/18)``: the pooled share lost and its counts; † when repeats disagree."""
    k, n = row.get("lost_k"), row.get("lost_n")
    if cellmod.is_none(n) or not n:
        text = md.share(row["disconnect_share"])
    else:
        text = f"{md.share(int(k) / int(n))} ({int(k)}/{int(n)})"
    return text + (" †" if row["repeats_disagree"] else "")


def _value(row: Mapping[str, Any], column: str, fmt: Any) -> str:
    """The median with its interval, ``146 [80.1–292]``; the bare value without one.

    A lower bound reads ``≥ 146`` (:data:`LOWER_BOUNDS`); a percentile
    withheld under too few samples reads as the maximum and the samples
    behind it, ``732 (max of 4)`` (:data:`WITHHELD`).
    """
    if column in WITHHELD and cellmod.is_none(row.get(column)):
        peak, samples, stall = WITHHELD[column]
        longest = None if cellmod.is_none(row.get(stall)) else float(row[stall])
        # A thin probe's maximum is never the value when the watchdog saw longer.
        if (not cellmod.is_none(row.get(peak)) and not cellmod.is_none(row.get(samples))
                and (longest is None or longest <= float(row[peak]))):
            return f"{fmt(row[peak])} (max of {float(row[samples]):g})"
        if longest is not None:
            return f"stall {fmt(longest)}"
    low, high, n = row.get(f"{column}_low"), row.get(f"{column}_high"), row.get(f"{column}_n")
    text = fmt(row[column])
    bound = column in LOWER_BOUNDS and _flag(row, LOWER_BOUNDS[column]) and not cellmod.is_none(row[column])
    if bound:
        text = f"{BOUND} {text}"
    if cellmod.is_none(low) or cellmod.is_none(high) or cellmod.is_none(n) or n < 2 or low == high:
        return text
    return f"{text} [{fmt(low)}–{fmt(high)}]"


def summary_tables(cells: pd.DataFrame, manifest: Mapping[str, Any] | None) -> str:
    """Every summary table of a run, with headings, in markdown.

    The output depends only on the records and the manifest's ``skipped``
    list, so it can be compared with a stored reference.

    Args:
        cells: Aggregated cells (:func:`wsblock.analysis.cells.aggregate`).
        manifest: The run's manifest, if any.

    Returns:
        Markdown: an explanation of the numbers, then one ``###`` heading per
        workload and one table per work size.
    """
    if cells.empty:
        return "No measured cells.\n"
    skipped = cellmod.skips(manifest)
    pairs = cellmod.keepalives(cells)
    labels = keepalive_labels(pairs)
    ref_label = labels[pairs.index(reference_keepalive(pairs))]
    strategies = plotting.strategies_of(cells, skipped)
    parts = [
        "`lost @ X`: share of connections lost (0..1) at keepalive setting X (ping_timeout, or "
        "ping_interval / ping_timeout), pooled over the repeats, with the original connections lost / "
        "original connections (the first connection of each load slot, not its reconnects; records before "
        "version 3: every connection open in the window); † = the repeats disagreed (some lost "
        "connections, some did not); then the survival verdict over the repeats: `kept` (every repeat "
        "kept every connection through enough keepalive cycles to show it), `lost` (some repeat lost a "
        "connection), `inconclusive` (the window could not show survival: no claim is made, whatever the "
        "share), `n/a` (no keepalive pings). "
        f"All other columns come from the cell with ping_timeout **{ref_label}** (the longest in the run): "
        "`n` = its measured repeats; "
        + "; ".join(f"`{m.short}` = {m.description}" for m in metrics.in_table())
        + "; and the machine's busy cores during the window. "
        "A value is the median over the cell's measured repeats"
        + "".join(f" (`{m.short}`: the {'largest' if m.aggregate == 'max' else 'smallest'})"
                  for m in metrics.in_table() if m.aggregate != "median")
        + " with, in brackets, the interval of the median (order statistics: the range of the repeats "
        "with 3 to 5 of them, a 95 % interval from 6; `docs/comparisons.md`); `!` after the strategy = "
        "unstable: a primary metric (loop lag p99, echo p99, jobs/s) varies more than 25 % over the "
        "repeats, or the repeats disagree on losses (the report's stability section lists why)"
        + "; `failed`, `skipped`, "
        "`not run` say why there is none; `–` = nothing was recorded (e.g. no job finished in the window). "
        f"`{BOUND}` before a value = a lower bound: some echoes were lost with their connection, unanswered "
        "at the window end or never sent while an observer reconnected (echo p99), or jobs were still "
        "running at the stop (job ms), in some repeat; the true value is at least this, so a bound never "
        "ranks a cell better. `loop delay ms` is the loop figure to read (`docs/report.md`, *The loop "
        "figure*); the probe's columns beside it can understate a blocked loop. "
        "`X (max of n)` in `lag p99 ms` = the percentile is withheld because the probe "
        "woke up only n times (a p99 needs 100 samples; n is the median over the repeats): X is the largest "
        "of those samples; `stall X` = the probe never woke up inside the window, or the watchdog saw a "
        "stall longer than the probe's largest sample: X is the longest stall of the loop (ms). "
        f"`{WARNING}` after the strategy = some cell of the row carries warnings; the codes are listed under "
        "the table per keepalive setting (`docs/record.md` explains each). "
        "Percentiles come from HDR histograms with 3 significant digits.",
        "",
    ]
    grid = plotting.Grid.of(cells)
    for name in grid.variants:
        parts.append(f"### {md.escape(name)}")
        parts.append("")
        for size in grid.sizes:
            if plotting.panel_cells(cells, name, size).empty:
                continue
            parts.append("One call of the function per job (not calibrated; `job ms p50` is its length):"
                         if math.isnan(size) else f"{size:g} ms per job (target on an idle machine):")
            parts.append("")
            parts.append(workload_table(cells, skipped, name, size, pairs, strategies))
    return "\n".join(parts).rstrip("\n") + "\n"
