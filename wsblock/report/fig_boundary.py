"""Keepalive survival drawn: the model against the records, and searched boundaries.

* :func:`model_table` / :func:`model_figure`: for every cell of a run
  directory, the loss probability the model of ``docs/boundary-model.md``
  predicts from the cell's own stall pattern, against the share of original
  connections lost (pooled over repeats, Wilson 95 % interval), as
  :func:`wsblock.boundary.evaluate.model_rows` computes them.
* :func:`boundary_figure`: searched boundary job lengths (``wsblock
  boundary``) against ``ping_timeout``, one line per strategy, with intervals.
* :func:`rules_figure`: every searched boundary against the two candidate
  rules, ``ping_timeout / N`` and ``(ping_interval + ping_timeout) / 2N``,
  so that ``ping_interval`` and websockets' defaults show on one slide.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from wsblock.boundary.evaluate import ModelRow, summary_counts
from wsblock.report import plotting


def model_table(rows: Sequence[ModelRow], *, only_near: bool = False) -> str:
    """A GitHub-markdown table of predicted against measured loss."""
    lines = [
        "| cell | repeats | predicted (range) | channels: client / server | measured (95 % interval) "
        "| closed first by client / server | verdict |",
        "|---|---:|---|---|---|---|---|",
    ]
    for r in rows:
        if only_near and not r.near_boundary:
            continue
        verdict = "agrees" if r.agrees else ("range overlaps" if r.overlaps else "**differs**")
        lines.append(
            f"| {r.label} | {r.repeats} | {r.predicted.p:.2f} ({r.predicted.low:.2f} to {r.predicted.high:.2f}) "
            f"| {r.predicted.client:.2f} / {r.predicted.server:.2f} "
            f"| {r.lost}/{r.connections} = {r.measured:.2f} ({r.measured_low:.2f} to {r.measured_high:.2f}) "
            f"| {r.by_initiator.get('client', 0)} / {r.by_initiator.get('server', 0)} | {verdict} |")
    counts = summary_counts(rows)
    lines.append("")
    lines.append(
        f"Point prediction inside the measured interval: {counts['point_in_interval']} of {counts['cells']} "
        f"cells; predicted range meets it: {counts['range_overlaps']} of {counts['cells']}. Near the "
        f"boundary (model or measurement neither 0 nor 1): {counts['near_point_in_interval']} and "
        f"{counts['near_range_overlaps']} of {counts['near_boundary']}. The measured interval treats the "
        "connections of a cell as independent; they share one stall pattern, so it is too narrow.")
    return "\n".join(lines)


def model_figure(rows: Sequence[ModelRow], out_dir: Path, *, stem: str = "boundary_model",
                 footer: Any = None) -> list[Path]:
    """Scatter of measured against predicted loss, with both ranges."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    ax.plot([0, 1], [0, 1], color="#888888", lw=0.8, ls="--", zorder=0)
    for r in rows:
        colour = plotting.strategy_colour(str(r.params.get("strategy")))
        x, y = r.predicted.p, r.measured
        ax.errorbar(x, y, xerr=[[x - r.predicted.low], [r.predicted.high - x]],
                    yerr=[[max(0.0, y - r.measured_low)], [max(0.0, r.measured_high - y)]],
                    fmt=plotting.strategy_marker(str(r.params.get("strategy"))), color=colour,
                    ms=4, lw=0.6, alpha=0.55 if r.near_boundary else 0.2, capsize=1.5)
    seen = sorted({str(r.params.get("strategy")) for r in rows})
    for name in seen:
        ax.plot([], [], plotting.strategy_marker(name), color=plotting.strategy_colour(name), label=name)
    ax.legend(loc="lower right", frameon=False)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("predicted P(original connection lost)")
    ax.set_ylabel("measured share lost (Wilson 95 %)")
    counts = summary_counts(rows)
    plotting.title(fig, "Keepalive model against the records",
                   f"{counts['point_in_interval']}/{counts['cells']} cells agree; near the boundary "
                   f"{counts['near_point_in_interval']}/{counts['near_boundary']}")
    return plotting.save(fig, out_dir, stem, footer)


