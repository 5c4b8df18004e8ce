"""Figures and a comparison from asv results (``wsblock report --asv``).

asv stores one value per benchmark, parameter combination, commit and
environment. :func:`wsblock.analysis.asv_results.load_asv_results` turns them into
tidy-table rows; this module draws, for every commit and environment, the
figures a matrix report draws from the metrics asv tracks (disconnect map,
loop delay, echo p99, survival boundary), then compares the environments
(or commits) with each other: a markdown table with change marks and one
scatter figure per metric, each cell a point, baseline against contender.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from wsblock import atomic  # noqa: E402
from wsblock.analysis import cells as cellmod  # noqa: E402
from wsblock.analysis.asv_results import RUN_COLUMNS, compare_markdown, load_asv_results  # noqa: E402
from wsblock.errors import UsageError  # noqa: E402
from wsblock.report import fig_disconnects, fig_strips, fig_survival, plotting  # noqa: E402
from wsblock.report.provenance import Provenance, machine_text  # noqa: E402
from wsblock.schema import axes, metrics  # noqa: E402

SCATTER = tuple((m.column, m.label, m.unit == "ms") for m in metrics.asv_tracked())
"""``(column, label, log scale)`` of each panel of the comparison scatter: every metric asv tracks."""


@dataclass
class AsvReport:
    """What :func:`build_asv_report` wrote."""

    markdown: Path
    figures: list[Path] = field(default_factory=list)


def _label(row: pd.Series) -> str:
    version = row.get("websockets_version")
    env = f"websockets {version}" if isinstance(version, str) and version else str(row.get("env_name"))
    return f"{str(row.get('commit_hash'))[:8]} {env} on {row.get('machine')}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-")


def _footer(results_dir: Path, rows: pd.DataFrame) -> Provenance:
    """The provenance footer of one asv run's figures (machine from asv's ``machine.json``)."""
    first = rows.iloc[0]

    def joined(column: str, width: int = 0) -> str:
        values = sorted({str(v)[:width] if width else str(v) for v in rows[column].dropna()})
        return ", ".join(values) or "?"

    info: dict[str, Any] = {}
    try:
        info = json.loads((results_dir / str(first["machine"]) / "machine.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    date = first.get("date")
    return Provenance(
        run=f"asv {results_dir.resolve().name}", source=f"env {joined('env_name')}",
        repeats="each value the median of the profile's repeats",
        commit=joined("commit_hash", 12),
        machine=machine_text({"cpu": {"model": info.get("cpu") or first.get("machine"),
                                      "count": info.get("num_cpu")}}),
        python=joined("python"), websockets=joined("websockets_version"),
        date=f"{date:%Y-%m-%d} UTC" if isinstance(date, pd.Timestamp) and not pd.isna(date) else "date ?")


def _run_figures(rows: pd.DataFrame, out_dir: Path, subtitle: str,
                 footer: Provenance | None = None) -> tuple[list[Path], list[str]]:
    """The figures of one asv run, and a line per figure left out, saying why."""
    table = rows.drop(columns=[c for c in RUN_COLUMNS if c in rows]).copy()
    # asv tracks fewer columns than a record has; fill the cell identity with
    # the values a profile that does not vary an axis implies.
    defaults = {a.name: a.default for a in axes.AXES if a.asv == "varied"}
    for column, value in {**defaults, "repeat": 0, "error": None}.items():
        if column not in table:
            table[column] = pd.Series([value] * len(table), index=table.index, dtype=object)
    cells = cellmod.aggregate(table)
    figures = fig_disconnects.draw(cells, [], out_dir, subtitle, footer)
    left_out: list[str] = []
    loop = fig_strips.loop_spec(switch_interval_ms=5.0, per_repeat=False)
    if loop.column in table and table[loop.column].notna().any():
        figures += fig_strips.draw(table, cells, [], out_dir, loop, subtitle, footer=footer)
    else:
        # The probe's p99 alone would understate a blocked loop: no figure rather than a flattering one.
        left_out.append(f"No loop figure: these results predate `{loop.column}` (the loop delay); the "
                        "probe's p99 alone can understate a blocked loop, so it is not drawn in its place.")
    figures += fig_strips.draw(table, cells, [], out_dir, fig_strips.StripSpec(
        "echo_p99", "echo_p99_ms", "Observer echo latency p99 (from scheduled send time to reply)",
        "echo latency p99 (ms, log scale)", log=True), subtitle, footer=footer)
    figures += fig_survival.draw(cells, out_dir, subtitle, footer)
    reason = fig_survival.degenerate(cells)
    return figures, left_out + ([f"No survival-boundary figure: {reason}."] if reason else [])


def _scatter(df: pd.DataFrame, by: str, baseline: str, contender: str, out_dir: Path,
             results_dir: Path) -> list[Path]:
    keys = [a.name for a in axes.AXES if a.name in df.columns]
    # Results stored before a metric was tracked have no value for it.
    panels = [p for p in SCATTER if p[0] in df and df[p[0]].notna().any()]
    a = df[df[by].astype(str) == baseline].groupby(keys, dropna=False)[[m for m, _, _ in panels]].median()
    b = df[df[by].astype(str) == contender].groupby(keys, dropna=False)[[m for m, _, _ in panels]].median()
    both = a.join(b, lsuffix="_a", rsuffix="_b", how="inner").reset_index()
    # Rows of at most three panels, within a slide.
    nrows = max(1, -(-len(panels) // 3))
    ncols = max(1, -(-len(panels) // nrows))  # four panels: 2 x 2, not 3 + 1
    fig, grid = plt.subplots(nrows, ncols, figsize=(min(plotting.SLIDE_W, 4.3 * ncols),
                                                    min(plotting.SLIDE_H - plotting.FOOTER_H, 3.3 * nrows + 0.7)),
                             squeeze=False, layout="constrained")
    for ax in grid.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (metric, label, log) in zip(grid.flat, panels):
        xs, ys = both[f"{metric}_a"], both[f"{metric}_b"]
        for strategy, group in both.groupby("strategy"):
            ax.scatter(group[f"{metric}_a"], group[f"{metric}_b"], label=strategy,
                       color=plotting.strategy_colour(strategy), marker=plotting.strategy_marker(strategy))
        finite = pd.concat([xs, ys]).dropna()
        if len(finite):
            low = max(finite[finite > 0].min() / 2, 1e-3) if log and (finite > 0).any() else 0.0
            high = finite.max() * 1.5 if finite.max() > 0 else 1.0
            ax.plot([low, high], [low, high], ls="--", color="grey", lw=1)
            if log and (finite > 0).any():
                ax.set_xscale("log")
                ax.set_yscale("log")
        ax.set_xlabel(f"{baseline}: {label}")
        ax.set_ylabel(f"{contender}: {label}")
        ax.grid(alpha=0.3, which="both")
    grid[0][0].legend(title="strategy", fontsize=8)
    plotting.title(fig, f"{by}: {contender} against {baseline}",
                   "one point per cell (median over the runs of that cell); dashed: no change; "
                   "above the line = worse in the contender (every metric here is lower-is-better)")
    runs = df[df[by].astype(str).isin([baseline, contender])]
    return plotting.save(fig, out_dir, f"compare_{_slug(by)}", _footer(results_dir, runs))


def build_asv_report(results_dir: str | Path, out_dir: str | Path, by: str | None = None) -> AsvReport:
    """Draw figures for every asv run and compare the runs.

    Args:
        results_dir: asv's ``results_dir`` (for example ``results/asv``).
        out_dir: Where to write (created if missing).
        by: Column that tells the runs apart for the comparison
            (``websockets_version``, ``env_name``, ``commit_hash`` or
            ``machine``); default: the first of those with two or more values.

    Raises:
        UsageError: If there are no results, or ``by`` is unknown.
    """
    df = load_asv_results(results_dir)
    if df.empty:
        raise UsageError(f"no benchmark results in {results_dir}")
    out = Path(out_dir)
    report = AsvReport(markdown=out / "asv-report.md")
    text = [f"# wsblock asv report: {Path(results_dir)}", ""]
    text.append("Values tracked by the asv suite (one measurement per cell and asv run; lower is better).")
    text.append("")
    for _, rows in df.groupby(["commit_hash", "env_name", "machine"], sort=True):
        label = _label(rows.iloc[0])
        sub = out / _slug(label)
        figures, left_out = _run_figures(rows, sub, f"asv run: {label}; one value per cell (the median over the "
                                         "profile's repeats)", _footer(Path(results_dir), rows))
        report.figures += figures
        text += [f"## {label}", ""]
        text += [f"- ![{p.stem}]({p.relative_to(out)})" for p in figures if p.suffix == ".png"]
        text += [f"- {line}" for line in left_out]
        text.append("")
    candidates = [c for c in ("websockets_version", "env_name", "commit_hash", "machine")
                  if df[c].astype(str).nunique() > 1]
    if by is not None and by not in ("websockets_version", "env_name", "commit_hash", "machine"):
        raise UsageError(f"unknown --by {by!r} (choose from websockets_version, env_name, commit_hash, machine)")
    by = by or (candidates[0] if candidates else None)
    if by is not None and df[by].astype(str).nunique() > 1:
        values = sorted(df[by].astype(str).unique())
        baseline, contender = values[0], values[-1]
        text += [f"## Comparison by {by}: {contender} against {baseline}", ""]
        text.append(compare_markdown(df, by=by))
        text.append("")
        figures = _scatter(df, by, baseline, contender, out, Path(results_dir))
        report.figures += figures
        text += [f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"]
    else:
        text.append("Only one run: nothing to compare.")
    text.append("")
    atomic.write_text(report.markdown, "\n".join(text))
    return report


__all__ = ["AsvReport", "build_asv_report"]
