"""The report: figures plus ``report.md`` for one run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from wsblock import atomic
from wsblock.analysis import cells as cellmod
from wsblock.analysis import tidy
from wsblock.errors import UsageError
from wsblock.schema import rundir
from wsblock.report import environment, fig_disconnects, fig_strips, fig_survival
from wsblock.report import html as htmlmod
from wsblock.report import markdown as md
from wsblock.report import recommendation, survival, tables
from wsblock.report.labels import keepalive_labels, keepalive_title
from wsblock.report.provenance import Provenance
from wsblock.schema.axes import seconds_label

REPORT_NAME = "report.md"
MAX_LISTED = 40  # failed cells listed by name; the rest are counted


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        markdown: ``report.md``.
        html: ``report.html``: the same report in one self-contained file.
        figures: Every figure file (PNG and SVG).
        csv: The tidy table copied next to the report.
        warnings: One line per file that could not be read, naming it.
    """

    markdown: Path
    html: Path | None = None
    figures: list[Path] = field(default_factory=list)
    csv: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _settings(records: list[Mapping[str, Any]]) -> dict[str, str]:
    """Load settings shared by the cells, as text; varying ones say so."""

    def values(key: str) -> list[Any]:
        found = {r["params"].get(key) for r in records if key in r.get("params", {})}
        return sorted(found, key=cellmod.timeout_sort_key)

    def text(key: str, unit: str = "") -> str:
        found = values(key)
        if not found:
            return "?"
        shown = [seconds_label(v).removesuffix(" s") if v is None else f"{float(v):g}" for v in found]
        joined = shown[0] if len(shown) == 1 else f"{' / '.join(shown)} (varies between cells)"
        return joined + (f" {unit}" if unit and shown != ["none"] else "")

    window = text("duration", "s")
    return {
        # No duration: each cell's window was sized to what it must observe.
        "window": "sized" if window == "none" else window,
        "warmup": text("warmup", "s"),
        "job_connections": text("job_connections"),
        "observers": text("observers"),
        "echo_interval": text("echo_interval_ms", "ms"),
        "ping_interval": text("ping_interval", "s"),
        "probe": text("probe_interval_ms", "ms"),
        "stall": text("stall_ms", "ms"),
        "close_timeout": text("close_timeout", "s"),
    }


def subtitle(settings: Mapping[str, str]) -> str:
    """One line saying what one cell measured."""
    window = ("window sized to each cell" if settings["window"] == "sized"
              else f"window {settings['window']} per cell")
    return (f"{window} after {settings['warmup']} warm-up; "
            f"{settings['job_connections']} job connections + {settings['observers']} observers "
            f"(echo every {settings['echo_interval']})")


