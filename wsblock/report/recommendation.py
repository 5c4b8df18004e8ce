"""The recommendation, as the report's first section (``## Verdict``) and as ``wsblock advise`` prints it.

The statements come from :mod:`wsblock.analysis.recommend`; this module only
words them: a table (one row per workload x strategy) and one sentence per
row, each with its numbers, the repeats behind them and the cell they come
from.
"""

from __future__ import annotations

import math
import textwrap
from typing import Callable, Iterable

import pandas as pd

from wsblock.analysis import cells as cellmod
from wsblock.analysis import recommend as rec
from wsblock.analysis import rules
from wsblock.analysis.intervals import Proportion
from wsblock.report import markdown as md
from wsblock.report.labels import keepalive_labels, keepalive_title

RULES = (
    "Verdicts, over every work size and keepalive setting the run measured for a workload and strategy, from "
    "that strategy's own cells (wsblock/analysis/rules.py, docs/report.md): `drops connections` = some cell lost "
    f"a connection, *reproducible* when in more than {rules.REPRODUCIBLE_SHARE:.0%} of its repeats, *intermittent* "
    "when in fewer; `inconclusive` = none was lost, but some cell's window could not show survival, or its "
    f"repeats were at risk for fewer than {rules.REQUIRED_CYCLES} keepalive cycles (no claim); `slow loop` = every "
    "connection kept, but the loop is not free in some cell: it stalled (a gap over the stall threshold, "
    f"{rules.STALL_MS:g} ms by default) in every repeat, its worst repeat's loop-lag p99 was over the stall "
    f"threshold or its p50 over {rules.BUSY_LAG_MS:g} ms (where the probe has too few samples, its stalled share "
    f"over {rules.STALLED_SHARE_FREE:.0%}), or its worst repeat's longest stall was over "
    f"{rules.STALL_BUDGET_SHARE:g} x ping_timeout; `cannot tell` = every connection kept and no loop shown slow, "
    "but a caveat that could have made the strategy look safer occurred in its own cells (named, with its "
    f"direction), a cell has fewer than {rec.MIN_REPEATS} measured repeats or a failed one, a loop figure is "
    "missing, or the figure the verdict rests on varies across its threshold; `safe` = none of these, with every "
    "harsher condition it was measured under stated. `repeats with loss` = repeats that lost any connection, "
    "k of n with the Wilson 95 % interval over repeats (the repeat is the unit: connections of one repeat "
    "share one loop); `connections lost` = original connections lost of those at risk, a description only. "
    "The loop columns come from the cell with the largest job at the longest ping_timeout (the worst case for "
    "the loop), the throughput from the cell with the smallest job at the longest ping_timeout (the most jobs "
    "in the window): the median over the cell's repeats with the interval of the median in brackets; `n` = "
    "measured repeats per cell.")
"""What the verdict table's words and columns mean."""

WIDTH = 100
"""Line width of ``wsblock advise``."""


def _code(text: str, markdown: bool) -> str:
    return md.code(text) if markdown else text


def _proportion(p: Proportion | None) -> str:
    """``6 of 12 (0.50 [0.25, 0.75])``."""
    if p is None or not p.n:
        return "no connection at risk"
    return f"{p.k} of {p.n} ({md.share(p.share)} [{md.share(p.low)}, {md.share(p.high)}])"


def _quantity(q: rec.Quantity | None, fmt: Callable[[float], str] = md.ms) -> str:
    """``235 [220, 250] (n 3)``; ``–`` when nothing was recorded."""
    if q is None or not q.known:
        return "–"
    if q.n >= 2 and math.isfinite(q.low) and math.isfinite(q.high) and q.low != q.high:
        return f"{fmt(q.value)} [{fmt(q.low)}, {fmt(q.high)}]"
    return fmt(q.value)


def _stall(a: rec.Advice) -> str:
    if a.stall is None or not a.stall.known:
        return "–"
    if a.stall.value == 0 and (not math.isfinite(a.stall.high) or a.stall.high == 0):
        return "none"
    return _quantity(a.stall)


def _cells(a: rec.Advice) -> str:
    parts = [f"{len(a.kept)} kept", f"{len(a.lost)} lost", f"{len(a.undecided)} inconclusive"]
    if a.unpinged:
        parts.append(f"{len(a.unpinged)} without keepalive")
    if a.failed:
        parts.append(f"{len(a.failed)} failed")
    return ", ".join(parts)


def _repeats(a: rec.Advice) -> str:
    low, high = a.repeats
    return f"{low}" if low == high else f"{low} to {high}"


