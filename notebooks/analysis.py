# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # wsblock analysis: blocking work in a websockets server
#
# This notebook reads a run directory written by `wsblock matrix` (records,
# manifest, tidy table) and walks through what it shows: which connections
# survived, how late the event loop ran, where the survival boundary lies
# against `ping_interval + ping_timeout`, what throughput and echo latency
# each strategy delivered, and what pandas' chunk size changes. It never
# re-runs work: every number comes from the records.
#
# **To analyse another run, set the environment variable `WSBLOCK_RUN_DIR`**
# before starting Jupyter (or change `RUN_DIR` below), for example
# `WSBLOCK_RUN_DIR=results/runs/quick`. Three variables are read, each a path
# that is absolute or relative to the repository root (wherever Jupyter was
# started):
#
# | variable | default | what |
# |---|---|---|
# | `WSBLOCK_RUN_DIR` | `results/reference/default` | the run directory analysed (a `wsblock matrix` output) |
# | `WSBLOCK_PANDAS_RUN_DIR` | `results/reference/pandas_chunks`, only while `WSBLOCK_RUN_DIR` is not set | a run that varies `pandas_chunksize`, for section 6 |
# | `WSBLOCK_FIGURES_DIR` | `notebooks/figures` | where the figures are written |
#
# Data of another run is never mixed in silently: with `WSBLOCK_RUN_DIR`
# set, section 6 reads `WSBLOCK_PANDAS_RUN_DIR` only if it is set too (or
# the run itself varies the chunk size), and a section without data says so.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

from wsblock.analysis import cells as cellmod
from wsblock.analysis import survival
from wsblock.analysis import tidy
from wsblock.engine import strategies
from wsblock.report import build_report
from wsblock.report import environment
from wsblock.report import markdown as md
from wsblock.report.survival import boundary_text
from wsblock.schema import metrics


def repository_root(start: Path) -> Path:
    """The checkout this notebook belongs to: the first directory up from ``start`` with pyproject.toml."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").exists() and (directory / "wsblock").is_dir():
            return directory
    return start


ROOT = repository_root(Path.cwd().resolve())


def path_from(variable: str, default: Path | None) -> Path | None:
    """The path an environment variable names (absolute, or relative to the repository root)."""
    text = os.environ.get(variable)
    if not text:
        return default
    path = Path(text).expanduser()
    return path if path.is_absolute() else ROOT / path


REFERENCE = ROOT / "results" / "reference"
RUN_DIR = path_from("WSBLOCK_RUN_DIR", REFERENCE / "default")
# The reference study's pandas run belongs with the reference study only.
PANDAS_RUN_DIR = path_from("WSBLOCK_PANDAS_RUN_DIR",
                           None if os.environ.get("WSBLOCK_RUN_DIR") else REFERENCE / "pandas_chunks")
FIGURES = path_from("WSBLOCK_FIGURES_DIR", ROOT / "notebooks" / "figures")
FIGURES.mkdir(parents=True, exist_ok=True)
pd.set_option("display.width", 160)
if not (RUN_DIR / "cells").is_dir() and not list(RUN_DIR.glob("*.json")):
    raise FileNotFoundError(f"no run directory at {RUN_DIR} (WSBLOCK_RUN_DIR is read relative to {ROOT})")
print(f"run: {RUN_DIR}\npandas chunk-size run: {PANDAS_RUN_DIR or 'none'}\nfigures: {FIGURES}")


def show_figure(fig, name: str) -> None:
    """Save one of this notebook's figures and show it inline.

    The PNG is displayed from the file, so the figure appears whatever
    matplotlib backend is active (``wsblock.report`` draws off-screen).
    """
    fig.tight_layout()
    fig.savefig(FIGURES / name, dpi=110)
    plt.close(fig)
    display(Image(filename=str(FIGURES / name)))

# %% [markdown]
# ## The run and its environment
#
# A number is only citable with the machine it was measured on. On a small
# machine, the server, its worker pool and the load process compete for the
# same cores: the `machine_busy_cores` column shows how close each cell came to
# that limit.

# %%
loaded = tidy.load_records(RUN_DIR)
for path, problem in loaded.errors:
    print(f"left out {path.name}: {problem}")
records = [r for _, r in loaded.records]
df = tidy.frame(loaded.records)
ok = df[df["status"] == "ok"].copy()
cells = cellmod.aggregate(df)
display(Markdown(md.table(["", "value"], environment.describe(loaded.manifest, records), align="ll")))
print(f"{len(df)} records, {len(ok)} measured, {len(df) - len(ok)} failed; "
      f"skipped as unsupported: {len((loaded.manifest or {}).get('skipped', []))}")

# %% [markdown]
# Every metric of the tidy table, as `wsblock.schema.metrics` declares it
# (unit, which way is better, whether asv tracks it):

# %%
display(Markdown(md.table(
    ["column", "unit", "better", "asv", "what"],
    [[m.column, m.unit, m.better, "yes" if m.asv else "", m.description] for m in metrics.METRICS],
    align="lllll")))

# %% [markdown]
# The standard report (the same figures as `wsblock report`) is drawn once
# here; the sections below show them and add analysis of their own.

# %%
report = build_report(RUN_DIR, FIGURES / "report")
print("\n".join(str(p) for p in report.figures if p.suffix == ".png"))


def show(stem: str) -> None:
    """Display one of the report's PNG figures, or say that the report has none of that name."""
    path = FIGURES / "report" / f"{stem}.png"
    if path.exists():
        display(Image(filename=str(path)))
    else:
        print(f"the report drew no {stem} figure for this run (its report.md says why)")


