"""Compare two runs cell by cell, as a GitHub-markdown table.

Cells are matched by their parameters (workload, work size, strategy,
ping_interval, ping_timeout, workload parameters), never by file name, so a
run can be compared with a re-run on another machine or websockets version.
A mark column flags cells whose survival changed, the way ``asv compare``
flags changed benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from wsblock.analysis import tidy
from wsblock.report import cells as cellmod
from wsblock.report import environment
from wsblock.report import markdown as md
from wsblock.report.document import read_run

NOW_DISCONNECTS = "⚠ now disconnects"
NOW_SURVIVES = "✓ now survives"
FAILED_A = "✗ failed in A"
FAILED_B = "✗ failed in B"

METRICS = (
    ("lost", "disconnect_share", md.share),
    ("lag p99 ms", "lag_p99_ms", md.ms),
    ("echo p99 ms", "echo_p99_ms", md.ms),
    ("jobs/s", "jobs_per_s", md.number),
)


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


def mark(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The change mark of a matched cell (empty when survival did not change).

    A cell survives when every measured repeat kept every connection.
    """
    if a["status"] != "ok" and b["status"] == "ok":
        return FAILED_A
    if b["status"] != "ok" and a["status"] == "ok":
        return FAILED_B
    if a["status"] != "ok" and b["status"] != "ok":
        return "✗ failed in both"
    if _is(a["survived"], True) and _is(b["survived"], False):
        return NOW_DISCONNECTS
    if _is(a["survived"], False) and _is(b["survived"], True):
        return NOW_SURVIVES
    return ""


def _is(value: Any, flag: bool) -> bool:
    # ``survived`` is True, False or unknown (None/NaN): unknown matches neither.
    return not cellmod.is_none(value) and bool(value) == flag


def _side(cells: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["cell_key"]: row for row in cells.to_dict("records")}


def _value(row: Mapping[str, Any], column: str) -> Any:
    return row[column] if row["status"] == "ok" else None


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
        status = "failed" if row["status"] != "ok" else "ok"
        table_rows.append([describe_cell(row), status, md.share(_value(row, "disconnect_share")),
                           md.ms(_value(row, "lag_p99_ms")), md.ms(_value(row, "echo_p99_ms")),
                           md.number(_value(row, "jobs_per_s"))])
    return md.table(["cell", "status", "lost", "lag p99 ms", "echo p99 ms", "jobs/s"], table_rows,
                    align="llrrrr")


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
    cells_a = cellmod.aggregate(tidy.frame(loaded_a.records))
    cells_b = cellmod.aggregate(tidy.frame(loaded_b.records))
    side_a, side_b = _side(cells_a), _side(cells_b)
    order = list(dict.fromkeys([*side_a, *side_b]))
    # Both frames are sorted already; merge their orders the same way.
    order.sort(key=lambda k: _sort_key(side_a.get(k) or side_b[k]))
    matched = [k for k in order if k in side_a and k in side_b]
    only_a = [side_a[k] for k in order if k not in side_b]
    only_b = [side_b[k] for k in order if k not in side_a]

    rows, counts = [], {NOW_DISCONNECTS: 0, NOW_SURVIVES: 0, "failed": 0}
    for key in matched:
        a, b = side_a[key], side_b[key]
        change = mark(a, b)
        if change in counts:
            counts[change] += 1
        elif change:
            counts["failed"] += 1
        row = [change, describe_cell(a)]
        for _, column, fmt in METRICS:
            va, vb = _value(a, column), _value(b, column)
            row += [fmt(va), fmt(vb), md.ratio(va, vb)]
        rows.append(row)
    header = ["mark", "cell"]
    for label, _, _ in METRICS:
        header += [f"{label} A", f"{label} B", "B/A"]

    out = ["# wsblock compare", "",
           _header("A", path_a, loaded_a, warn_a), _header("B", path_b, loaded_b, warn_b), ""]
    out.append(
        "Cells are matched by workload, work size, strategy, keepalive setting (ping_interval, "
        "ping_timeout, client pings, handler ping_timeout) and workload parameters. Each value is the median over the cell's measured repeats: `lost` = share of "
        "connections lost (0..1), `lag p99` = server loop lag p99, `echo p99` = observer echo latency "
        "p99, `jobs/s` = job replies per second. B/A = B divided by A (`–` when A is 0 or a side has no "
        f"value). Marks: `{NOW_DISCONNECTS}` = every repeat of A kept every connection and B lost some; "
        f"`{NOW_SURVIVES}` = the reverse; `✗ failed` = no measurement on that side."
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