def _repeats_with_loss(a: rec.Advice) -> str:
    """``3 of 3 [0.44, 1], reproducible (cell)``; for a strategy that kept: ``0 of 3 [0, 0.56] in each of 4 cells``."""
    p = a.repeat_loss
    if p is not None and p.repeats:
        return (f"{p.lost.k} of {p.repeats} [{md.share(p.lost.low)}, {md.share(p.lost.high)}], "
                f"{p.kind}")
    k, n = a.repeats_lost
    if not n:
        return "–"
    if a.kept and not k and len({c.repeats for c in a.kept}) == 1 and len(a.kept) * a.kept[0].repeats == n:
        each = a.kept[0].repeats
        high = rules.repeat_loss({"loss_repeats": each, "repeats_lost_any": 0}).lost.high
        cells = f" in each of {len(a.kept)} cells" if len(a.kept) > 1 else ""
        return f"0 of {each} [0, {md.share(high)}]{cells}"
    return f"{k} of {n} over {a.cells} cells"


def _connections(a: rec.Advice) -> str:
    p = a.connections
    return f"{p.k} of {p.n}" if p is not None and p.n else "none at risk"


def _caveats(a: rec.Advice) -> str:
    parts = list(a.weak)
    if a.harsher:
        parts.append(_harsher_text(a))
    return "; ".join(parts) or "–"


def table(result: rec.Recommendation) -> str:
    """The verdict table in GitHub markdown."""
    header = ["workload", "strategy", "verdict", "repeats with loss", "connections lost", "cells",
              "longest stall ms (largest job)", "lag p99 ms (largest job)", "jobs/s (smallest job)", "n", "caveats"]
    rows = []
    for a in result.advice:
        if a.verdict == rec.NO_DATA:
            rows.append([md.escape(a.workload), md.escape(a.strategy), a.verdict, "–", "–", f"{len(a.failed)} failed",
                         "–", "–", "–",
                         "0", "no measured repeat"])
            continue
        lag = _quantity(a.lag_p99) if a.lag_p99 is not None and a.lag_p99.known else "withheld"
        rows.append([md.escape(a.workload), md.escape(a.strategy), f"**{a.verdict}**", _repeats_with_loss(a),
                     _connections(a), _cells(a),
                     _stall(a), lag, _quantity(a.jobs_per_s, md.number), _repeats(a), _caveats(a)])
    return md.table(header, rows, align="llllllrrrrl")


def _loop(a: rec.Advice, markdown: bool) -> str:
    """The loop figure of the reference cell, with its repeats and cell."""
    ref = a.reference
    if ref is None or a.stall is None:
        return ""
    stall = _stall(a)
    # The threaded server has no event loop: its probe is a thread of 1 ms
    # sleeps (docs/record.md, meta.probe), and the text says so.
    probe = "probe thread" if "server=threaded" in a.workload else "loop"
    if stall == "none":
        text = f"its {probe} never stalled beyond the stall threshold"
    elif stall == "–":
        text = f"its {probe} stalls were not recorded"
    else:
        text = f"its {probe}'s longest stall was {stall} ms"
        if a.stalled_share is not None and a.stalled_share.known:
            text += f" ({a.stalled_share.value:.0%} of the window stalled)"
    if a.lag_p99 is not None and a.lag_p99.known:
        text += f", {'probe-thread lag' if probe != 'loop' else 'loop-lag'} p99 {_quantity(a.lag_p99)} ms"
    return f"{text} at {ref.text()} (n {ref.repeats}, cell {_code(ref.cell, markdown)})"


def _listed(conditions: Iterable[rec.Condition], markdown: bool, most: int = 3) -> str:
    """Cell ids, the first ``most`` of them, then how many more."""
    cells = [_code(c.cell, markdown) for c in conditions]
    more = len(cells) - most
    return ", ".join(cells[:most]) + (f" and {more} more" if more > 0 else "")


def _harsher_text(a: rec.Advice) -> str:
    """The harsher conditions; beside a bad verdict, with what that means for it."""
    if not a.harsher:
        return ""
    if a.verdict in (rec.DROPS, rec.SLOW_LOOP):
        return f"{a.harsher}: part of what it shows may be that condition's doing"
    return a.harsher


def _harsher(a: rec.Advice) -> str:
    return f"; {_harsher_text(a)}" if a.harsher else ""