# %% [markdown]
# ## 1. Which connections survived
#
# Share of connections lost inside the window, per strategy and ping_timeout,
# for each workload and work size. The load process counts a connection as
# lost when a close frame other than 1000/1001 is sent or received, or the TCP
# connection dies without one (1006).

# %%
if ok.empty:
    print("this run has no measured cell: nothing below has data")
show("disconnect_map")
share = ok.pivot_table(index=["workload", "strategy"], columns="work_ms", values="disconnect_share",
                       aggfunc="median")
share

# %% [markdown]
# Who gave up first? With the default client (which sends its own pings), a
# blocked server cannot answer pings, so the *client* closes with 1011
# "keepalive ping timeout". Counts by initiator over all cells:

# %%
initiators = [m.column for m in metrics.METRICS if m.path[:2] == ("disconnects", "by_initiator")]
ok.groupby(["workload", "strategy"])[initiators].sum().astype(int)

# %% [markdown]
# ## 2. How late the event loop ran
#
# Two instruments see the loop. A probe in it sleeps 1 ms and records how late
# it woke, one sample per wake-up, so a loop blocked for 3 s gives it one
# sample (none when the stall spans the window's edge): its p99 can read a few
# ms for a loop that was blocked for seconds. A watchdog times every gap
# between the loop's heartbeats (a stall) exactly. The loop figure,
# `loop_delay_ms`, reads the watchdog wherever the loop stalled: the longest
# stall where the watchdog saw one, the probe's p99 only where the loop never
# stalled and the probe woke at least 100 times (`docs/report.md`, *The loop
# figure*). Dashed lines: each `ping_timeout`, the keepalive budget a blocked
# loop exceeds.

# %%
show("loop_delay")
delay = ok.pivot_table(index="workload", columns="strategy", values="loop_delay_ms", aggfunc="median")
delay = delay[[s for s in strategies.names() if s in delay.columns]]
delay.round(1)

# %% [markdown]
# What each instrument saw, per workload and strategy (medians over the
# repeats): the probe's p99 and its wake-ups, the longest stall and the share
# of the window stalled. Where `lag_samples` is small or `stalled_share` is
# large, the probe's p99 is not the figure to read.

# %%
seen = ok.groupby(["workload", "strategy"])[
    ["loop_delay_ms", "lag_p99_ms", "lag_samples", "stall_max_ms", "stalled_share"]].median()
seen.round(3)

# %% [markdown]
# ## 3. The survival boundary against `ping_interval + ping_timeout`
#
# The rule of thumb: inline work longer than about `ping_interval +
# ping_timeout` ends in keepalive timeouts. Each point is the largest work
# size that kept every connection at one keepalive setting; the dashed line is
# work = budget. Points on the floor mean that no work size survived; a
# setting whose cells could not decide survival (windows too short) is left
# out and listed under the figure. A size counts as kept only when every
# repeat of its cell kept every connection; near the boundary survival is a
# matter of timing, so read the trend, not a point.

# %%
# The boundaries are the ones the report draws (wsblock.analysis.survival); here they are
# drawn against the keepalive budget, for the strategies that run the work
# in the event loop.
in_loop = [s for s in strategies.names() if not strategies.has(s, "uses_pool")]
measured = [b for b in survival.boundaries(cells) if b.strategy in in_loop and b.measured
            and b.keepalive.budget_s is not None]
found = [b for b in measured if b.status in ("ok", survival.NONE_SURVIVED)]
undecided = [b for b in measured if b not in found]
if not found:
    print("no in-loop cell of this run decided survival at a finite keepalive budget: no boundary to draw")