def _single(records: list[Mapping[str, Any]], key: str) -> float | None:
    """The value of a setting shared by every cell, else None."""
    found = {r["params"].get(key) for r in records}
    if len(found) != 1:
        return None
    value = found.pop()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _job_ceiling(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    conns = _single(records, "job_connections")
    if not conns:
        return {}
    return {"ceiling": lambda size: conns * 1000.0 / size,
            "ceiling_label": (f"ceiling: {conns:g} connection{'' if conns == 1 else 's'} x 1000\n"
                              "/ target job ms (no waiting)")}


def _echo_ceiling(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    observers, interval = _single(records, "observers"), _single(records, "echo_interval_ms")
    if not observers or not interval:
        return {}
    rate = observers * 1000.0 / interval
    return {"ceiling": lambda size: rate,
            "ceiling_label": (f"schedule: {observers:g} observer{'' if observers == 1 else 's'} x 1000\n"
                              f"/ {interval:g} ms = {rate:g} echoes/s")}


def _figures(df: pd.DataFrame, cells: pd.DataFrame, skipped: list[cellmod.Skip], out_dir: Path, line: str,
             switch_ms: float | None, records: list[Mapping[str, Any]], footer: Provenance) -> dict[str, list[Path]]:
    out = {"disconnect_map": fig_disconnects.draw(cells, skipped, out_dir, line, footer)}
    specs = [
        fig_strips.loop_spec(switch_ms),
        fig_strips.StripSpec("throughput_jobs", "jobs_per_s", "Throughput: jobs per second",
                             "jobs per second", resolution=True, unit="jobs/s", **_job_ceiling(records)),
        fig_strips.StripSpec("throughput_echo", "echo_per_s",
                             "Throughput: observer echo replies per second",
                             "echo replies per second", resolution=True, unit="echoes/s",
                             **_echo_ceiling(records)),
        fig_strips.StripSpec("echo_p99", "echo_p99_ms",
                             "Observer echo latency p99 (from scheduled send time to reply)",
                             "echo latency p99 (ms, log scale)", log=True),
    ]
    for spec in specs:
        out[spec.stem] = fig_strips.draw(df, cells, skipped, out_dir, spec, line, footer=footer)
    out["survival_boundary"] = fig_survival.draw(cells, out_dir, line, footer)
    return out


def _stability(cells: pd.DataFrame) -> list[str]:
    """The report's list of unstable cells, with why."""
    lines = ["## Stability of the repeats", ""]
    measured = cells[cells["status"] == "ok"]
    few = measured[measured["ok_repeats"] < 3]
    unstable = measured[measured["unstable"].astype(bool)]
    lines.append(
        f"{len(measured)} measured cells; {len(unstable)} unstable (marked `!` in the tables and figures): "
        "a primary metric (loop lag p99, echo p99, jobs/s) varies more than 25 % (std / mean) over the "
        "repeats, by more than the metric's resolution, or some repeats lost connections and others did "
        f"not. {len(few)} cells have fewer than 3 measured repeats: their intervals say little and a "
        "comparison with them is `cannot tell`. The values of an unstable cell are real measurements, but "
        "a single repeat of it would not reproduce: quote its interval, not its median alone.")
    lines.append("")
    shown = unstable.head(MAX_LISTED)
    for _, row in shown.iterrows():
        lines.append(f"- {md.code(row['cell'])} ({int(row['ok_repeats'])} repeats): "
                     f"{md.escape(row['unstable_reasons'])}")
    if len(unstable) > len(shown):
        lines.append(f"- ... and {len(unstable) - len(shown)} more")
    return lines + [""]


STRIP_NOTE = (
    "Each dot is one repeat of the cell, the black bar the median over its repeats, the shaded band the "
    "interval of the median (order statistics: the range of the repeats with 3 to 5 of them, a 95 % interval "
    "from 6); `!` = unstable (listed under *Stability of the repeats*); hollow marks and `⚠` above a column "
    "= the cell carries warnings (their codes are listed under the summary tables; `docs/record.md`); an "
    "upward triangle instead of a dot = that repeat's value is only a lower bound (some of its echoes were "
    "lost with their connection, unanswered at the window end or missed while an observer reconnected), "
    "so the true value is at least as high and a low triangle never means a fast cell; "
    "every figure's footer names the run, "
    "the repeats per cell, the commit, the machine and the versions.")
"""What the strip figures draw, for their captions."""


def _captions(settings: Mapping[str, str], switch_ms: float | None) -> dict[str, str]:
    window = settings["window"]
    conns = (f"{settings['job_connections']} job connections (each keeps one job in flight) and "
             f"{settings['observers']} observer connections (each sends an echo every {settings['echo_interval']})")
    return {
        "disconnect_map": (
            f"Share of connections lost per cell. A cell ran for a {window} window with {conns}; a lost "
            "connection is one that ended with a close code other than 1000/1001 inside the window, seen by "
            "the load process; lost connections are reopened, and the share counts original connections "
            "only: the first connection of each load slot, not its reconnects (records before version 3: "
            "every connection open in the window). Each square gives the share pooled over the repeats "
            "(original connections lost / original connections, both summed over the repeats) and, below "
            "it, those two counts; the tables give its Wilson 95 % interval. Hatched squares were not "
            "measured: `failed` "
            "(error listed above), `skipped` (reason listed above), `not run` (not part of the run). "
            "† = repeats disagreed: some lost connections and others did not, so the pooled share is not a "
            "stable probability. Under the counts, the cell's survival verdict over its repeats: `kept` only "
            "when every repeat kept every connection through enough keepalive cycles to show it, `lost` when "
            "any repeat lost one, `inconclusive` when the window could not show survival (a share of 0 there "
            "is no claim that connections survive), `n/a` without keepalive pings. ⚠ = the cell carries "
            "warnings (codes under the summary tables)."),
        "loop_delay": (
            "How long the server's event loop kept a waiting task waiting, one value per repeat (the "
            "`loop_delay_ms` column; `docs/report.md`, *The loop figure*). Two instruments see the loop: a "
            f"probe in it sleeps {settings['probe']} and records how late it woke, one sample per wake-up, "
            "and a watchdog times every gap between the loop's heartbeats (a stall) exactly. A loop blocked "
            "for 3 s gives the probe one sample, or none when the stall spans the window's edge, so the "
            "probe's p99 or maximum can read a few ms for a loop that was blocked for seconds. A square is "
            "therefore the repeat's longest stall (`stall_max_ms`), drawn wherever the watchdog saw a stall "
            f"(a gap over {settings['stall']}); a dot is the probe's p99 (`lag_p99_ms`), drawn only where the "
            "loop never stalled and the probe had the 100 samples a p99 needs. A diamond: the probe woke fewer than 100 times "
            "and the watchdog saw no stall, so the figure is withheld and the diamond is the probe's "
            "maximum (`lag_max_ms`). Dashed lines: the keepalive budget, each ping_timeout in ms: a value "
            "above its line means a pong could wait longer than that timeout, so connections can be lost. "
            "Dotted line: "
            + (f"the GIL switch interval ({switch_ms:g} ms). " if switch_ms else
               "none: the cells ran with different switch intervals, named in the panel titles. ")
            + "x = the cell failed; o = measured, but nothing recorded; a triangle on the axis floor = a "
            "repeat at 0. Log scale. "
            + STRIP_NOTE),
        "throughput_jobs": (
            f"Job replies received by the load process inside the {window} window, per second; "
            f"{settings['job_connections']} job connections each keep one job in flight, so the "
            "ceiling (dash-dot line) is connections x 1000 / target job ms. Each panel has its own y scale; "
            "a dot at 0 is a measured zero (no job finished inside the window); one job more or less in the "
            "window moves a repeat by 1 / window (records that count whole jobs; newer records count the "
            "finished part of running jobs too); when that step is coarse, ticks on the y axis mark every value "
            "a repeat can take. x = the cell failed. "
            + STRIP_NOTE),
        "throughput_echo": (
            f"Echo replies received inside the window, per second; {settings['observers']} observers "
            f"each send every {settings['echo_interval']}, so an unblocked server answers "
            "observers x 1000 / interval per second (dash-dot line). x = the cell failed. "
            + STRIP_NOTE),
        "echo_p99": (
            "p99 of observer echo latency, measured from each echo's *scheduled* send time to its reply "
            "(a stall is not hidden by the sender waiting); echoes still unanswered when the window closed "
            "count with their waiting time so far; echoes on a connection that died are not in this "
            "statistic (`echo_lost` in `cells.csv`), so a repeat that lost, censored or missed echoes gives "
            "only a lower bound (a triangle). One p99 per repeat, log scale. x = the cell "
            "failed; o = no echo recorded. "
            + STRIP_NOTE),
        "survival_boundary": (
            "For each workload, strategy and keepalive setting: a marker at the largest work size (target ms "
            "per job) whose verdict is `kept` (every repeat kept every connection through enough keepalive "
            "cycles to show it), or on the bottom band (\"none kept\") when a size lost connections and no "
            "smaller one was kept; the bar above it reaches the smallest larger size that lost connections, "
            "or the top (\"above\") when none did: the true boundary lies somewhere along the bar, since "
            "nothing between the tested sizes was measured. Strategies stand side by side within a setting; "
            "no line joins settings. Missing: nothing measured, or every size inconclusive (no claim). A "
            "hollow marker: a larger size of the run has no measurement (failed, skipped or not run) or an "
            "inconclusive verdict, so the boundary may lie higher. The footer names what one cell measured "
            "and where the numbers come from."),
    }


def _counts(manifest: Mapping[str, Any] | None, df: pd.DataFrame, cells: pd.DataFrame,
            warnings: list[str]) -> list[str]:
    ok = int((df["status"] == "ok").sum())
    failed = df[df["status"] != "ok"]
    skipped = cellmod.skips(manifest)
    lines = ["## Cells", ""]
    planned = (manifest or {}).get("planned")
    lines.append(
        f"- records: {len(df)} ({ok} ok, {len(failed)} failed)"
        + (f"; planned: {planned}" if planned is not None else "")
        + f"; skipped: {len(skipped)}; files left out: {len(warnings)}"
    )
    low, high = int(cells["repeats"].min()), int(cells["repeats"].max())
    lines.append(f"- distinct cells (parameter combinations): {len(cells)}; records per cell: "
                 + (f"{low}" if low == high else f"{low} to {high}"))
    if len(failed):
        lines += ["", "Failed cells (no measurement):", ""]
        shown = failed.head(MAX_LISTED)
        for _, row in shown.iterrows():
            lines.append(f"- {md.code(row['cell_id'])} (repeat {row['repeat']}): {md.escape(row['error'])}")
        if len(failed) > len(shown):
            lines.append(f"- ... and {len(failed) - len(shown)} more (`status` and `error` in `cells.csv`)")
    if skipped:
        lines += ["", "Skipped cells (not run), grouped by workload, strategy and reason:", ""]
        lines += _skip_lines(skipped)
    if warnings:
        lines += ["", "Files left out of everything below (unreadable, or not records of this run):", ""]
        lines += [f"- {md.escape(w)}" for w in warnings]
    return lines


def _skip_lines(skipped: list[cellmod.Skip]) -> list[str]:
    groups: dict[tuple[str, str, str], list[cellmod.Skip]] = {}
    for skip in skipped:
        key = (str(skip.params.get("workload", "any workload")),
               str(skip.params.get("strategy", "any strategy")), skip.reason)
        groups.setdefault(key, []).append(skip)
    lines = []
    for (workload, strategy, reason), members in groups.items():
        # A function called once per job has no work size (work_ms null).
        sizes = sorted({float(s.params["work_ms"]) for s in members if s.params.get("work_ms") is not None})
        timeouts = sorted({s.params["ping_timeout"] for s in members if "ping_timeout" in s.params},
                          key=cellmod.timeout_sort_key)
        scope = []
        if sizes:
            scope.append("work " + ", ".join(md.size(x) for x in sizes) + " ms")
        if timeouts:
            scope.append("ping_timeout " + ", ".join(seconds_label(t) for t in timeouts))
        count = f"{len(members)} cell{'s' if len(members) != 1 else ''}"
        lines.append(f"- {workload} x {strategy}, {count} ({'; '.join(scope)}): {md.escape(reason)}")
    return lines


def _load(df: pd.DataFrame) -> list[str]:
    ok = df[df["status"] == "ok"]
    cpus = pd.to_numeric(df["machine_cpus"], errors="coerce").dropna()
    busy = pd.to_numeric(ok["machine_busy_cores"], errors="coerce").dropna()
    n = int(cpus.max()) if len(cpus) else None
    lines = ["## Machine load", ""]
    if n is None or busy.empty:
        return lines + ["No CPU measurements in the records.", ""]
    niced = (pd.to_numeric(ok["machine_niced_cores"], errors="coerce").fillna(0.0)
             if "machine_niced_cores" in ok else pd.Series(0.0, index=ok.index))
    own = pd.to_numeric(ok["machine_busy_cores"], errors="coerce") - niced
    hot = ok[own >= 0.9 * n]
    lines.append(
        f"The machine has {n} CPUs. Busy cores over each cell's window (whole machine, all processes): "
        f"median {busy.median():.2f}, max {busy.max():.2f}. "
        f"Cells at 90% or more of all cores (oversubscribed: server, workers and load compete, and "
        f"the numbers include that contention): {len(hot)} of {len(ok)}."
    )
    if niced.max() > 0:
        lines.append(
            f"Lower-priority (niced) processes ran beside {int((niced > 0.05).sum())} of {len(ok)} cells "
            f"(median {niced.median():.2f}, max {niced.max():.2f} cores): they yield the CPU to the cell's "
            "processes and are not counted as oversubscription, but they share caches and memory "
            "bandwidth (and on a virtual machine perhaps physical cores); `work.ratio_to_target` shows "
            "whether jobs ran slower."
        )
    if len(hot):
        lines.append("")
        shown = hot.sort_values(["machine_busy_cores", "cell_id"], ascending=[False, True]).head(10)
        lines += [f"- {md.code(r['cell_id'])} (repeat {r['repeat']}): {r['machine_busy_cores']:.2f} busy cores; "
                  f"server {r['server_cpu_util']:.2f}, workers {r['workers_cpu_util']:.2f}, "
                  f"load {r['load_cpu_util']:.2f}" for _, r in shown.iterrows()]
        if len(hot) > len(shown):
            lines.append(f"- ... and {len(hot) - len(shown)} more (see `cells.csv`)")
    return lines + [""]


def _advice(root: Path) -> list[str]:
    """The run's recommendation (``advice.md``, written by ``wsblock advise``), to open the report with."""
    from wsblock.schema.rundir import ADVICE_MD

    path = root / ADVICE_MD
    if not path.is_file():
        return []
    return path.read_text(encoding="utf-8").rstrip("\n").splitlines() + [""]


def read_run(run_dir: str | Path) -> tuple[rundir.Loaded, list[str]]:
    """Load a run directory for reporting.

    Returns:
        The loaded run and one warning per file left out (unreadable, or
        not a record of this run: :func:`wsblock.schema.rundir.load`).

    Raises:
        UsageError: If the directory is missing or holds no usable record.
    """
    root = Path(run_dir)
    loaded = rundir.load(root)
    warnings = [f"{_relative(path, root)}: {message}" for path, message in loaded.errors]
    if not loaded.records:
        if loaded.errors:
            raise UsageError(f"no readable records in {root} ({len(loaded.errors)} unreadable: {warnings[0]})")
        raise UsageError(f"no records in {root}")
    return loaded, warnings


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def build_report(run_dir: str | Path, out_dir: str | Path) -> ReportResult:
    """Render figures, ``report.md`` and ``report.html`` for a run directory.

    Args:
        run_dir: A run directory (``wsblock matrix`` output or a directory of
            records).
        out_dir: Where to write; created if missing. Existing files of the
            same names are replaced atomically.

    Returns:
        The written files and the warnings (unreadable records, by file name).

    Raises:
        UsageError: If ``run_dir`` is missing or holds no usable record.
    """
    root, out = Path(run_dir), Path(out_dir)
    loaded, warnings = read_run(root)
    records = [r for _, r in loaded.records]
    df = tidy.frame(loaded.records)
    cells = cellmod.aggregate(df)
    skipped = cellmod.skips(loaded.manifest)
    settings = _settings(records)
    # One reference line only when every cell ran with the same switch
    # interval; otherwise the panels name theirs (a varied axis).
    intervals = environment.switch_intervals_s(records)
    switch_ms = intervals[0] * 1000 if len(intervals) == 1 else None
    line = subtitle(settings)
    csv_path = out / tidy.CSV_NAME
    atomic.write_text(csv_path, tidy.to_csv_text(df))
    footer = Provenance.of_run(root, loaded.manifest, records)
    figures = _figures(df, cells, skipped, out, line, switch_ms, records, footer)
    captions = _captions(settings, switch_ms)
    reason = fig_survival.degenerate(cells)
    skipped_figures = {"survival_boundary": f"No figure: {reason}."} if reason else {}
    titles = {
        "disconnect_map": "Connections lost", "loop_delay": "Event-loop delay",
        "throughput_jobs": "Jobs per second", "throughput_echo": "Echo replies per second",
        "echo_p99": "Observer echo latency p99", "survival_boundary": "Survival boundary",
    }
    manifest = loaded.manifest or {}
    text = [f"# wsblock report: {root.resolve().name}", ""]
    text += _advice(root)
    text += recommendation.section(cells)
    text += ["## Run", ""]
    text.append(
        f"Each cell ran one workload x strategy x keepalive setting against a real websockets server in its "
        f"own process, for a {settings['window']} window after {settings['warmup']} of warm-up, with "
        f"{settings['job_connections']} job connections and {settings['observers']} observers (one echo "
        f"every {settings['echo_interval']} each); ping_interval {settings['ping_interval']}, close_timeout "
        f"{settings['close_timeout']}, loop probe every {settings['probe']}, a loop gap over "
        f"{settings['stall']} counts as a stall."
    )
    text.append("")
    # The command and paths are the user's text: shown as code, never as markup.
    text.append(f"- command: {md.code(manifest.get('command') or 'unknown (records without a manifest)')}")
    if manifest.get("profile"):
        text.append(f"- profile: {md.escape(manifest['profile'])}")
    if manifest.get("config_path"):
        text.append(f"- config: {md.code(manifest['config_path'])}")
    if manifest and not manifest.get("finished_utc"):
        text.append("- the run did not finish (no `finished_utc` in the manifest): results are partial")
    pairs = cellmod.keepalives(cells, skipped)
    text.append(f"- keepalive settings: {'; '.join(keepalive_labels(pairs))} "
                f"(labels give the {keepalive_title(pairs)})")
    text += ["", "## Environment", ""]
    text.append(md.table(["", "value"], [(label, md.escape(value)) for label, value in
                                         environment.describe(loaded.manifest, records)], align="ll"))
    for note in environment.differences(records):
        text.append(f"**Warning:** {md.escape(note)}.")
        text.append("")
    text += _counts(loaded.manifest, df, cells, warnings)
    text.append("")
    text += _load(df)
    text += _stability(cells)
    text += ["## Summary by workload", "", tables.summary_tables(cells, loaded.manifest)]
    text += ["## Survival boundary", ""]
    text.append(
        "Largest work size (target ms per job) whose verdict is `kept`, per ping_timeout: every repeat kept "
        "every connection through enough keepalive cycles to show it. A size that lost nothing in a window "
        "too short to show survival is `inconclusive` and never counts as kept. "
        f"Sizes in this run: {survival.sizes_tested(cells)}. `none survived`: a size lost connections and no "
        "smaller one was kept; `inconclusive`: no size was lost or kept (no claim); `no data`: no measured "
        "cell; `*`: a smaller size lost connections although this one was kept (noise or a finding; check "
        "the cells); `(X ms: inconclusive)`: larger sizes that lost nothing but could not show survival; "
        "`(X ms: no data)`: larger sizes without a measurement; either way the boundary may lie higher."
    )
    text += ["", survival.table(cells)]
    if reason:
        text += [f"No survival-boundary figure: {reason}.", ""]
    text += ["## Figures", ""]
    for stem, paths in figures.items():
        text.append(f"### {titles[stem]}")
        text.append("")
        pngs = [p for p in paths if p.suffix == ".png"]
        if not pngs:
            text += [skipped_figures.get(stem, "No figure."), ""]
            continue
        for png in pngs:
            text += [f"![{titles[stem]}]({png.name})", ""]
        vectors = ", ".join(f"[{p.name}]({p.name})" for p in paths if p.suffix == ".svg")
        text.append(captions[stem] + f" Vector version{'s' if len(pngs) > 1 else ''}: {vectors}.")
        text.append("")
    text.append(f"The tidy table behind every number: [`{tidy.CSV_NAME}`]({tidy.CSV_NAME}) "
                "(one row per record; `ping_timeout` none is written `none`).")
    markdown = out / REPORT_NAME
    body = "\n".join(text).rstrip("\n") + "\n"
    atomic.write_text(markdown, body)
    page = htmlmod.write(body, out, f"wsblock report: {root.resolve().name}")
    return ReportResult(markdown=markdown, html=page, figures=[p for paths in figures.values() for p in paths],
                        csv=csv_path, warnings=warnings)