def sentence(a: rec.Advice, *, markdown: bool = True) -> str:
    """One statement about a workload x strategy, with its numbers and cells.

    Args:
        a: The advice.
        markdown: Mark names as code (``wsblock advise`` prints plain text).
    """
    name = _code(a.strategy, markdown)
    verdict = f"**{a.verdict}**" if markdown else a.verdict.upper()
    if a.verdict == rec.NO_DATA:
        return f"{name}: {verdict}: no measured repeat ({', '.join(a.failed)})."
    cells = f"{a.cells} cell{'s' if a.cells != 1 else ''}"
    loop = _loop(a, markdown)
    if a.verdict == rec.DROPS:
        loss, p = a.loss, a.repeat_loss
        assert loss is not None and p is not None
        where = (f"{p.kind}: {p.text()} at {loss.text()} (cell {_code(loss.cell, markdown)})")
        text = f"{name} {verdict}, {where}"
        text += f"; lost in {len(a.lost)} of {a.cells} cells" if len(a.lost) > 1 else ""
        return text + _harsher(a) + (f"; {loop}." if loop else ".")
    k, n = a.repeats_lost
    kept = (f"{k} of {n} repeats and {_connections(a)} original connections lost"
            if n and a.verdict != rec.INCONCLUSIVE else f"{_connections(a)} original connections lost")
    if a.verdict != rec.INCONCLUSIVE and a.unpinged:
        cells = f"{len(a.kept)} cell{'s' if len(a.kept) != 1 else ''} with keepalive"
    every = f"all {cells}" if not cells.startswith("1 cell") else f"its {cells}"
    if a.verdict == rec.INCONCLUSIVE:
        if not a.undecided:
            return (f"{name} {verdict}: no cell had keepalive pings, so none could show survival "
                    f"({kept} over {cells}); {loop}.")
        pinged = a.cells - len(a.unpinged)
        which = "it" if a.cells == 1 else (f"{len(a.undecided)} of its {pinged} cells with keepalive"
                                           if a.unpinged else f"{len(a.undecided)} of them")
        why = "window too short to show it"
        if a.short:
            why = (f"at risk for fewer than {rules.REQUIRED_CYCLES} keepalive cycles in "
                   f"{_listed(a.short, markdown)}; " + why)
        return (f"{name} {verdict}: {kept} over {cells}, but {which} could not show survival "
                f"({why}: {_listed(a.undecided, markdown)}); {loop}.")
    if a.verdict == rec.CANNOT_TELL:
        return (f"{verdict if not markdown else '**cannot tell**'} whether {name} is safe: it kept every "
                f"connection in {every} ({kept}), but {'; '.join(a.weak)}{_harsher(a)}; {loop}.")
    if a.verdict == rec.SLOW_LOOP:
        why = a.loop.failures[0] if a.loop is not None and a.loop.failures else "its loop stalled"
        more = len(a.loop.failures) - 1 if a.loop is not None else 0
        also = f" (and {more} more such finding{'s' if more != 1 else ''})" if more > 0 else ""
        return (f"{name} {verdict}: it kept every connection in {every} ({kept}), but {why}{also}"
                f"{_harsher(a)}; {loop}.")
    return f"{name} {verdict}{_harsher(a)}: it kept every connection in {every} ({kept}); {loop}."


def scope(cells: pd.DataFrame) -> str:
    """What the verdicts cover: sizes and keepalive settings of the run."""
    values = [float(s) for s in cells["work_ms"]]
    sizes = sorted({s for s in values if not math.isnan(s)})
    # A function without units runs once per job: it has no work size.
    parts = [f"work sizes {', '.join(md.size(s) for s in sizes)} ms"] if sizes else []
    if any(math.isnan(s) for s in values):
        parts.append("functions called once per job")
    pairs = cellmod.keepalives(cells)
    return (f"{' and '.join(parts)}; keepalive "
            f"{keepalive_title(pairs)}: {'; '.join(keepalive_labels(pairs))}")


def recommendation(cells: pd.DataFrame, strategies: Iterable[str] | None = None) -> rec.Recommendation:
    """The recommendation of the report's aggregated cells, strategies in catalogue order."""
    order = sorted(set(cells["strategy"]) | set(strategies or ()), key=cellmod.strategy_key) \
        if not cells.empty else []
    return rec.recommend(cells, strategy_order=order)


def section(cells: pd.DataFrame) -> list[str]:
    """The report's first section, ``## Verdict``, as markdown lines."""
    lines = ["## Verdict", ""]
    if cells.empty:
        return lines + ["No measured cells: nothing to conclude.", ""]
    result = recommendation(cells)
    lines.append(f"What the measurements of this run say, per workload and strategy, over {scope(cells)}.")
    lines += ["", table(result)]
    for workload in result.workloads:
        lines.append(f"**{md.escape(workload)}**")
        lines.append("")
        lines += [f"- {sentence(a)}" for a in result.of(workload)]
        lines.append("")
    lines += [RULES, ""]
    return lines


def text(cells: pd.DataFrame, run: str) -> str:
    """The recommendation as ``wsblock advise`` prints it: plain text."""
    if cells.empty:
        return f"{run}: no measured cells: nothing to conclude\n"
    result = recommendation(cells)
    out = [f"{run}: what the measurements say, over {scope(cells)}", ""]
    for workload in result.workloads:
        out.append(workload)
        for a in result.of(workload):
            out.append(textwrap.fill(sentence(a, markdown=False), WIDTH, initial_indent="  - ",
                                     subsequent_indent="    ", break_on_hyphens=False, break_long_words=False))
        out.append("")
    out.append(textwrap.fill(RULES.replace("`", "").replace("the last column says why", "each statement says why"),
                             WIDTH, break_on_hyphens=False))
    return "\n".join(out) + "\n"


__all__ = ["RULES", "recommendation", "scope", "section", "sentence", "table", "text"]