else:
    fig, panels = plt.subplots(1, len(in_loop), figsize=(5.5 * len(in_loop), 4.2), sharey=True, squeeze=False)
    names = sorted({b.variant for b in found})
    markers = "osD^vP*X"
    for ax, strategy in zip(panels[0], in_loop):
        if not any(b.strategy == strategy for b in found):
            ax.text(0.5, 0.5, f"no {strategy} cell decided survival", transform=ax.transAxes,
                    ha="center", va="center", color="grey")
        for index, name in enumerate(names):
            best = sorted((b.keepalive.budget_s * 1000, b.max_ms if b.status == "ok" else 0.0)
                          for b in found if b.strategy == strategy and b.variant == name)
            if best:
                xs, ys = zip(*best)
                # Workloads often share a boundary: the lines are drawn at
                # their true values, with markers of decreasing size, so
                # that a shared point shows every workload on it.
                ax.plot(xs, ys, marker=markers[index % len(markers)], markersize=11 - 1.5 * (index % 5),
                        markerfacecolor="none", label=name, color=f"C{index}")
        budgets = [b.keepalive.budget_s * 1000 for b in found]
        limit = max([*budgets, *cells["work_ms"].astype(float)]) * 1.1
        ax.plot([0, limit], [0, limit], ls="--", color="grey", lw=1, label="work = budget")
        ax.set_title(f"{strategy}: largest surviving work size")
        ax.set_xlabel("ping_interval + ping_timeout (ms)")
        ax.grid(alpha=0.3)
    panels[0][0].set_ylabel("largest work size kept (ms; 0: none)")
    panels[0][0].legend(fontsize=8, title="workload")
    fig.suptitle("Survival boundary versus the keepalive budget")
    show_figure(fig, "survival_vs_budget.png")
for b in undecided:
    print(f"left out: {b.variant} x {b.strategy} at ping_interval {b.keepalive.ping_interval:g} s + "
          f"ping_timeout {b.keepalive.ping_timeout:g} s: {boundary_text(b)}")

# %%
show("survival_boundary")

# %% [markdown]
# ## 4. Throughput and echo latency
#
# Jobs per second (job replies received inside the window) and the observers'
# echo latency p99, measured from each echo's scheduled send time.

# %%
show("throughput_jobs")
show("echo_p99")
service = ok.groupby(["workload", "strategy"])[[m.column for m in metrics.in_table()]].median()
service.rename(columns={m.column: m.short for m in metrics.METRICS}).round(2)

# %% [markdown]
# ## 5. What a 100 ms ticker sees
#
# A common way to "monitor the event loop" is a periodic task that logs how
# late it runs. The server runs one (every 100 ms) beside the 1 ms probe and
# the watchdog. Compare the largest lateness each saw with the longest stall.

# %%
ticker_cols = [m.column for m in metrics.METRICS if m.path[0] == "ticker_lag_ms" and ok[m.column].notna().any()]
if ticker_cols:
    view = ok.groupby(["workload", "strategy"])[["lag_max_ms", "stall_max_ms", "stalls_count", *ticker_cols]].median()
    display(view.round(1))
else:
    print("this run has no ticker measurements")

# %% [markdown]
# ## 6. pandas: chunk size, with and without yielding
#
# "Use smaller chunks" only helps the event loop if the handler yields between
# chunks (`chunked`); `inline` reads the same chunks without yielding. This
# section needs a run that varies `pandas_chunksize`: the analysed run itself
# if it does, else the run `WSBLOCK_PANDAS_RUN_DIR` names (the reference
# study has one, `results/reference/pandas_chunks`, used by default only
# when the reference study is analysed).

# %%
def chunk_size_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The measured pandas cells of ``frame``, if they vary the chunk size."""
    if "pandas_chunksize" not in frame.columns:
        return frame.iloc[0:0]
    rows = frame[(frame["status"] == "ok") & (frame["workload"] == "pandas")]
    return rows if rows["pandas_chunksize"].nunique() > 1 else rows.iloc[0:0]


chunks, source = chunk_size_rows(df), RUN_DIR
if chunks.empty and PANDAS_RUN_DIR is not None and PANDAS_RUN_DIR.exists():
    chunks, source = chunk_size_rows(tidy.frame(tidy.load_records(PANDAS_RUN_DIR).records)), PANDAS_RUN_DIR
if chunks.empty:
    where = f"; {PANDAS_RUN_DIR} has none either" if PANDAS_RUN_DIR is not None else \
        "; set WSBLOCK_PANDAS_RUN_DIR to a run that does (results/reference/pandas_chunks, for example)"
    print(f"no pandas cells varying the chunk size in {RUN_DIR}{where}: this section has no data")
else:
    if source != RUN_DIR:
        print(f"NOTE: this section reads another run, {source}, not {RUN_DIR}")
    fig, panels = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, group in chunks.groupby("strategy"):
        g = group.groupby("pandas_chunksize")[["loop_delay_ms", "job_ms_p50"]].median()
        panels[0].plot(g.index, g["loop_delay_ms"], marker="o", label=strategy)
        panels[1].plot(g.index, g["job_ms_p50"], marker="o", label=strategy)
    for ax, label in zip(panels, [metrics.get("loop_delay_ms").label, metrics.get("job_ms_p50").label]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("read_csv chunksize (rows)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"pandas read_csv + groupby: chunk size versus loop delay and job time ({source.name})")
    show_figure(fig, "pandas_chunksize.png")
    display(chunks.pivot_table(index="pandas_chunksize", columns="strategy",
                               values=["loop_delay_ms", "disconnect_share", "job_ms_p50"]).round(2))
