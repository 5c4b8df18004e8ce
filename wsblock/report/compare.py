"""Compare two runs cell by cell, as a GitHub-markdown table.

Cells are matched by their parameters (workload, work size, strategy,
ping_interval, ping_timeout, workload parameters), never by file name, so a
run can be compared with a re-run on another machine or websockets version.
A mark column flags cells whose survival changed, the way ``asv compare``
flags changed benchmarks; the marks and the rule behind them come from
:mod:`wsblock.analysis.comparison`, shared with the asv comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from wsblock.analysis import comparison, tidy
from wsblock.analysis.comparison import FAILED, NOW_DISCONNECTS, NOW_SURVIVES
from wsblock.report import cells as cellmod
from wsblock.report import environment
from wsblock.report import markdown as md
from wsblock.report.document import read_run
from wsblock.schema import metrics

METRICS = metrics.in_compare()
"""The metrics shown (:func:`wsblock.schema.metrics.in_compare`)."""


def describe_cell(row: Mapping[str, Any]) -> str:
    """``pure_python 200 ms inline, ping 0.5 s / timeout 2 s`` (plus the
    keepalive variant when it is not the default)."""
    setting = cellmod.Keepalive.of(row)
    text = (f"{row['variant']} {float(row['work_ms']):g} ms {row['strategy']}, "
            f"ping {cellmod.seconds_label(setting.ping_interval)} / timeout "
            f"{cellmod.seconds_label(setting.ping_timeout)}")
    if not setting.client_pings:
        text += ", no client pings"
    if setting.handler_ping_timeout is not None:
        text += f", handler {cellmod.handler_label(setting.handler_ping_timeout)}"
    return text


def _sides(df: pd.DataFrame) -> dict[str, comparison.Side]:
    keys = cellmod.key_columns(df)
    return {str(k): v for k, v in comparison.sides(df, lambda row: cellmod.cell_key(row, keys)).items()}


def _header(name: str, directory: Path, loaded: tidy.Loaded, warnings: list[str]) -> str:
    records = [r for _, r in loaded.records]
    line = f"- **{name}** = `{directory.resolve().name}`: {environment.one_line(loaded.manifest, records)}"
    command = (loaded.manifest or {}).get("command")
    if command:
        line += f"; command `{command}`"
    if warnings:
        line += f"; {len(warnings)} unreadable file(s) left out: " + ", ".join(
            w.split(":", 1)[0] for w in warnings)
    return line


def _cells_only(rows: list[dict[str, Any]]) -> str:
    table_rows = []
    for row in rows:
        ok = row["status"] == "ok"
        table_rows.append([describe_cell(row), "ok" if ok else "failed",
                           *(md.for_metric(m)(row[m.column] if ok else None) for m in METRICS)])
    return md.table(["cell", "status", *(m.short for m in METRICS)], table_rows,
                    align="ll" + "r" * len(METRICS))


def compare(dir_a: str | Path, dir_b: str | Path) -> str:
    """Compare two run directories.

    Args:
        dir_a: The baseline run (A).
        dir_b: The run compared with it (B).

    Returns:
        GitHub markdown: a header naming both environments, the matched
        cells with A, B and B/A for lost share, loop lag p99, echo p99 and
        jobs/s plus a change mark, and the cells present in one run only.
        The text depends only on the two runs' records and manifests.

    Raises:
        UsageError: If a directory is missing or holds no usable record.
    """
    path_a, path_b = Path(dir_a), Path(dir_b)
    loaded_a, warn_a = read_run(path_a)
    loaded_b, warn_b = read_run(path_b)
    frame_a, frame_b = tidy.frame(loaded_a.records), tidy.frame(loaded_b.records)
    side_a = {row["cell_key"]: row for row in cellmod.aggregate(frame_a).to_dict("records")}
    side_b = {row["cell_key"]: row for row in cellmod.aggregate(frame_b).to_dict("records")}
    values_a, values_b = _sides(frame_a), _sides(frame_b)
    order = list(dict.fromkeys([*side_a, *side_b]))
    # Both frames are sorted already; merge their orders the same way.
    order.sort(key=lambda k: _sort_key(side_a.get(k) or side_b[k]))
    matched = [k for k in order if k in side_a and k in side_b]
    only_a = [side_a[k] for k in order if k not in side_b]
    only_b = [side_b[k] for k in order if k not in side_a]

    rows, counts = [], {NOW_DISCONNECTS: 0, NOW_SURVIVES: 0, "failed": 0}
    for key in matched:
        change = comparison.cell_mark(values_a[key], values_b[key])
        if change in FAILED:
            counts["failed"] += 1
        elif change:
            counts[change] += 1
        row = [change, describe_cell(side_a[key])]
        for metric in METRICS:
            verdict = comparison.decide(metric, values_a[key], values_b[key])
            fmt = md.for_metric(metric)
            row += [fmt(verdict.a), fmt(verdict.b), md.ratio(verdict.a, verdict.b)]
        rows.append(row)
    header = ["mark", "cell"]
    for metric in METRICS:
        header += [f"{metric.short} A", f"{metric.short} B", "B/A"]

    out = ["# wsblock compare", "",
           _header("A", path_a, loaded_a, warn_a), _header("B", path_b, loaded_b, warn_b), ""]
    out.append(
        "Cells are matched by workload, work size, strategy, keepalive setting (ping_interval, "
        "ping_timeout, client pings, handler ping_timeout) and workload parameters. Each value is the median over the cell's measured repeats: `lost` = share of "
        "connections lost (0..1), `lag p99` = server loop lag p99, `echo p99` = observer echo latency "
        "p99, `jobs/s` = job replies per second. B/A = B divided by A (`–` when A is 0 or a side has no "
        "value). Marks: " + comparison.legend([NOW_DISCONNECTS, NOW_SURVIVES, *FAILED])
    )
    out.append("")
    out.append(f"{len(matched)} cells in both runs: {counts[NOW_DISCONNECTS]} now disconnect, "
               f"{counts[NOW_SURVIVES]} now survive, {counts['failed']} with no measurement on a side; "
               f"{len(only_a)} only in A, {len(only_b)} only in B.")
    out.append("")
    if rows:
        out.append(md.table(header, rows, align="ll" + "r" * (len(header) - 2)))
    out += ["## Only in A", "", _cells_only(only_a) if only_a else "None.\n"]
    out += ["## Only in B", "", _cells_only(only_b) if only_b else "None.\n"]
    return "\n".join(out).rstrip("\n") + "\n"


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (cellmod.workload_key(row["workload"]), row["variant"], float(row["work_ms"]),
            cellmod.strategy_key(row["strategy"]), cellmod.timeout_sort_key(row["ping_interval"]),
            cellmod.timeout_sort_key(row["ping_timeout"]))