def _plain_log_labels(ax: Any) -> None:
    """Label a log axis in plain milliseconds (200, 300, 500, 1000), not 2 x 10^2."""
    from matplotlib import ticker

    def text(value: float, _pos: Any) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return f"{value:g}" if round(mantissa, 6) in (1.0, 2.0, 3.0, 5.0) else ""

    ax.yaxis.set_major_formatter(ticker.FuncFormatter(text))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(text))


def boundary_figure(estimates: Sequence[Mapping[str, Any]], out_dir: Path, *, stem: str = "boundary",
                    footer: Any = None) -> list[Path]:
    """Boundary job length against ``ping_timeout``, one line per strategy.

    Args:
        estimates: Entries of a boundary summary's ``estimates`` (keys
            ``strategy``, ``ping_timeout``, ``workload``, ``p50`` with
            ``value``/``low``/``high`` in ms, and ``model_p50_ms``).
        out_dir: Where to write.
        stem: File name without extension.
        footer: Provenance footer, or ``None``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(5.2, 4.0), layout="constrained")
    lines: dict[tuple[str, str, int, float], list[Mapping[str, Any]]] = {}
    for e in estimates:
        if e.get("ping_timeout") is None:
            continue
        key = (str(e.get("workload")), str(e.get("strategy")), int(e.get("job_connections") or 0),
               float(e.get("ping_interval") or 0.0))
        lines.setdefault(key, []).append(e)
    several = len({k[2] for k in lines}) > 1
    # Searches at several ping_intervals are drawn apart (a line joins one
    # ping_interval's timeouts) and named by it.
    intervals = len({k[3] for k in lines}) > 1
    dashes = ["-", "--", "-.", (0, (1, 1))]
    timeouts: set[float] = set()
    for i, ((workload, strategy, jobs, interval), points) in enumerate(sorted(lines.items())):
        points = sorted(points, key=lambda e: float(e["ping_timeout"]))
        xs = [float(e["ping_timeout"]) for e in points]
        timeouts.update(xs)
        mid = [(e.get("p50") or {}).get("value") for e in points]
        lo = [(e.get("p50") or {}).get("low") for e in points]
        hi = [(e.get("p50") or {}).get("high") for e in points]
        colour = plotting.strategy_colour(strategy)
        ys = [m if m is not None else math.nan for m in mid]
        yerr = [[y - (l if l is not None else y) for y, l in zip(ys, lo)],
                [(h if h is not None else y) - y for y, h in zip(ys, hi)]]
        label = (f"{workload} {strategy}" + (f", {jobs} job conn." if several else "")
                 + (f", ping_interval {interval:g} s" if intervals else ""))
        style = dashes[sorted({k[2] for k in lines}).index(jobs) % len(dashes)] if several else "-"
        if intervals:
            colour = plotting.keepalive_colours(len({k[3] for k in lines}))[
                sorted({k[3] for k in lines}).index(interval)]
        ax.errorbar(xs, ys, yerr=yerr, color=colour, marker=plotting.strategy_marker(strategy),
                    ms=4, capsize=2, ls=style, label=f"{label} (measured)")
        model = [e.get("model_p50_ms") for e in points]
        if any(m is not None for m in model) and not intervals:
            ax.plot(xs, [m if m is not None else math.nan for m in model], color=colour, ls=":", marker="x",
                    ms=5, label=f"{label} (model)")
    if timeouts:
        xs = sorted(timeouts)
        ax.plot(xs, [1000.0 * x for x in xs], color="0.6", lw=0.8, ls="--", label="job = ping_timeout")
    ax.set_xlabel("ping_timeout (s)")
    ax.set_ylabel("job length at 50 % loss, as measured (ms)")
    ax.set_yscale("log")
    if timeouts and max(timeouts) / min(timeouts) > 8:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    _plain_log_labels(ax)
    if lines:
        ax.legend(frameon=False, fontsize=7)
    else:
        plotting.empty_panel(ax, "no boundary estimated")
    plotting.title(fig, "Survival boundary", "job length at which half the original connections are lost; "
                   "bars: 95 % interval, each cell one trial")
    return plotting.save(fig, out_dir, stem, footer)


RULES = (
    ("ping_timeout / N", lambda pi, pt, n: 1000.0 * pt / n),
    ("(ping_interval + ping_timeout) / 2N", lambda pi, pt, n: 1000.0 * (pi + pt) / (2 * n)),
)
"""The two candidate rules for where keepalive starts losing connections, as job lengths in ms."""


def rules_figure(estimates: Sequence[Mapping[str, Any]], out_dir: Path, *, stem: str = "boundary_rules",
                 footer: Any = None) -> list[Path]:
    """Each searched boundary against what each candidate rule predicts for its settings.

    One panel per rule of :data:`RULES`: x is the rule's job length for the
    search's ``ping_interval``, ``ping_timeout`` and job connections N, y the
    measured 50 % boundary with its 95 % interval, both on log scales; a
    rule that holds puts every point on the diagonal. Colour marks
    ``ping_interval``, the marker N. Estimates without a keepalive or a
    point are left out.

    Args:
        estimates: Entries of boundary summaries' ``estimates``.
        out_dir: Where to write.
        stem: File name without extension.
        footer: Provenance footer, or ``None``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    points = []
    for e in estimates:
        p50 = e.get("p50") or {}
        pi, pt, n = e.get("ping_interval"), e.get("ping_timeout"), e.get("job_connections")
        if pi is None or pt is None or not n or p50.get("value") is None:
            continue
        points.append((float(pi), float(pt), int(n), float(p50["value"]), p50.get("low"), p50.get("high")))
    intervals = sorted({p[0] for p in points})
    cmap = colormaps["viridis"]
    colour = {pi: cmap(0.85 * i / max(1, len(intervals) - 1)) for i, pi in enumerate(intervals)}
    markers = {1: "o", 2: "s", 3: "^", 4: "D"}
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.6), layout="constrained", sharey=True)
    for ax, (name, rule) in zip(axes, RULES):
        xs_all = []
        for pi, pt, n, value, low, high in points:
            x = rule(pi, pt, n)
            xs_all += [x, value]
            lo = value - low if low is not None else 0.0
            hi = high - value if high is not None else 0.0
            ax.errorbar([x], [value], yerr=[[lo], [hi]], color=colour[pi], marker=markers.get(n, "P"),
                        ms=6, capsize=2, ls="none", mec="black", mew=0.4)
            if low is None or high is None:
                ax.annotate("open", (x, value), textcoords="offset points", xytext=(4, -8), fontsize=6)
        if xs_all:
            lo_edge, hi_edge = min(xs_all) / 1.6, max(xs_all) * 1.6
            ax.plot([lo_edge, hi_edge], [lo_edge, hi_edge], color="0.5", lw=0.8, ls="--")
            ax.set_xlim(lo_edge, hi_edge)
            ax.set_ylim(lo_edge, hi_edge)
        else:
            plotting.empty_panel(ax, "no boundary estimated")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_labels(ax)
        ax.xaxis.set_major_formatter(ax.yaxis.get_major_formatter())
        ax.xaxis.set_minor_formatter(ax.yaxis.get_minor_formatter())
        ax.set_xlabel(f"{name}, ms")
        ax.set_title(f"rule: {name}", fontsize=9)
    axes[0].set_ylabel("measured job length at 50 % loss, ms")
    for pi in intervals:
        axes[1].plot([], [], "o", color=colour[pi], label=f"ping_interval {pi:g} s")
    for n in sorted({p[2] for p in points}):
        axes[1].plot([], [], markers.get(n, "P"), color="white", mec="black", label=f"N = {n} job conn.")
    axes[1].plot([], [], color="0.5", lw=0.8, ls="--", label="rule holds (diagonal)")
    if points:
        axes[1].legend(frameon=False, fontsize=7, loc="upper left")
    plotting.title(fig, "Where keepalive starts losing connections: the two rules against the searches",
                   f"{len(points)} searches; a point on the diagonal is a boundary the rule predicts; "
                   "bars: 95 % interval, each cell one trial")
    return plotting.save(fig, out_dir, stem, footer)


__all__ = ["RULES", "boundary_figure", "model_figure", "model_table", "rules_figure"]
