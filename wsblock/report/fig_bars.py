"""Figures: one metric by strategy, grouped by keepalive setting.

Used for loop lag p99, jobs/s, echo/s and observer echo p99: in every panel
(workload x work size) each strategy is a group of bars, one bar per
keepalive setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from wsblock.report import cells as cellmod
from wsblock.report import plotting


@dataclass
class BarSpec:
    """What a bar figure shows.

    Attributes:
        stem: File name without extension.
        column: Aggregated-cell column to plot.
        title: Figure title (first line).
        ylabel: Y axis label, with its unit.
        log: Logarithmic y axis (for latencies spanning decades).
        switch_interval_ms: Draw the GIL switch interval as a reference line.
        timeout_lines: Draw each ping_timeout (in ms) as a reference line.
        ceiling: Work size (ms) -> the best possible value, drawn as a
            reference line (e.g. jobs/s if no job ever waited).
        ceiling_label: Legend text of that line.
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


def _values(here: pd.DataFrame, strategies: list[str], pairs: list[cellmod.Keepalive],
            column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, measured, failed)`` per strategy x keepalive.

    ``values`` is NaN where there is no value; ``measured`` is False where
    the cell was never attempted (skipped or not run); ``failed`` is True
    where every repeat failed.
    """
    values = np.full((len(strategies), len(pairs)), np.nan)
    measured = np.zeros((len(strategies), len(pairs)), dtype=bool)
    failed = np.zeros((len(strategies), len(pairs)), dtype=bool)
    for i, strategy in enumerate(strategies):
        for j, setting in enumerate(pairs):
            found, row = cellmod.state(here, (), workload="", size=math.nan, strategy=strategy,
                                       keepalive=setting)
            if row is None:
                continue
            measured[i, j] = True
            failed[i, j] = found == cellmod.FAILED
            value = row[column]
            if found == cellmod.OK and not cellmod.is_none(value):
                values[i, j] = float(value)
    return values, measured, failed


def _limits(cells: pd.DataFrame, spec: BarSpec, pairs: list[cellmod.Keepalive],
            size: float | None = None) -> tuple[float, float]:
    """Y limits: shared by all panels on a log axis, per panel on a linear one
    (a 2.5 s job's 0.4 jobs/s would vanish next to a 50 ms job's 40)."""
    data = pd.to_numeric(cells[spec.column], errors="coerce").dropna()
    if spec.log:
        data = data[data > 0]
        refs = [spec.switch_interval_ms] if spec.switch_interval_ms else []
        if spec.timeout_lines:
            refs += [1000 * t for t in _timeouts(pairs)]
        points = [*data.tolist(), *refs] or [1.0]
        low = 10 ** math.floor(math.log10(min(points)) - 0.3)
        high = 10 ** math.ceil(math.log10(max(points)) + 0.3)
        return low, high
    top = float(data.max()) if len(data) else 0.0
    if spec.ceiling is not None and size is not None:
        top = max(top, spec.ceiling(size))
    return 0.0, (top * 1.15 if top > 0 else 1.0)


def draw(cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path, spec: BarSpec,
         subtitle: str) -> list[Path]:
    """Draw one grouped-bar figure.

    Args:
        cells: Aggregated cells.
        skipped: Skipped cells from the manifest (their strategies still get
            a slot, so panels line up).
        out_dir: Output directory.
        spec: What to draw.
        subtitle: What one cell measured, one line.

    Returns:
        The written files.
    """
    grid = plotting.Grid.of(cells)
    pairs = cellmod.keepalives(cells, skipped)
    labels = cellmod.keepalive_labels(pairs)
    colours = plotting.keepalive_colours(len(pairs))
    # Timeout lines take their setting's colour when each setting has its own
    # timeout; when settings share timeouts (keepalive variants), grey.
    line_colours = _line_colours(pairs, colours)
    low, high = _limits(cells, spec, pairs)
    width = 0.8 / max(1, len(pairs))
    # Room for every bar: about 0.18 in per bar plus the axis furniture.
    most = len(plotting.strategies_of(cells, skipped))
    panel_w = max(plotting.PANEL_W, 0.18 * most * max(1, len(pairs)) + 1.0)
    fig, axes = grid.figure(panel_w, plotting.PANEL_H, extra_h=1.6)
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
            values, measured, failed = _values(here, strategies, pairs, spec.column)
            if not spec.log:
                low, high = _limits(here, spec, pairs, size)
            x = np.arange(len(strategies))
            for j in range(len(pairs)):
                offsets = x - 0.4 + width * (j + 0.5)
                heights = values[:, j]
                ok = ~np.isnan(heights)
                if spec.log:
                    # Bars on a log axis need a finite base: the axis floor.
                    ax.bar(offsets[ok], heights[ok] - low, width * 0.95, bottom=low, color=colours[j])
                else:
                    ax.bar(offsets[ok], heights[ok], width * 0.95, color=colours[j])
                y = low * 1.6 if spec.log else high * 0.03
                zero = ok & (np.nan_to_num(heights) == 0)
                if zero.any() and not spec.log:
                    # A measured zero must not look like a missing bar.
                    ax.plot(offsets[zero], np.zeros(zero.sum()), linestyle="none", marker="_",
                            markersize=9, markeredgewidth=2.5, color=colours[j], clip_on=False)
                for gap, marker in ((failed[:, j], "x"), (measured[:, j] & ~failed[:, j] & ~ok, "o")):
                    if gap.any():
                        ax.plot(offsets[gap], np.full(gap.sum(), y), linestyle="none", marker=marker,
                                markerfacecolor="none", color="#424242", markersize=5)
            for i, strategy in enumerate(strategies):
                if not measured[i].any() and any(
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
            ax.set_xticks(x, strategies)
            ax.set_xlim(-0.55, len(strategies) - 0.45)
            if spec.log:
                ax.set_yscale("log")
            ax.set_ylim(low, high)
            ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
            ax.set_axisbelow(True)
    fig.supylabel(spec.ylabel)
    _legend(fig, spec, pairs, labels, colours, line_colours)
    plotting.title(fig, spec.title, subtitle)
    return plotting.save(fig, out_dir, spec.stem)


def _timeouts(pairs: list[cellmod.Keepalive]) -> list[float]:
    return sorted({k.ping_timeout for k in pairs if k.ping_timeout is not None})


def _line_colours(pairs: list[cellmod.Keepalive], colours: list[Any]) -> dict[float, Any]:
    timeouts = [k.ping_timeout for k in pairs]
    if len(set(timeouts)) == len(timeouts):
        return {t: c for t, c in zip(timeouts, colours) if t is not None}
    return {t: "#616161" for t in _timeouts(pairs)}


def _legend(fig: Any, spec: BarSpec, pairs: list[cellmod.Keepalive], labels: list[str],
            colours: list[Any], line_colours: dict[float, Any]) -> None:
    handles: list[Any] = []
    texts: list[str] = []
    title = cellmod.keepalive_title(pairs)
    prefix = title.split(" (", 1)[0] + " "
    matched = spec.timeout_lines and all(c != "#616161" for c in line_colours.values())
    for j, (label, setting) in enumerate(zip(labels, pairs)):
        patch = Patch(color=colours[j])
        if matched and setting.ping_timeout is not None:
            line = Line2D([], [], color=colours[j], linestyle="--")
            handles.append((patch, line))
            texts.append(f"{prefix}{label} (dashed: {1000 * setting.ping_timeout:g} ms)")
        else:
            handles.append(patch)
            texts.append(f"{prefix}{label}")
    if spec.timeout_lines and line_colours and not matched:
        handles.append(Line2D([], [], color="#616161", linestyle="--"))
        texts.append("dashed: each ping_timeout (" + ", ".join(f"{1000 * t:g}" for t in line_colours) + " ms)")
    if spec.switch_interval_ms:
        handles.append(Line2D([], [], color="black", linestyle=":"))
        texts.append(f"GIL switch interval {spec.switch_interval_ms:g} ms")
    if spec.ceiling is not None:
        handles.append(Line2D([], [], color="#616161", linestyle="-."))
        texts.append(spec.ceiling_label)
    if not spec.log:
        handles.append(Line2D([], [], color="#616161", marker="_", markersize=9, markeredgewidth=2.5,
                              linestyle="none"))
        texts.append("measured zero (bar in its keepalive colour)")
    handles.append(Line2D([], [], color="#424242", marker="x", linestyle="none"))
    texts.append("cell failed (no measurement)")
    handles.append(Line2D([], [], color="#424242", marker="o", markerfacecolor="none", linestyle="none"))
    texts.append("measured, but nothing recorded")
    # Two legend columns need about 7 inches; a one-panel figure gets one.
    ncol = 2 if fig.get_size_inches()[0] >= 7 else 1
    fig.legend(handles, texts, loc="outside lower center", ncol=min(ncol, len(handles)),
               handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)}, frameon=False)
