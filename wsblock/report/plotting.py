"""Shared figure machinery: backend, layout, colours, atomic saving.

Every figure is a grid of panels, one per workload (rows) and work size
(columns), so a reader finds the same cell at the same place in each figure.
Figures are sized for a slide: at most :data:`SLIDE_W` x :data:`SLIDE_H`
inches at :data:`DPI` (1600 x 900 pixels), the provenance footer included.
A run with more workloads than fit (:data:`MAX_ROWS`) gets one figure per
page of workloads (:func:`pages`), each with a one-line title; the details
of what a cell measured travel in the footer and the report's captions.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

# The report runs headless (CI, ssh): never pick an interactive backend.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from wsblock import atomic  # noqa: E402
from wsblock.analysis import cells as cellmod  # noqa: E402
from wsblock.engine import strategies  # noqa: E402

# SVG first: the PNG (the file people look at) is then drawn with the layout
# solved for the SVG, so checking the PNG checks the reused layout too.
FORMATS = ("svg", "png")
DPI = 125
PANEL_W, PANEL_H = 3.6, 2.5
SLIDE_W, SLIDE_H = 12.8, 7.2
"""The largest figure, inches (16:9; 1600 x 900 pixels at :data:`DPI`)."""
FOOTER_H = 0.45
"""Height left for the provenance footer below a slide-sized figure, inches."""
MAX_ROWS = 3
"""Workload rows per figure; more workloads make more pages."""

# Strategies take colours and markers by their place in the catalogue
# (red for "blocks the loop" through green for "leaves the process").
STRATEGY_COLOURS = ("#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
STRATEGY_MARKERS = ("o", "s", "^", "D", "P", "X")

# Deterministic output: SVGs carry no date and a fixed id salt, so two
# renders of the same data are byte-identical.
plt.rcParams.update({
    "svg.hashsalt": "wsblock",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "figure.titlesize": 13,
})


def strategy_colour(name: str) -> str:
    """A fixed colour per strategy, so every figure uses the same one."""
    index = _catalogue_index(name)
    return STRATEGY_COLOURS[index] if index < len(STRATEGY_COLOURS) else "#7f7f7f"


def strategy_marker(name: str) -> str:
    """A fixed marker per strategy (colour is not the only cue)."""
    index = _catalogue_index(name)
    return STRATEGY_MARKERS[index] if index < len(STRATEGY_MARKERS) else "v"


def _catalogue_index(name: str) -> int:
    order = strategies.names()
    return order.index(name) if name in order else len(order) + len(STRATEGY_COLOURS)


def keepalive_colours(count: int) -> list[Any]:
    """Colours for ``count`` keepalive settings, short to long timeouts."""
    cmap = plt.get_cmap("viridis")
    if count == 1:
        return [cmap(0.35)]
    return [cmap(0.05 + 0.8 * i / (count - 1)) for i in range(count)]


@dataclass
class Grid:
    """The panel layout of one figure.

    Attributes:
        variants: Workload labels, one row each.
        sizes: Work sizes in ms, one column each.
    """

    variants: list[str]
    sizes: list[float]

    @classmethod
    def of(cls, cells: pd.DataFrame) -> "Grid":
        """The layout covering every cell of a run."""
        return cls(list(dict.fromkeys(cells["variant"])), work_sizes(cells["work_ms"]))

    def figure(self, panel_w: float = PANEL_W, panel_h: float = PANEL_H,
               extra_h: float = 1.2, extra_w: float = 0.8) -> tuple[Figure, Any]:
        """A figure with one panel per variant x size (``axes[row][col]``).

        The panels get ``panel_w`` x ``panel_h`` inches each, plus
        ``extra_w`` and ``extra_h`` for labels and legends, but the whole
        stays within a slide (:data:`SLIDE_W` x :data:`SLIDE_H` less the
        footer): a larger grid shrinks its panels.
        """
        width = min(SLIDE_W, panel_w * len(self.sizes) + extra_w)
        height = min(SLIDE_H - FOOTER_H, panel_h * len(self.variants) + extra_h)
        fig, axes = plt.subplots(len(self.variants), len(self.sizes), figsize=(width, height),
                                 squeeze=False, layout="constrained")
        return fig, axes


def pages(grid: Grid, rows: int = MAX_ROWS) -> list[Grid]:
    """The grid cut into figures of at most ``rows`` workload rows each, as even as can be.

    Four workloads make two pages of 2 rows rather than 3 and 1, so the
    pages of a figure have panels of about the same height.
    """
    count = max(1, -(-len(grid.variants) // rows))
    per_page = -(-len(grid.variants) // count) if grid.variants else rows
    return [Grid(grid.variants[i:i + per_page], grid.sizes)
            for i in range(0, len(grid.variants), per_page)] or [grid]


def page_stem(stem: str, index: int) -> str:
    """``loop_delay`` for the first page, ``loop_delay-2`` for the second, ..."""
    return stem if index == 0 else f"{stem}-{index + 1}"


def page_title(heading: str, grid: Grid, count: int) -> str:
    """The title of one page: the heading, and its workloads when there are several pages."""
    return heading if count == 1 else f"{heading}: {', '.join(grid.variants)}"


def panel_title(variant: str, size: float) -> str:
    """``pure_python, 200 ms jobs``, or ``mod:fn, one call per job``."""
    return f"{variant}, one call per job" if math.isnan(size) else f"{variant}, {size:g} ms jobs"


def empty_panel(ax: Any, text: str) -> None:
    """Mark a panel that has no cell (the run did not cover it)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#777777", transform=ax.transAxes)


