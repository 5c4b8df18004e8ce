"""Compare two runs cell by cell, as a GitHub-markdown table.

Cells are matched by their parameters (workload, work size, strategy,
ping_interval, ping_timeout, workload parameters), never by file name, so a
run can be compared with a re-run on another machine or websockets version.
Each compared metric gets a verdict from the change test (``better``,
``worse``, ``no change``, ``cannot tell``) and a mark, the way ``asv compare``
flags changed benchmarks; the rule comes from
:mod:`wsblock.analysis.comparison`, shared with the asv comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from wsblock.analysis import cells as cellmod
from wsblock.analysis import comparison, tidy
from wsblock.analysis import intervals as iv
from wsblock.report import environment
from wsblock.report import markdown as md
from wsblock.schema import rundir
from wsblock.report.document import read_run
from wsblock.schema import metrics
from wsblock.schema.axes import handler_label, seconds_label

METRICS = metrics.in_compare()
"""The metrics shown (:func:`wsblock.schema.metrics.in_compare`)."""


def describe_cell(row: Mapping[str, Any]) -> str:
    """``pure_python 200 ms inline, ping 0.5 s / timeout 2 s`` (plus the
    keepalive variant when it is not the default)."""
    setting = cellmod.Keepalive.of(row)
    text = (f"{row['variant']} {float(row['work_ms']):g} ms {row['strategy']}, "
            f"ping {seconds_label(setting.ping_interval)} / timeout "
            f"{seconds_label(setting.ping_timeout)}")
    if not setting.client_pings:
        text += ", no client pings"
    if setting.handler_ping_timeout is not None:
        text += f", handler {handler_label(setting.handler_ping_timeout)}"
    return text


def _sides(df: pd.DataFrame) -> dict[str, comparison.Side]:
    with_cell = df.assign(cell=tidy.cell_ids(df))
    return {str(k): v for k, v in comparison.sides(with_cell, lambda row: row["cell"]).items()}


def _header(name: str, directory: Path, loaded: rundir.Loaded, warnings: list[str]) -> str:
    records = [r for _, r in loaded.records]
    line = (f"- **{name}** = {md.code(directory.resolve().name)}: "
            f"{md.escape(environment.one_line(loaded.manifest, records))}")
    command = (loaded.manifest or {}).get("command")
    if command:
        line += f"; command {md.code(command)}"
    if warnings:
        line += f"; {len(warnings)} file(s) left out (unreadable, or not of this run): " + ", ".join(
            md.escape(w.split(":", 1)[0]) for w in warnings)
    return line


def _cells_only(rows: list[dict[str, Any]]) -> str:
    table_rows = []
    for row in rows:
        ok = row["status"] == "ok"
        table_rows.append([md.escape(describe_cell(row)), "ok" if ok else "failed",
                           *(md.for_metric(m)(row[m.column] if ok else None) for m in METRICS)])
    return md.table(["cell", "status", *(m.short for m in METRICS)], table_rows,
                    align="ll" + "r" * len(METRICS))


@dataclass
class Matched:
    """Two runs read and matched cell by cell.

    Attributes:
        paths: The run directories, A then B.
        loaded: The runs as read.
        warnings: Unreadable files of each run.
        cells: Cell id -> aggregated row, for A and for B.
        values: Cell id -> the cell's repeats, for A and for B.
        matched: Cells in both runs, in report order.
        only_a: Cells only in A.
        only_b: Cells only in B.
    """

    paths: tuple[Path, Path]
    loaded: tuple[rundir.Loaded, rundir.Loaded]
    warnings: tuple[list[str], list[str]]
    cells: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]
    values: tuple[dict[str, comparison.Side], dict[str, comparison.Side]]
    matched: list[str]
    only_a: list[str]
    only_b: list[str]

    def changes(self, key: str) -> list[comparison.MarkedChange]:
        """The change test on every compared metric of a matched cell."""
        return [comparison.decide(m, self.values[0][key], self.values[1][key], cell=key) for m in METRICS]


def match(dir_a: str | Path, dir_b: str | Path) -> Matched:
    """Read two run directories and match their cells.

    Raises:
        UsageError: If a directory is missing or holds no usable record.
    """
    path_a, path_b = Path(dir_a), Path(dir_b)
    loaded_a, warn_a = read_run(path_a)
    loaded_b, warn_b = read_run(path_b)
    frame_a, frame_b = tidy.frame(loaded_a.records), tidy.frame(loaded_b.records)
    side_a = {row["cell"]: row for row in cellmod.aggregate(frame_a).to_dict("records")}
    side_b = {row["cell"]: row for row in cellmod.aggregate(frame_b).to_dict("records")}
    order = list(dict.fromkeys([*side_a, *side_b]))
    # Both frames are sorted already; merge their orders the same way.
    order.sort(key=lambda k: _sort_key(side_a.get(k) or side_b[k]))
    return Matched(
        (path_a, path_b), (loaded_a, loaded_b), (warn_a, warn_b), (side_a, side_b),
        (_sides(frame_a), _sides(frame_b)),
        [k for k in order if k in side_a and k in side_b],
        [k for k in order if k not in side_b], [k for k in order if k not in side_a])


def _value_text(change: comparison.MarkedChange, metric: Any, side: int) -> str:
    test = change.test
    value, (low, high) = (test.a, test.a_interval) if side == 0 else (test.b, test.b_interval)
    count = test.a_count if side == 0 else test.b_count
    repeats = test.a_n if side == 0 else test.b_n
    if count is not None:
        return md.proportion(count[0], count[1], low, high, repeats)
    text = md.estimate(value, low, high, repeats, md.for_metric(metric))
    bound = test.a_lower_bound if side == 0 else test.b_lower_bound
    return f"≥ {text}" if bound and not md.is_missing(value) else text


def compare(dir_a: str | Path, dir_b: str | Path) -> str:
    """Compare two run directories.

    Args:
        dir_a: The baseline run (A).
        dir_b: The run compared with it (B).

    Returns:
        GitHub markdown: a header naming both environments; per matched
        cell and compared metric (share of connections lost, loop lag p99,
        echo p99, jobs/s) both values with their intervals and repeats, the
        ratio B/A, the verdict of the change test and a mark; then the cells
        present in one run only. The text depends only on the two runs'
        records and manifests.

    Raises:
        UsageError: If a directory is missing or holds no usable record.
    """
    m = match(dir_a, dir_b)
    rows: list[list[str]] = []
    marks: dict[str, int] = {}
    words = {v: 0 for v in iv.OUTCOMES}
    for key in m.matched:
        label = md.escape(describe_cell(m.cells[0][key]))
        for metric, change in zip(METRICS, m.changes(key)):
            if change.mark:
                marks[change.mark] = marks.get(change.mark, 0) + 1
            words[change.outcome] += 1
            rows.append([change.mark, label, metric.short, _value_text(change, metric, 0),
                         _value_text(change, metric, 1), md.ratio_value(change.ratio), change.outcome])
    out = ["# wsblock compare", "",
           _header("A", m.paths[0], m.loaded[0], m.warnings[0]),
           _header("B", m.paths[1], m.loaded[1], m.warnings[1]), ""]
    out.append(
        "Cells are matched by workload, work size, strategy, keepalive setting (ping_interval, "
        "ping_timeout, client pings, handler ping_timeout) and workload parameters. A value is the median "
        "over the cell's measured repeats with its interval (order statistics: the range of the repeats "
        "with 3 to 5 of them, a 95 % interval from 6) and the number of repeats; `lost` is original connections "
        "lost of original connections (the first connection of each load slot; records before version 3: "
        "every connection open in the window), pooled over the repeats, with the share and its Wilson 95 % "
        "interval. B/A = B divided by A, both raised to the metric's resolution (`–` when a side has no "
        "value). `≥` before a value: a lower bound (some repeat's echoes were lost with their connection, "
        "unanswered at the window end or never sent while an observer reconnected, or its jobs were still "
        "running at the stop); a change whose better side is a lower bound is `cannot tell`, so a cell is "
        "never ranked better because its connections died. " + comparison.TEST)
    out.append("")
    used = [mark for mark in comparison.MARKS if mark in marks]
    out.append("Marks: " + (comparison.legend(used) if used else "none."))
    out.append("")
    out.append(f"{len(m.matched)} cells in both runs, {len(rows)} (cell, metric) pairs: "
               + ", ".join(f"{words[v]} {v}" for v in (iv.WORSE, iv.BETTER, iv.NO_CHANGE, iv.CANNOT_TELL))
               + f"; cells only in A: {len(m.only_a)}, only in B: {len(m.only_b)}.")
    out.append("")
    if rows:
        out.append(md.table(["mark", "cell", "metric", "A", "B", "B/A", "verdict"], rows, align="lllrrrl"))
    out += ["## Only in A", "", _cells_only([m.cells[0][k] for k in m.only_a]) if m.only_a else "None.\n"]
    out += ["## Only in B", "", _cells_only([m.cells[1][k] for k in m.only_b]) if m.only_b else "None.\n"]
    return "\n".join(out).rstrip("\n") + "\n"


def compare_json(dir_a: str | Path, dir_b: str | Path) -> list[dict[str, Any]]:
    """The changes of :func:`compare` as JSON-ready objects.

    Returns:
        One object per matched cell and compared metric: ``cell`` (the cell
        id), ``metric`` (the tidy column), ``a``, ``b``, ``a_interval``,
        ``b_interval`` (``[low, high]``), ``ratio``, ``verdict``, plus
        ``a_n``, ``b_n`` (repeats), ``a_confidence``, ``b_confidence``,
        ``p_value``, ``mark`` and, for the loss, ``a_count``/``b_count``
        (``[lost, at risk]``). Missing numbers are null.
    """
    m = match(dir_a, dir_b)
    out = []
    for key in m.matched:
        for change in m.changes(key):
            out.append({**change.test.as_dict(), "mark": change.mark})
    return out


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (cellmod.workload_key(row["workload"]), row["variant"], float(row["work_ms"]),
            cellmod.strategy_key(row["strategy"]), cellmod.timeout_sort_key(row["ping_interval"]),
            cellmod.timeout_sort_key(row["ping_timeout"]))
