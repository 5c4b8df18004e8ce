"""The survival boundary written out: the table of the largest job every connection outlived.

The boundaries are found in :mod:`wsblock.analysis.survival`; this module
only writes them (and the sizes a run tested) as markdown.
"""

from __future__ import annotations

import math

import pandas as pd

from wsblock.analysis import cells as cellmod
from wsblock.analysis.survival import INCONCLUSIVE, NO_DATA, Boundary, boundaries
from wsblock.report import markdown as md
from wsblock.report.labels import keepalive_labels, keepalive_title


def boundary_text(b: Boundary) -> str:
    """A boundary as the table shows it."""
    if b.status == NO_DATA:
        return b.status
    text = b.status if b.status != "ok" else f"{md.size(b.max_ms)} ms"
    text += " *" if b.not_monotone else ""
    if b.undecided and b.status != INCONCLUSIVE:
        text += f" ({', '.join(md.size(s) for s in b.undecided)} ms: inconclusive)"
    if b.unknown_above:
        text += f" ({', '.join(md.size(s) for s in b.unknown_above)} ms: no data)"
    return text


def table(cells: pd.DataFrame) -> str:
    """The boundary table of a run, in GitHub markdown.

    Rows are workload x strategy, columns the keepalive settings; each entry
    is the largest work size (target ms per job) whose verdict is ``kept``.
    """
    found = boundaries(cells)
    if not found:
        return "No measured cells.\n"
    pairs = cellmod.keepalives(cells)
    labels = keepalive_labels(pairs)
    by_row: dict[tuple[str, str], dict[cellmod.Keepalive, Boundary]] = {}
    for b in found:
        by_row.setdefault((b.variant, b.strategy), {})[b.keepalive] = b
    rows = []
    for (name, strategy), entries in by_row.items():
        rows.append([md.escape(name), md.escape(strategy),
                     *(boundary_text(entries[p]) if p in entries else "not run" for p in pairs)])
    prefix = keepalive_title(pairs).split(" (", 1)[0]
    header = ["workload", "strategy", *(f"{prefix} {label}" for label in labels)]
    return md.table(header, rows, align="ll" + "r" * len(pairs))


def sizes_tested(cells: pd.DataFrame) -> str:
    """The work sizes of a run, e.g. ``200, 2,500 ms`` (functions called once per job have none)."""
    sizes = sorted({float(s) for s in cells["work_ms"] if not math.isnan(float(s))})
    return ", ".join(md.size(s) for s in sizes) + " ms"
