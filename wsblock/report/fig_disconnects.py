"""Figure: the disconnect map (share of connections lost per cell, pooled over repeats, with counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from wsblock.analysis import cells as cellmod
from wsblock.report import markdown as md
from wsblock.report import plotting
from wsblock.report.labels import keepalive_labels, keepalive_title

STEM = "disconnect_map"
CMAP = "YlOrRd"


VERDICT_TEXT = {"kept": "kept", "lost": "lost", "inconclusive": "inconclusive", "not_applicable": "n/a"}
"""The survival verdict as a square shows it, under the counts."""

WARNING_MARK = "⚠"


def _state(cells: pd.DataFrame, skipped: list[cellmod.Skip], *, workload: str, size: float,
           strategy: str, keepalive: cellmod.Keepalive) -> tuple[str, float, bool, str, str, bool]:
    """``(state, share, repeats disagree, counts, verdict, warned)`` of one heatmap square.

    The share is pooled over the repeats (connections lost / connections
    open in the window); ``counts`` is ``k/n``, empty without counts;
    ``verdict`` the cell's survival verdict over its repeats as the square
    reads it; ``warned`` whether the cell carries warnings.
    """
    found, row = cellmod.state(cells, skipped, workload=workload, size=size, strategy=strategy,
                               keepalive=keepalive)
    if found == cellmod.OK and row is not None:
        verdict = VERDICT_TEXT.get(row.get("verdict"), "")
        warned = isinstance(row.get("warnings"), str) and bool(row.get("warnings"))
        k, n = row.get("lost_k"), row.get("lost_n")
        if not cellmod.is_none(n) and n:
            return found, int(k) / int(n), bool(row["repeats_disagree"]), f"{int(k)}/{int(n)}", verdict, warned
        return found, float(row["disconnect_share"]), bool(row["repeats_disagree"]), "", verdict, warned
    return found, np.nan, False, "", "", False


def _panel(ax: Any, cells: pd.DataFrame, skipped: list[cellmod.Skip], strategies: list[str],
           pairs: list[cellmod.Keepalive], labels: list[str], size: float) -> None:
    norm = Normalize(0.0, 1.0)
    workload = str(cells["workload"].iloc[0])
    grid = np.full((len(strategies), len(pairs)), np.nan)
    for i, strategy in enumerate(strategies):
        for j, pair in enumerate(pairs):
            state, value, disagree, counts, verdict, warned = _state(
                cells, skipped, workload=workload, size=size, strategy=strategy, keepalive=pair)
            if state == "ok" and not np.isnan(value):
                grid[i, j] = value
                colour = "white" if value >= 0.6 else "black"
                text = md.share(value) + (" †" if disagree else "") + (f" {WARNING_MARK}" if warned else "")
                lines = [text, *([counts] if counts else []), *([verdict] if verdict else [])]
                offsets = {1: [0.0], 2: [-0.13, 0.2], 3: [-0.22, 0.06, 0.3]}[len(lines)]
                for k, (line, dy) in enumerate(zip(lines, offsets)):
                    ax.text(j, i + dy, line, ha="center", va="center", fontsize=8 if k == 0 else 6.5,
                            color=colour, fontstyle="italic" if line == verdict and k else "normal")
                continue
            # Unmeasured squares: grey and hatched, named in words so that
            # they can never be read as "0 lost".
            face = {"failed": "#bdbdbd", "skipped": "#e0e0e0"}.get(state, "white")
            hatch = {"failed": "xxx", "skipped": "///"}.get(state)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=face, hatch=hatch,
                                   edgecolor="#9e9e9e", linewidth=0.0))
            label = "no value" if state == "ok" else state
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color="#212121",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.85})
    ax.imshow(np.ma.masked_invalid(grid), cmap=CMAP, norm=norm, aspect="auto")
    ax.set_xticks(range(len(pairs)), labels)
    ax.set_yticks(range(len(strategies)), strategies)
    ax.set_xlim(-0.5, len(pairs) - 0.5)
    ax.set_ylim(len(strategies) - 0.5, -0.5)
    # White separators make each square readable as one cell.
    ax.set_xticks(np.arange(-0.5, len(pairs), 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(strategies), 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", length=0)


def draw(cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path, subtitle: str,
         footer: Any = None) -> list[Path]:
    """Draw the disconnect map (one file per page of workloads: :func:`wsblock.report.plotting.pages`).

    Args:
        cells: Aggregated cells.
        skipped: Cells the manifest says were skipped.
        out_dir: Where to write ``disconnect_map.png`` and ``.svg`` (then
            ``disconnect_map-2`` ... for further pages).
        subtitle: What one cell measured (window, connections), one line
            (printed with the footer).
        footer: The provenance footer (:mod:`wsblock.report.provenance`).

    Returns:
        The written files, page by page.
    """
    grids = plotting.pages(plotting.Grid.of(cells))
    out: list[Path] = []
    for index, grid in enumerate(grids):
        out += _page(grid, cells, skipped, out_dir, subtitle, footer, plotting.page_stem(STEM, index),
                     plotting.page_title(TITLE, grid, len(grids)))
    return out


TITLE = "Connections lost per cell: share, counts and verdict"


def _page(grid: plotting.Grid, cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path, subtitle: str,
          footer: Any, stem: str, heading: str) -> list[Path]:
    pairs = cellmod.keepalives(cells, skipped)
    labels = keepalive_labels(pairs, sep="\n")
    panel_w = max(plotting.PANEL_W, 0.75 * len(pairs) + 1.2)
    panel_h = max(1.9, 0.38 * len(plotting.strategies_of(cells, skipped)) + 1.0)
    fig, axes = grid.figure(panel_w, panel_h, extra_h=0.9, extra_w=1.6)
    for r, name in enumerate(grid.variants):
        for c, size in enumerate(grid.sizes):
            ax = axes[r][c]
            here = plotting.panel_cells(cells, name, size)
            ax.set_title(plotting.panel_title(name, size))
            if here.empty:
                plotting.empty_panel(ax, "not run at this size")
                continue
            strategies = plotting.strategies_of(cells, skipped, str(here["workload"].iloc[0]))
            _panel(ax, here, skipped, strategies, pairs, labels, size)
    mappable = fig.colorbar(
        plotting.plt.cm.ScalarMappable(norm=Normalize(0, 1), cmap=CMAP), ax=axes, shrink=0.6,
        aspect=30, pad=0.02)
    # A short label: on a one-row map the colour bar is short too.
    mappable.set_label("share lost (of original connections)" if len(grid.variants) > 1 else "share lost")
    fig.supxlabel(keepalive_title(pairs))
    fig.supylabel("strategy")
    plotting.title(fig, heading, subtitle + f"; † = repeats disagree; {WARNING_MARK} = the cell carries warnings")
    return plotting.save(fig, out_dir, stem, footer)
