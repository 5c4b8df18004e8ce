"""Figure: the survival boundary (largest job every connection outlived, per keepalive setting).

The work sizes of a run are a handful of tested values, so the boundary is
only known to lie between the largest size that kept every connection and
the next size up that lost one. The figure draws exactly that: a marker at
the largest kept size and a vertical bar up to the smallest larger size that
lost connections (the interval the boundary lies in), side by side per
strategy within each keepalive setting; no line joins settings, since
nothing was measured between them. With a single work size or a single
keepalive setting there is no boundary to draw: :func:`degenerate` says why
and the report gives the table alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from wsblock.analysis import cells as cellmod
from wsblock.analysis import survival
from wsblock.report import plotting
from wsblock.report.labels import keepalive_labels, keepalive_title

STEM = "survival_boundary"


def degenerate(cells: pd.DataFrame) -> str | None:
    """Why the run has no survival-boundary figure (None: it has one)."""
    if cells.empty:
        return "the run has no measured cell"
    sizes = sorted({float(s) for s in cells["work_ms"]})
    if len(sizes) < 2:
        return (f"the run has one work size ({sizes[0]:g} ms), so no boundary between sizes can be drawn; "
                "the table gives the verdict of each setting")
    if len(cellmod.keepalives(cells)) < 2:
        return ("the run has one keepalive setting, so the figure would repeat the table's single column; "
                "the table gives the boundary")
    if not any(b.status in ("ok", survival.NONE_SURVIVED) for b in survival.boundaries(cells)):
        return "no cell was kept or lost (every verdict is inconclusive or missing): there is no boundary to draw"
    return None


def draw(cells: pd.DataFrame, out_dir: Path, subtitle: str, footer: Any = None) -> list[Path]:
    """Draw one panel per workload: the boundary per keepalive setting and strategy.

    Args:
        cells: Aggregated cells.
        out_dir: Output directory.
        subtitle: What one cell measured, one line (printed with the footer).
        footer: The provenance footer (:mod:`wsblock.report.provenance`).

    Returns:
        The written files; none when :func:`degenerate` gives a reason.
    """
    if degenerate(cells) is not None:
        return []
    found = survival.boundaries(cells)
    pairs = cellmod.keepalives(cells)
    labels = keepalive_labels(pairs, sep="\n")
    sizes = [s for s in plotting.work_sizes(cells["work_ms"]) if not math.isnan(s)]
    levels = {size: i + 1 for i, size in enumerate(sizes)}
    variants = list(dict.fromkeys(cells["variant"]))
    strategies = plotting.strategies_of(cells)
    ncols = min(3, len(variants))
    nrows = math.ceil(len(variants) / ncols)
    width = min(plotting.SLIDE_W, max(3.6, 0.9 * len(pairs) + 1.6) * ncols + 2.8)
    height = min(plotting.SLIDE_H - plotting.FOOTER_H, 2.9 * nrows + 0.9)
    fig, axes = plotting.plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    # Strategies sit side by side within a keepalive setting: equal sizes stay at equal heights.
    slot = 0.7 / max(1, len(strategies))
    offset = {s: (i - (len(strategies) - 1) / 2) * slot for i, s in enumerate(strategies)}
    hollow_used = False
    for k, name in enumerate(variants):
        ax = axes[k // ncols][k % ncols]
        drawn = 0
        for strategy in strategies:
            colour = plotting.strategy_colour(strategy)
            marker = plotting.strategy_marker(strategy)
            for j, pair in enumerate(pairs):
                b = next((b for b in found if b.variant == name and b.strategy == strategy and b.keepalive == pair),
                         None)
                if b is None or b.status not in ("ok", survival.NONE_SURVIVED):
                    continue  # nothing measured, or nothing the window could show
                drawn += 1
                x = j + offset[strategy]
                y = levels[b.max_ms] if b.status == "ok" else 0
                top = _upper(b, levels)
                if top > y:
                    ax.plot([x, x], [y, top], color=colour, linewidth=2.2, alpha=0.45, solid_capstyle="butt")
                hollow = bool(b.unknown_above or b.undecided)
                hollow_used |= hollow
                ax.plot([x], [y], linestyle="none", marker=marker, color=colour, markersize=7,
                        markerfacecolor="white" if hollow else colour, markeredgewidth=1.4)
        if not drawn:
            ax.text(0.5, 0.75, "no size kept or lost", ha="center", va="center", color="#616161",
                    transform=ax.transAxes)
        ax.set_title(name)
        ax.set_xticks(range(len(pairs)), labels)
        ax.set_xlim(-0.5, len(pairs) - 0.5)
        ax.set_yticks(range(len(sizes) + 2), ["none kept", *(f"{s:g} ms" for s in sizes), "above"])
        ax.set_ylim(-0.5, len(sizes) + 1.5)
        ax.axhspan(-0.5, 0.5, color="#fde0dd", zorder=0)
        for edge in range(1, len(pairs)):
            ax.axvline(edge - 0.5, color="#e0e0e0", linewidth=0.8, zorder=0)
        ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel(keepalive_title(pairs))
    for k in range(len(variants), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.supylabel("largest job kept (target ms)")
    handles = [plotting.plt.Line2D([], [], color=plotting.strategy_colour(s), marker=plotting.strategy_marker(s),
                                   linestyle="none", markersize=7, label=s) for s in strategies]
    handles.append(plotting.plt.Line2D([], [], color="#9e9e9e", linewidth=2.2, alpha=0.6,
                                       label="bar: the boundary lies in here\n(up to the next size that lost)"))
    if hollow_used:
        handles.append(plotting.plt.Line2D([], [], color="#616161", marker="o", markerfacecolor="white",
                                           linestyle="none", label="hollow: a larger size has no data\n"
                                                                   "or was inconclusive"))
    fig.legend(handles=handles, loc="outside right center", frameon=False, title="strategy")
    plotting.title(fig, "Survival boundary: the largest job every connection outlived", subtitle)
    return plotting.save(fig, out_dir, STEM, footer)


def _upper(b: survival.Boundary, levels: dict[float, int]) -> float:
    """The level the boundary may reach: the smallest larger size that lost, else the top of the axis."""
    base = b.max_ms if b.status == "ok" else -math.inf
    # Above the largest kept size, a measured size that is not undecided lost connections.
    lost_above = [s for s in b.measured if s > base and s not in b.undecided]
    if lost_above:
        return float(levels[min(lost_above)])
    return float(len(levels) + 1)