def title(fig: Figure, heading: str, subtitle: str = "", fontsize: float | None = None) -> None:
    """Set a figure's one-line title; the subtitle goes to the footer.

    A slide shows a title of one line; what one cell measured (window,
    connections, echo rate) is printed with the provenance footer by
    :func:`save`, and the report's caption says the rest.
    """
    fig.suptitle(heading, fontsize=fontsize or plt.rcParams["figure.titlesize"])
    fig._wsblock_note = subtitle  # type: ignore[attr-defined]


def save(fig: Figure, out_dir: Path, stem: str, footer: Any = None) -> list[Path]:
    """Save ``fig`` as PNG and SVG atomically and close it.

    Args:
        fig: The figure.
        out_dir: Where to write.
        stem: File name without extension.
        footer: The provenance footer
            (:class:`wsblock.report.provenance.Provenance` or its text),
            stamped along the bottom edge; ``None`` for none.

    Returns:
        The written paths, in :data:`FORMATS` order.
    """
    from wsblock.report.provenance import footer_height, stamp

    paths = []
    try:
        note = getattr(fig, "_wsblock_note", "")
        text = footer.text() if hasattr(footer, "text") else ("" if footer is None else str(footer))
        text = " · ".join(t for t in (note, text) if t)
        if text:
            width, height = fig.get_size_inches()
            # The footer adds its height: keep the whole within a slide.
            room = SLIDE_H - footer_height(text, width)
            if height > room:
                fig.set_size_inches(width, room)
            stamp(fig, text)
        for fmt in FORMATS:
            buffer = io.BytesIO()
            metadata = {"Date": None} if fmt == "svg" else {"Software": None}
            fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
            path = out_dir / f"{stem}.{fmt}"
            atomic.write_bytes(path, buffer.getvalue())
            paths.append(path)
            # The layout is solved; the other formats reuse it (constrained
            # layout is most of the rendering time).
            fig.set_layout_engine("none")
    finally:
        plt.close(fig)
    return paths


def work_sizes(values: Any) -> list[float]:
    """The work sizes of a run, ascending; NaN last, once, when a function ran once per job."""
    sizes = sorted({float(s) for s in values if not math.isnan(float(s))})
    return sizes + ([math.nan] if any(math.isnan(float(s)) for s in values) else [])


def panel_cells(cells: pd.DataFrame, variant: str, size: float) -> pd.DataFrame:
    """The cells of one panel (``size`` NaN: the cells of a function called once per job)."""
    work = cells["work_ms"].astype(float)
    same = work.isna() if math.isnan(size) else work == size
    return cells[(cells["variant"] == variant) & same]


def strategies_of(cells: pd.DataFrame, skipped: list[cellmod.Skip] | None = None,
                  workload: str | None = None) -> list[str]:
    """Strategies of a run (measured or skipped), in canonical order.

    Args:
        cells: Aggregated cells.
        skipped: Skipped cells from the manifest.
        workload: Only strategies measured or skipped for this workload.
    """
    if workload is not None:
        cells = cells[cells["workload"] == workload]
    names = set(cells["strategy"])
    for skip in skipped or []:
        if "strategy" in skip.params and skip.matches(**({"workload": workload} if workload else {})):
            names.add(skip.params["strategy"])
    return sorted(names, key=cellmod.strategy_key)
