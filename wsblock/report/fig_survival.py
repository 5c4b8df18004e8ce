"""Figure: the survival boundary (largest surviving job vs ping_timeout)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsblock.report import cells as cellmod
from wsblock.report import plotting
from wsblock.report import survival

STEM = "survival_boundary"


def draw(cells: pd.DataFrame, out_dir: Path, subtitle: str, footer: Any = None) -> list[Path]:
    """Draw one panel per workload: max surviving work size per keepalive.

    The y axis is categorical (the work sizes of the run, plus "none
    survived" below them) because sizes are a handful of tested values, not
    a continuum; lines of different strategies are nudged apart vertically
    so that equal boundaries stay visible.

    Args:
        cells: Aggregated cells.
        out_dir: Output directory.
        subtitle: What one cell measured, one line.
        footer: The provenance footer (:mod:`wsblock.report.provenance`).

    Returns:
        The written files.
    """
    found = survival.boundaries(cells)
    pairs = cellmod.keepalives(cells)
    labels = cellmod.keepalive_labels(pairs, sep="\n")
    sizes = [s for s in plotting.work_sizes(cells["work_ms"]) if not math.isnan(s)]
    levels = {size: i + 1 for i, size in enumerate(sizes)}
    variants = list(dict.fromkeys(cells["variant"]))
    strategies = plotting.strategies_of(cells)
    ncols = min(3, len(variants))
    nrows = math.ceil(len(variants) / ncols)
    panel_w = max(3.4, 0.75 * len(pairs) + 1.6)
    fig, axes = plotting.plt.subplots(nrows, ncols, figsize=(panel_w * ncols + 0.6, 2.6 * nrows + 1.5),
                                      squeeze=False, layout="constrained")
    spread = 0.28
    nudge = {s: (i - (len(strategies) - 1) / 2) * spread / max(1, len(strategies) - 1)
             for i, s in enumerate(strategies)}
    for k, name in enumerate(variants):
        ax = axes[k // ncols][k % ncols]
        drawn = 0
        for strategy in strategies:
            points = {b.keepalive: b for b in found if b.variant == name and b.strategy == strategy}
            xs, ys, open_ = [], [], []
            for j, pair in enumerate(pairs):
                b = points.get(pair)
                xs.append(j)
                if b is None or b.status in (survival.NO_DATA, survival.INCONCLUSIVE):
                    ys.append(np.nan)  # a gap: nothing measured, or nothing the window could show
                    open_.append(False)
                    continue
                ys.append((levels[b.max_ms] if b.status == "ok" else 0) + nudge[strategy])
                open_.append(bool(b.unknown_above or b.undecided))
            if all(math.isnan(y) for y in ys):
                continue
            drawn += 1
            colour = plotting.strategy_colour(strategy)
            ax.step(xs, ys, where="mid", color=colour, linewidth=1.4, alpha=0.9)
            for hollow in (False, True):
                sel = [k for k in range(len(xs)) if open_[k] == hollow]
                ax.plot([xs[k] for k in sel], [ys[k] for k in sel], linestyle="none",
                        marker=plotting.strategy_marker(strategy), color=colour, markersize=5.5,
                        markerfacecolor="white" if hollow else colour)
        if not drawn:
            ax.text(0.5, 0.75, "no measured cell", ha="center", va="center", color="#616161",
                    transform=ax.transAxes)
        ax.set_title(name)
        ax.set_xticks(range(len(pairs)), labels)
        ax.set_xlim(-0.5, len(pairs) - 0.5)
        ax.set_yticks(range(len(sizes) + 1), ["none\nsurvived", *(f"{s:g} ms" for s in sizes)])
        ax.set_ylim(-0.5, len(sizes) + 0.5)
        ax.axhspan(-0.5, 0.5, color="#fde0dd", zorder=0)
        ax.grid(color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
    for k in range(len(variants), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    xlabel = cellmod.keepalive_title(pairs)
    for k in range(len(variants)):
        axes[k // ncols][k % ncols].set_xlabel(xlabel)
    fig.supylabel("largest job (target ms)\nwith the verdict kept")
    handles = [plotting.plt.Line2D([], [], color=plotting.strategy_colour(s), marker=plotting.strategy_marker(s),
                                   label=s) for s in strategies]
    handles.append(plotting.plt.Line2D([], [], color="#616161", marker="o", markerfacecolor="white",
                                       linestyle="none", label="hollow: the boundary may lie higher\n(a size without data, or inconclusive)"))
    width = fig.get_size_inches()[0]
    # About 1.6 inches per legend entry; wrap into rows on narrow figures.
    ncol = max(1, min(len(handles), int(width // 1.6)))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, title="strategy")
    plotting.title(fig, "Survival boundary: largest job size kept (verdict) in every repeat",
                   subtitle + "; strategies nudged apart vertically so equal values stay visible; "
                   "gap = no data or inconclusive")
    return plotting.save(fig, out_dir, STEM, footer)
