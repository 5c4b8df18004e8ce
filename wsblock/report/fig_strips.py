"""Figures: one metric by strategy, every repeat a point.

Used for the loop delay (:func:`loop_spec`), jobs/s, echo/s and observer
echo p99. In every panel (workload x work size) each strategy is a group of
columns, one per keepalive setting. A column shows each repeat of the cell
as a dot, the median over repeats as a bar across the dots, and the distribution-free
interval of the median (:func:`wsblock.analysis.intervals.median_interval`)
as a vertical line. A cell whose repeats vary too much or disagree on
losses (:meth:`wsblock.analysis.aggregate.CellRepeats.instability`) carries
a ``!`` beside it. A value of 0 on a log axis is drawn as a triangle on the
axis floor, never dropped. A cell that carries warnings (its records'
``warnings``) is drawn with hollow dots and a ``⚠`` above its column; a
repeat whose value is only a lower bound (e.g. echo latency of a repeat that
lost connections, :data:`wsblock.analysis.aggregate.BOUNDED_BY`) is an
upward triangle instead of a dot: the true value is at least that high; a
repeat whose value is the watchdog's longest stall (:attr:`StripSpec.watchdog`)
is a square.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from wsblock.analysis import aggregate as spread
from wsblock.analysis import cells as cellmod
from wsblock.analysis import intervals as iv
from wsblock.analysis import tidy
from wsblock.report import markdown as md
from wsblock.report import plotting
from wsblock.report.labels import keepalive_labels, keepalive_title
from wsblock.report.provenance import Provenance

UNSTABLE_MARK = "!"
UNSTABLE_COLOUR = "#b71c1c"
WARNING_MARK = "⚠"
WARNING_COLOUR = "#e65100"


@dataclass
class StripSpec:
    """What a strip figure shows.

    Attributes:
        stem: File name without extension.
        column: Tidy-table column to plot (one value per repeat).
        title: Figure title (first line).
        ylabel: Y axis label, with its unit.
        log: Logarithmic y axis (for latencies spanning decades).
        switch_interval_ms: Draw the GIL switch interval as a reference line.
        timeout_lines: Draw each ping_timeout (in ms) as a reference line.
        ceiling: Work size (ms) -> the best possible value, drawn as a
            reference line (e.g. jobs/s if no job ever waited).
        ceiling_label: Legend text of that line.
        withheld: Columns read, in order, for a repeat whose ``column`` is
            withheld (a percentile under too few samples); such a value is
            drawn as a diamond. E.g. the probe's maximum, then the longest
            stall when the probe never woke inside the window.
        resolution: Mark the values a repeat can take when the metric moves
            in steps of one event per window (jobs/s of records that count
            whole jobs: 0, 0.25, 0.5 ... in a 4 s window).
        watchdog: A column whose value, when the plotted value equals it,
            says the value is the watchdog's (the longest stall); such a
            repeat is drawn as a square.
        timeout_label: What a dashed ``ping_timeout`` line means, for the legend.
    """

    stem: str
    column: str
    title: str
    ylabel: str
    log: bool = False
    switch_interval_ms: float | None = None
    timeout_lines: bool = False
    ceiling: Callable[[float], float] | None = None
    ceiling_label: str = ""
    withheld: tuple[str, ...] = ()
    resolution: bool = False
    unit: str = ""
    watchdog: str | None = None
    timeout_label: str = ""


def loop_spec(switch_interval_ms: float | None = None, *, per_repeat: bool = True) -> StripSpec:
    """The primary loop figure of a report and of the asv report.

    It draws ``loop_delay_ms`` (:mod:`wsblock.schema.loopdelay`): the
    watchdog's longest stall wherever the loop stalled, the probe's p99
    where it never did, against each ``ping_timeout``
    (the time a pong may wait: a loop blocked longer can lose connections).
    A repeat whose figure is withheld (thin probe, no stall) shows the
    probe's maximum as a diamond.

    Args:
        switch_interval_ms: The GIL switch interval to draw, if one for all cells.
        per_repeat: The rows are repeats, so a repeat whose figure is its
            longest stall is drawn as a square; false for rows that are
            medians over repeats (asv), whose source is no one instrument.
    """
    return StripSpec("loop_delay", "loop_delay_ms",
                     "Server event-loop delay (longest stall, or lag p99 if none)",
                     "loop delay (ms, log scale)", log=True, switch_interval_ms=switch_interval_ms,
                     timeout_lines=True, withheld=("lag_max_ms",),
                     watchdog="stall_max_ms" if per_repeat else None,
                     timeout_label="keepalive budget")


@dataclass
class Column:
    """One cell of a panel: its repeats and their summary."""

    state: str  # "ok", "failed", "empty" (measured, nothing recorded) or "absent"
    values: list[float]
    estimate: iv.Estimate | None = None
    unstable: bool = False
    warned: bool = False
    bounds: list[bool] | None = None
    stand_ins: list[bool] | None = None
    watched: list[bool] | None = None


Mark = tuple[float, bool, bool, bool]
"""``(value, is a lower bound, is a stand-in, is the watchdog's)`` of one repeat."""


def repeats_by_cell(df: pd.DataFrame, column: str) -> dict[str, list[float]]:
    """Per aggregated cell (``cell``), the finite values of ``column`` of its measured repeats."""
    return {key: [v for v, *_ in found] for key, found in _repeats(df, column).items()}


def drawn_values(df: pd.DataFrame, spec: StripSpec) -> dict[str, list[float]]:
    """Per aggregated cell (``cell``), the value :func:`draw` plots for each measured repeat.

    Stand-ins for withheld values included, in repeat order: what a reader
    of the figure sees.
    """
    return {key: [v for v, *_ in found] for key, found in _repeats(df, spec.column, spec.withheld).items()}


def _finite(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _repeats(df: pd.DataFrame, column: str, withheld: tuple[str, ...] = (),
             watchdog: str | None = None) -> dict[str, list[Mark]]:
    """Per cell, a :data:`Mark` of each measured repeat with a value.

    A repeat whose ``column`` is missing takes the first finite column of
    ``withheld`` as a stand-in.
    """
    label = spread.BOUNDED_BY.get(column)
    out: dict[str, list[Mark]] = {}
    for cell, row in zip(tidy.cell_ids(df), df.to_dict("records")):
        values = out.setdefault(cell, [])
        if row.get("status") != "ok" or column not in row:
            continue
        value, stand_in = _finite(row[column]), False
        for other in withheld:
            if not math.isnan(value):
                break
            value, stand_in = _finite(row.get(other)), True
        if not math.isnan(value):
            watched = watchdog is not None and not stand_in and _finite(row.get(watchdog)) == value
            values.append((value, label is not None and spread.any_flag([row.get(label)]), stand_in, watched))
    return out


def _column(here: pd.DataFrame, setting: cellmod.Keepalive, strategy: str,
            repeats: Mapping[str, list[Mark]]) -> Column:
    found = cellmod.lookup_keepalive(here, setting, strategy=strategy)
    if found.empty:
        return Column("absent", [])
    row = found.iloc[0]
    warned = isinstance(row.get("warnings"), str) and bool(row.get("warnings"))
    if row["status"] != "ok":
        return Column("failed", [])
    found = repeats.get(row["cell"], [])
    values = [v for v, *_ in found]
    if not values:
        return Column("empty", [], warned=warned)
    return Column("ok", values, iv.median_interval(values), bool(row.get("unstable", False)), warned,
                  [m[1] for m in found], [m[2] for m in found], [m[3] for m in found])


def _limits(values: list[float], spec: StripSpec, timeouts: list[float],
            ceiling: float | None = None) -> tuple[float, float]:
    """Y limits: shared by all panels on a log axis, per panel on a linear one."""
    if spec.log:
        positive = [v for v in values if v > 0]
        refs = [spec.switch_interval_ms] if spec.switch_interval_ms else []
        if spec.timeout_lines:
            refs += [1000 * t for t in timeouts]
        points = [*positive, *refs] or [1.0]
        low = 10 ** math.floor(math.log10(min(points)) - 0.3)
        high = 10 ** math.ceil(math.log10(max(points)) + 0.3)
        return low, high
    top = max(values, default=0.0)
    if ceiling is not None:
        top = max(top, ceiling)
    return 0.0, (top * 1.15 if top > 0 else 1.0)


def draw(df: pd.DataFrame, cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path,
         spec: StripSpec, subtitle: str, *, footer: Provenance | str | None = None) -> list[Path]:
    """Draw one strip figure (one file per page of workloads: :func:`wsblock.report.plotting.pages`).

    Args:
        df: The tidy table (one row per repeat).
        cells: Its aggregated cells (:func:`wsblock.analysis.cells.aggregate`).
        skipped: Skipped cells from the manifest (their strategies still get
            a slot, so panels line up).
        out_dir: Output directory.
        spec: What to draw.
        subtitle: What one cell measured, one line (printed with the footer).
        footer: The provenance footer (see :mod:`wsblock.report.provenance`).

    Returns:
        The written files, page by page.
    """
    repeats = _repeats(df, spec.column, spec.withheld, spec.watchdog)
    everything = [v for vs in repeats.values() for v, *_ in vs]
    pairs = cellmod.keepalives(cells, skipped)
    timeouts = sorted({k.ping_timeout for k in pairs if k.ping_timeout is not None})
    # One log scale for every page, so pages compare at a glance.
    limits = _limits(everything, spec, timeouts)
    steps: dict[str, float] = {}
    if spec.resolution:
        floor = spread.resolution(spec.column).floor
        measured = {cell: repeats.measured for cell, repeats in spread.group(df).items()}
        steps = {key: step for key, rows in measured.items()
                 if rows and (step := spread.step(spec.column, rows)) > floor}
    grids = plotting.pages(plotting.Grid.of(cells))
    out: list[Path] = []
    for index, grid in enumerate(grids):
        out += _page(grid, cells, skipped, out_dir, spec, subtitle, footer, repeats, limits, steps,
                     plotting.page_stem(spec.stem, index), plotting.page_title(spec.title, grid, len(grids)))
    return out


def _page(grid: plotting.Grid, cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path,
          spec: StripSpec, subtitle: str, footer: Provenance | str | None,
          repeats: Mapping[str, list[Mark]], limits: tuple[float, float],
          steps: Mapping[str, float], stem: str,
          heading: str) -> list[Path]:
    pairs = cellmod.keepalives(cells, skipped)
    labels = keepalive_labels(pairs)
    colours = plotting.keepalive_colours(len(pairs))
    timeouts = sorted({k.ping_timeout for k in pairs if k.ping_timeout is not None})
    line_colours = _line_colours(pairs, colours)
    low, high = limits
    width = 0.8 / max(1, len(pairs))
    most = len(plotting.strategies_of(cells, skipped))
    panel_w = max(plotting.PANEL_W, 0.22 * most * max(1, len(pairs)) + 1.0)
    fig, axes = grid.figure(panel_w, plotting.PANEL_H, extra_h=0.8, extra_w=3.4)
    drawn: set[str] = set()
    for r, name in enumerate(grid.variants):
        for c, size in enumerate(grid.sizes):
            ax = axes[r][c]
            ax.set_title(plotting.panel_title(name, size))
            here = plotting.panel_cells(cells, name, size)
            if here.empty:
                plotting.empty_panel(ax, "not run at this size")
                continue
            workload = str(here["workload"].iloc[0])
            strategies = plotting.strategies_of(cells, skipped, workload)
            columns = [[_column(here, setting, s, repeats) for setting in pairs] for s in strategies]
            if not spec.log:
                panel_values = [v for row in columns for col in row for v in col.values]
                low, high = _limits(panel_values, spec, timeouts,
                                    spec.ceiling(size) if spec.ceiling is not None else None)
            for i, strategy in enumerate(strategies):
                for j in range(len(pairs)):
                    x = i - 0.4 + width * (j + 0.5)
                    drawn |= _draw_column(ax, x, width, columns[i][j], colours[j], low, high, spec.log)
                if all(col.state == "absent" for col in columns[i]) and any(
                        k.matches(workload=workload, work_ms=size, strategy=strategy) for k in skipped):
                    y = math.sqrt(low * high) if spec.log else high / 2
                    ax.text(i, y, "skipped", ha="center", va="center", color="#616161", rotation=90)
            if spec.switch_interval_ms:
                ax.axhline(spec.switch_interval_ms, color="black", linestyle=":", linewidth=1.0)
            if spec.ceiling is not None:
                ax.axhline(spec.ceiling(size), color="#616161", linestyle="-.", linewidth=1.0)
            if spec.timeout_lines:
                for timeout, colour in line_colours.items():
                    ax.axhline(1000 * timeout, color=colour, linestyle="--", linewidth=1.0)
            step = max((steps.get(key, 0.0) for key in here["cell"]), default=0.0)
            if step > 0 and not spec.log and high / step <= 40:
                # Few possible values: mark each one, so a reader sees the resolution.
                values = np.arange(0.0, high + step / 2, step)
                if len(values) <= 12:
                    ax.set_yticks(values, [f"{v:.3g}" for v in values])
                else:
                    ax.set_yticks(values, minor=True)
                    ax.tick_params(axis="y", which="minor", length=4, width=1.2, color="#616161")
                    ax.grid(axis="y", which="minor", color="#f0f0f0", linewidth=0.5)
                drawn.add(f"step:{step:g}")
            x = np.arange(len(strategies))
            ax.set_xticks(x, strategies)
            ax.set_xlim(-0.55, len(strategies) - 0.45)
            for edge in x[1:]:
                ax.axvline(edge - 0.5, color="#eeeeee", linewidth=0.8, zorder=0)
            if spec.log:
                ax.set_yscale("log")
            ax.set_ylim(low, high)
            ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
            ax.set_axisbelow(True)
    fig.supylabel(spec.ylabel)
    _legend(fig, spec, pairs, labels, colours, line_colours, drawn)
    plotting.title(fig, heading, subtitle)
    return plotting.save(fig, out_dir, stem, footer)


def _draw_column(ax: Any, x: float, width: float, col: Column, colour: Any, low: float, high: float,
                 log: bool) -> set[str]:
    """Draw one column; return what kinds of mark it used (for the legend)."""
    drawn: set[str] = set()
    marker_y = low * 1.25 if log else high * 0.03
    if col.state == "failed":
        ax.plot([x], [marker_y], linestyle="none", marker="x", color="#424242", markersize=5)
        return {"failed"}
    if col.state == "empty":
        ax.plot([x], [marker_y], linestyle="none", marker="o", markerfacecolor="none", color="#424242",
                markersize=5)
        if col.warned:
            _warning(ax, x, marker_y, log)
        return {"empty", "warned"} if col.warned else {"empty"}
    if col.state != "ok" or col.estimate is None:
        return drawn
    e = col.estimate
    # Dots spread across the column in repeat order, so equal values stay visible.
    n = len(col.values)
    spread_x = width * 0.5
    xs = np.array([x] if n == 1 else list(np.linspace(x - spread_x / 2, x + spread_x / 2, n)))
    ys = np.array(col.values, dtype=float)
    bounds = np.array(col.bounds if col.bounds is not None else [False] * n, dtype=bool)
    stand_ins = np.array(col.stand_ins if col.stand_ins is not None else [False] * n, dtype=bool)
    watched = np.array(col.watched if col.watched is not None else [False] * n, dtype=bool)
    # Hollow marks for a cell with warnings; an upward triangle for a lower bound.
    face = "white" if col.warned else colour
    edge = 0.9 if col.warned else 0
    floor = ys <= low if log else np.zeros(n, dtype=bool)
    if floor.any():
        drawn.add("floor")
        ax.plot(xs[floor], np.full(floor.sum(), low), linestyle="none", marker="v",
                color=colour, markersize=4.5, clip_on=False, zorder=3)
    kinds = ((False, False, "o", 3.2, 3), (True, False, "^", 5.5, 5), (False, True, "D", 4.2, 5),
             (True, True, "D", 4.2, 5))
    for bound, stand_in, marker, size, order in kinds:
        sel = ~floor & (bounds == bound) & (stand_ins == stand_in)
        if not bound and not stand_in:
            # The watchdog's longest stall: a square, so a reader sees which instrument a value is from.
            square = sel & watched
            if square.any():
                drawn.add("watched")
                ax.plot(xs[square], ys[square], linestyle="none", marker="s", markersize=3.6, color=colour,
                        markerfacecolor=face, markeredgecolor=colour, markeredgewidth=edge,
                        alpha=0.9 if col.warned else 0.75, zorder=order, clip_on=log)
            sel = sel & ~watched
        if sel.any():
            drawn.add("bound" if bound and not stand_in else "stand_in" if stand_in else "dot")
            ax.plot(xs[sel], ys[sel], linestyle="none", marker=marker, markersize=size, color=colour,
                    markerfacecolor=face, markeredgecolor=colour, markeredgewidth=edge,
                    alpha=0.9 if col.warned else 0.75, zorder=order, clip_on=log)
    if col.warned:
        drawn.add("warned")
        _warning(ax, x, float(max(ys.max(), e.high if e.n >= 2 else ys.max())), log)
    half = width * 0.4
    if e.n >= 2:
        drawn.add("interval")
        lo, hi = (max(e.low, low), max(e.high, low)) if log else (e.low, e.high)
        ax.add_patch(Rectangle((x - half, lo), 2 * half, hi - lo, facecolor=colour, alpha=0.22,
                               edgecolor="none", zorder=1))
    med = max(e.median, low) if log else e.median
    ax.plot([x - half, x + half], [med, med], color="black", linewidth=1.6, zorder=4, solid_capstyle="butt")
    if col.unstable:
        drawn.add("unstable")
        ax.text(x + half, med, " " + UNSTABLE_MARK, ha="left", va="center", fontsize=8.5, fontweight="bold",
                color=UNSTABLE_COLOUR, zorder=5)
    return drawn


def _warning(ax: Any, x: float, y: float, log: bool) -> None:
    """``⚠`` just above a column whose cell carries warnings."""
    ax.annotate(WARNING_MARK, (x, y), xytext=(0, 5), textcoords="offset points", ha="center", va="bottom",
                fontsize=7.5, color=WARNING_COLOUR, zorder=5, annotation_clip=False)


def _line_colours(pairs: list[cellmod.Keepalive], colours: list[Any]) -> dict[float, Any]:
    timeouts = [k.ping_timeout for k in pairs]
    if len(set(timeouts)) == len(timeouts):
        return {t: c for t, c in zip(timeouts, colours) if t is not None}
    return {t: "#616161" for t in sorted({t for t in timeouts if t is not None})}


def _legend(fig: Any, spec: StripSpec, pairs: list[cellmod.Keepalive], labels: list[str],
            colours: list[Any], line_colours: dict[float, Any], drawn: set[str]) -> None:
    """The legend, right of the panels: only the marks the figure uses."""
    handles: list[Any] = []
    texts: list[str] = []
    title = keepalive_title(pairs)
    prefix = title.split(" (", 1)[0] + " "
    matched = spec.timeout_lines and all(c != "#616161" for c in line_colours.values())
    for j, (label, setting) in enumerate(zip(labels, pairs)):
        dot = Line2D([], [], color=colours[j], marker="o", markersize=4, linestyle="none")
        if matched and setting.ping_timeout is not None:
            line = Line2D([], [], color=colours[j], linestyle="--")
            handles.append((dot, line))
            what = f"{spec.timeout_label} " if spec.timeout_label else ""
            texts.append(f"{prefix}{label}\n(dashed: {what}{1000 * setting.ping_timeout:g} ms)")
        else:
            handles.append(dot)
            texts.append(f"{prefix}{label}")
    if spec.timeout_lines and line_colours and not matched:
        handles.append(Line2D([], [], color="#616161", linestyle="--"))
        what = f"{spec.timeout_label}: " if spec.timeout_label else ""
        texts.append(f"dashed: {what}each ping_timeout\n(" + ", ".join(f"{1000 * t:g}" for t in line_colours)
                     + " ms)")
    if "dot" in drawn:
        handles.append(Line2D([], [], color="#9e9e9e", marker="o", markersize=3.5, linestyle="none"))
        texts.append("one repeat" + (": probe p99 (no stall)" if spec.watchdog else ""))
    if "watched" in drawn:
        handles.append(Line2D([], [], color="#9e9e9e", marker="s", markersize=3.5, linestyle="none"))
        texts.append("one repeat: its longest stall\n(watchdog)")
    if drawn & {"dot", "bound", "stand_in", "floor", "watched"}:
        handles.append(Line2D([], [], color="black", linewidth=1.6))
        texts.append("median over repeats")
    if "interval" in drawn:
        handles.append(Patch(facecolor="#9e9e9e", alpha=0.35, edgecolor="none"))
        texts.append("interval of the median")
    if "floor" in drawn:
        handles.append(Line2D([], [], color="#9e9e9e", marker="v", linestyle="none"))
        texts.append("a repeat at 0 or below the axis")
    if spec.switch_interval_ms:
        handles.append(Line2D([], [], color="black", linestyle=":"))
        texts.append(f"GIL switch interval {spec.switch_interval_ms:g} ms")
    if spec.ceiling is not None:
        handles.append(Line2D([], [], color="#616161", linestyle="-."))
        texts.append(spec.ceiling_label)
    steps = sorted(float(k.split(":", 1)[1]) for k in drawn if k.startswith("step:"))
    if steps:
        handles.append(Line2D([], [], color="#616161", marker="_", markersize=8, linestyle="none"))
        texts.append(f"axis ticks: the values a repeat can take\n(one job per window = {md.number(steps[0], 2)}"
                     + (f" to {md.number(steps[-1], 2)}" if steps[-1] != steps[0] else "") + f" {spec.unit})")
    if "unstable" in drawn:
        handles.append(Line2D([], [], color=UNSTABLE_COLOUR, marker="$!$", linestyle="none"))
        texts.append("unstable: repeats vary > 25 %\nor disagree on losses")
    if "warned" in drawn:
        handles.append(Line2D([], [], color=WARNING_COLOUR, marker="o", markerfacecolor="white", linestyle="none"))
        texts.append(f"hollow, {WARNING_MARK}: cell has warnings")
    if "bound" in drawn:
        handles.append(Line2D([], [], color="#9e9e9e", marker="^", linestyle="none"))
        texts.append("triangle: a lower bound (true value ≥)")
    if "stand_in" in drawn:
        handles.append(Line2D([], [], color="#9e9e9e", marker="D", markersize=4, linestyle="none"))
        texts.append("diamond: withheld (too few probe\nsamples, no stall); probe max")
    if "failed" in drawn:
        handles.append(Line2D([], [], color="#424242", marker="x", linestyle="none"))
        texts.append("cell failed (no measurement)")
    if "empty" in drawn:
        handles.append(Line2D([], [], color="#424242", marker="o", markerfacecolor="none", linestyle="none"))
        texts.append("measured, but nothing recorded")
    fig.legend(handles, texts, loc="outside right center", ncol=1,
               handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)}, frameon=False)


__all__ = ["StripSpec", "draw", "drawn_values", "loop_spec", "repeats_by_cell"]
