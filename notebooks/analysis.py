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
# **To analyse another run, change `RUN_DIR` below** (or set the
# environment variable `WSBLOCK_RUN_DIR`). The defaults point at the committed
# reference study in `results/reference/`.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from IPython.display import Image, Markdown, display  # noqa: E402

from wsblock.analysis import tidy  # noqa: E402
from wsblock.engine import strategies  # noqa: E402
from wsblock.report import build_report  # noqa: E402
from wsblock.report import cells as cellmod  # noqa: E402
from wsblock.report import environment  # noqa: E402
from wsblock.report import markdown as md  # noqa: E402
from wsblock.report import survival  # noqa: E402
from wsblock.schema import metrics  # noqa: E402

REFERENCE = Path("..") / "results" / "reference"
RUN_DIR = Path(os.environ.get("WSBLOCK_RUN_DIR", REFERENCE / "default"))
PANDAS_RUN_DIR = Path(os.environ.get("WSBLOCK_PANDAS_RUN_DIR", REFERENCE / "pandas_chunks"))
FIGURES = Path(os.environ.get("WSBLOCK_FIGURES_DIR", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
pd.set_option("display.width", 160)
print(f"run: {RUN_DIR.resolve()}\nfigures: {FIGURES.resolve()}")

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
    """Display one of the report's PNG figures."""
    display(Image(filename=str(FIGURES / "report" / f"{stem}.png")))


# %% [markdown]
# ## 1. Which connections survived
#
# Share of connections lost inside the window, per strategy and ping_timeout,
# for each workload and work size. The load process counts a connection as
# lost when a close frame other than 1000/1001 is sent or received, or the TCP
# connection dies without one (1006).

# %%
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
# Loop lag is how late a 1 ms sleep in the server's loop woke up. It is
# sampled once per wake-up, so one long stall is one sample: the stall
# columns (gaps over `stall_ms`, timed from the loop's heartbeat and watched by
# a thread outside the loop) complete the picture.

# %%
show("loop_lag_p99")
lag = ok.pivot_table(index="workload", columns="strategy", values="lag_p99_ms", aggfunc="median")
lag = lag[[s for s in strategies.names() if s in lag.columns]]
lag.round(1)

# %%
stalls = ok.pivot_table(index="workload", columns="strategy", values="stall_max_ms", aggfunc="max")
stalls.round(0)

# %% [markdown]
# ## 3. The survival boundary against `ping_interval + ping_timeout`
#
# The rule of thumb: inline work longer than about `ping_interval +
# ping_timeout` ends in keepalive timeouts. Each point is the largest work
# size that kept every connection at one keepalive setting; the dashed line is
# work = budget. Points on the floor mean that no work size survived. Each
# cell is a single measurement: near the boundary, survival is a matter of
# timing (see the reference study's repeats), so read the trend, not a point.

# %%
# The boundaries are the report's (wsblock.report.survival); here they are
# drawn against the keepalive budget, for the strategies that run the work
# in the event loop.
in_loop = [s for s in strategies.names() if not strategies.has(s, "uses_pool")]
found = [b for b in survival.boundaries(cells) if b.strategy in in_loop and b.measured
         and b.keepalive.budget_s is not None]
fig, panels = plt.subplots(1, len(in_loop), figsize=(5.5 * len(in_loop), 4.2), sharey=True, squeeze=False)
names = sorted({b.variant for b in found})
for ax, strategy in zip(panels[0], in_loop):
    for index, name in enumerate(names):
        best = sorted((b.keepalive.budget_s * 1000,
                       0.0 if b.status != "ok" else b.max_ms)
                      for b in found if b.strategy == strategy and b.variant == name)
        if best:
            xs, ys = zip(*best)
            # Workloads often share a boundary: nudge lines apart so that
            # each stays visible (by 40 ms, far below the sizes tested).
            nudge = (index - 2) * 40
            ax.plot(xs, [y + nudge for y in ys], marker="o", label=name, color=f"C{index}")
    budgets = [b.keepalive.budget_s * 1000 for b in found]
    limit = max([*budgets, *cells["work_ms"].astype(float)]) * 1.1 if found else 1
    ax.plot([0, limit], [0, limit], ls="--", color="grey", lw=1, label="work = budget")
    ax.set_title(f"{strategy}: largest surviving work size")
    ax.set_xlabel("ping_interval + ping_timeout (ms)")
    ax.grid(alpha=0.3)
panels[0][0].set_ylabel("largest work size with no connection lost (ms)")
panels[0][0].legend(fontsize=8, title="workload (lines nudged apart)")
fig.suptitle("Survival boundary versus the keepalive budget (cells with ping_timeout none are left out)")
fig.tight_layout()
fig.savefig(FIGURES / "survival_vs_budget.png", dpi=110)
plt.show()

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
# section reads a second run that varies `pandas_chunksize` (set
# `PANDAS_RUN_DIR`; the reference study has one).

# %%
if PANDAS_RUN_DIR.exists():
    chunks = tidy.frame(tidy.load_records(PANDAS_RUN_DIR).records)
    chunks = chunks[chunks["status"] == "ok"]
    fig, panels = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, group in chunks.groupby("strategy"):
        g = group.groupby("pandas_chunksize")[["lag_p99_ms", "job_ms_p50"]].median()
        panels[0].plot(g.index, g["lag_p99_ms"], marker="o", label=strategy)
        panels[1].plot(g.index, g["job_ms_p50"], marker="o", label=strategy)
    for ax, label in zip(panels, [metrics.get("lag_p99_ms").label, metrics.get("job_ms_p50").label]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("read_csv chunksize (rows)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("pandas read_csv + groupby: chunk size versus loop lag and job time")
    fig.tight_layout()
    fig.savefig(FIGURES / "pandas_chunksize.png", dpi=110)
    plt.show()
    display(chunks.pivot_table(index="pandas_chunksize", columns="strategy",
                               values=["lag_p99_ms", "disconnect_share", "job_ms_p50"]).round(2))
else:
    print(f"no pandas chunk-size run at {PANDAS_RUN_DIR}; skipping this section")
