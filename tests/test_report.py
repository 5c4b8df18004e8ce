"""The report: figures, report.md, the summary tables and the CLI entry."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest

from wsblock.analysis import tidy
from wsblock.errors import UsageError
from wsblock.report import ReportResult, build_report
from wsblock.report import cli as report_cli
from wsblock.report.cells import aggregate, keepalive_labels, keepalive_title, keepalives
from wsblock.report.tables import summary_tables

FIXTURES = Path(__file__).parent / "fixtures"
RUN_A = FIXTURES / "run_a"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEMS = ("disconnect_map", "loop_lag_p99", "throughput_jobs", "throughput_echo", "echo_p99", "survival_boundary")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    return build_report(RUN_A, tmp_path_factory.mktemp("report"))


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every markdown table: rows of cells, header first, rule dropped."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def test_every_figure_is_written_as_png_and_svg(report: ReportResult) -> None:
    names = {p.name for p in report.figures}
    assert names == {f"{stem}.{fmt}" for stem in STEMS for fmt in ("png", "svg")}
    for path in report.figures:
        data = path.read_bytes()
        assert len(data) > 5_000, path.name
        if path.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
        else:
            assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]


def test_report_markdown_links_figures_and_states_the_environment(report: ReportResult) -> None:
    text = report.markdown.read_text(encoding="utf-8")
    assert report.markdown.name == "report.md"
    for stem in STEMS:
        assert f"]({stem}.png)" in text and f"({stem}.svg)" in text
    env = dict((row[0], row[1]) for row in _tables(_section(text, "Environment"))[0][1:])
    assert env["websockets"] == "17.4"
    assert env["CPUs"] == "2"
    assert env["switch interval"].startswith("5 ms")
    assert "python tests/fixtures/make_fixtures.py --only a" in text
    assert report.warnings == []
    assert report.csv is not None and report.csv.exists()


def test_report_counts_failed_and_skipped_cells_with_reasons(report: ReportResult) -> None:
    cells = _section(report.markdown.read_text(encoding="utf-8"), "Cells")
    assert "1 failed" in cells and "skipped: 2" in cells
    assert "is in use" in cells  # the failed cell's error
    assert "c_holds_gil x chunked, 2 cells" in cells and "cannot be split" in cells


def test_summary_table_has_one_row_per_strategy(report: ReportResult) -> None:
    summary = _section(report.markdown.read_text(encoding="utf-8"), "Summary by workload")
    tables = _tables(summary)
    # 2 workloads x 2 sizes + c_holds_gil at one size.
    assert len(tables) == 5
    expected = {"pure_python": ["inline", "thread"], "blocking_io": ["inline", "thread"],
                "c_holds_gil": ["inline", "chunked", "thread"]}
    headings = re.findall(r"^### (\S+)$", summary, flags=re.M)
    per_workload = {"pure_python": 2, "blocking_io": 2, "c_holds_gil": 1}
    owners = [name for name in headings for _ in range(per_workload[name])]
    for owner, table in zip(owners, tables):
        assert [row[0].split()[0] for row in table[1:]] == expected[owner]
        assert table[0][:3] == ["strategy", "lost @ 0.5 s", "lost @ 2 s"]


def test_summary_tables_match_the_stored_reference(report: ReportResult) -> None:
    loaded = tidy.load_records(RUN_A)
    text = summary_tables(aggregate(tidy.frame(loaded.records)), loaded.manifest)
    reference = (FIXTURES / "report_table_reference.md").read_text(encoding="utf-8")
    assert text == reference, "regenerate with: python tests/fixtures/make_fixtures.py --references"
    assert reference in report.markdown.read_text(encoding="utf-8")


def test_survival_table_reads_the_records(report: ReportResult) -> None:
    section = _section(report.markdown.read_text(encoding="utf-8"), "Survival boundary")
    rows = {(r[0], r[1]): r[2:] for r in _tables(section)[0][1:]}
    # Measured: a thread pool kept every pure-Python connection at both sizes
    # at ping_timeout 0.5 s; the 2 s window could not show survival.
    assert rows[("pure_python", "thread")] == ["2,500 ms", "inconclusive"]
    assert "no data" in rows[("blocking_io", "thread")][1]  # its 2,500 ms cell failed
    # No survival is claimed where a verdict was inconclusive.
    for entries in rows.values():
        assert entries[1].startswith(("inconclusive", "none survived"))


def test_survival_table_says_none_survived_when_every_size_lost_connections() -> None:
    from wsblock.report import survival

    df = tidy.frame(tidy.load_records(RUN_A).records)
    # The table's logic, on the fixture with its pure_python inline cells
    # marked as having lost connections at every size.
    lost = (df["workload"] == "pure_python") & (df["strategy"] == "inline")
    df.loc[lost, "disconnect_share"] = 0.5
    df.loc[lost, "verdict"] = "lost"
    rows = {(r[0], r[1]): r[2:] for r in _tables(survival.table(aggregate(df)))[0][1:]}
    assert rows[("pure_python", "inline")] == ["none survived", "none survived"]
    assert rows[("pure_python", "thread")] == ["2,500 ms", "inconclusive"]


def test_survival_boundary_counts_only_kept_verdicts() -> None:
    from wsblock.report import survival

    df = tidy.frame(tidy.load_records(RUN_A).records)
    thread = (df["workload"] == "pure_python") & (df["strategy"] == "thread")
    df.loc[thread & (df["work_ms"] == 2500), "verdict"] = "inconclusive"
    rows = {(r[0], r[1]): r[2:] for r in _tables(survival.table(aggregate(df)))[0][1:]}
    assert rows[("pure_python", "thread")][0] == "200 ms (2,500 ms: inconclusive)"
    df.loc[thread, "verdict"] = "inconclusive"
    rows = {(r[0], r[1]): r[2:] for r in _tables(survival.table(aggregate(df)))[0][1:]}
    assert rows[("pure_python", "thread")] == ["inconclusive", "inconclusive"]


def test_summary_rows_show_verdicts_bounds_warnings_and_withheld_percentiles() -> None:
    loaded = tidy.load_records(RUN_A)
    cells = aggregate(tidy.frame(loaded.records))
    text = summary_tables(cells, loaded.manifest)
    pure = text.split("### pure_python", 1)[1].split("###", 1)[0]
    header, *rows = _tables(pure)[1]  # 2,500 ms per job
    by_strategy = {r[0].split()[0]: dict(zip(header, r)) for r in rows}
    inline, thread = by_strategy["inline"], by_strategy["thread"]
    # An inline cell lost a connection: the verdict says so,
    # and its echo p99 (the connections died) reads as a lower bound.
    assert inline["lost @ 0.5 s"].endswith(" lost")
    assert inline["echo p99 ms"].startswith("≥ ")
    assert inline["strategy"] == "inline ⚠"
    assert thread["lost @ 2 s"].endswith(" inconclusive")
    assert not thread["echo p99 ms"].startswith("≥")
    # The probe never woke inside the window: the stall stands in for the p99.
    assert inline["lag p99 ms"].startswith("stall ")
    assert "(max of " in thread["lag p99 ms"]
    assert "⚠ thread: @ 0.5 s: few_samples; @ 2 s: inconclusive_window, few_samples" in pure
    # Each loss entry states the cell's own verdict: `kept` only where it is kept.
    verdicts = {(r["variant"], r["strategy"], float(r["work_ms"]), float(r["ping_timeout"])): r["verdict"]
                for r in cells.to_dict("records") if isinstance(r["verdict"], str)}
    for (variant, strategy, size, timeout), verdict in verdicts.items():
        section = text.split(f"### {variant}\n", 1)[1].split("###", 1)[0]
        table = section.split(f"{size:g} ms per job", 1)[1]
        header, *rows = _tables(table)[0]
        row = dict(zip(header, next(r for r in rows if r[0].split()[0] == strategy)))
        assert row[f"lost @ {timeout:g} s"].split()[-1] == {"not_applicable": "n/a"}.get(verdict, verdict)


def test_keepalive_variants_are_separate_cells_and_labelled() -> None:
    loaded = tidy.load_records(RUN_A)
    rec = next(r for p, r in loaded.records if p.name == "pure_python-200ms-thread-pi0.5-pt2-r0.json")
    variant = json.loads(json.dumps(rec))
    variant["params"]["client_pings"] = False
    cells = aggregate(tidy.frame([rec, variant]))
    assert len(cells) == 2
    settings = keepalives(cells)
    assert keepalive_labels(settings) == ["2 s", "2 s, no client pings"]
    assert keepalive_title(settings) == "ping_timeout (ping_interval 0.5 s)"
    table = summary_tables(cells, None)
    assert "lost @ 2 s, no client pings" in table


def _small_run(tmp_path: Path, count: int = 3) -> Path:
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    shutil.copy(RUN_A / "manifest.json", run / "manifest.json")
    for path in sorted((RUN_A / "cells").glob("pure_python-200ms-*.json"))[:count]:
        shutil.copy(path, run / "cells" / path.name)
    return run


def test_corrupt_record_is_reported_by_name_and_the_rest_renders(tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    (run / "cells" / "broken-r0.json").write_bytes(b"\x00\x01 garbage {")
    result = build_report(run, tmp_path / "out")
    assert len(result.warnings) == 1 and result.warnings[0].startswith("cells/broken-r0.json:")
    text = result.markdown.read_text(encoding="utf-8")
    assert "cells/broken-r0.json" in text
    assert "records: 3 (3 ok, 0 failed)" in text
    for path in result.figures:
        assert path.stat().st_size > 5_000


def test_missing_empty_and_all_corrupt_directories_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        build_report(tmp_path / "nowhere", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no records"):
        build_report(empty, tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(UsageError, match="no readable records .*x.json"):
        build_report(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsblock")
    report_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def test_report_command_defaults_to_dir_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _small_run(tmp_path, count=1)
    args = _parser().parse_args(["report", str(run)])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert str(run / "report" / "report.md") in out
    assert (run / "report" / "disconnect_map.png").exists()


def test_report_command_rejects_a_missing_directory(tmp_path: Path) -> None:
    args = _parser().parse_args(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    with pytest.raises(UsageError) as info:
        args.handler(args)
    message = str(info.value)
    assert message[:1].islower() and not message.endswith(".") and "\n" not in message


def test_figures_read_warnings_lower_bounds_and_withheld_percentiles() -> None:
    from wsblock.report import fig_disconnects, fig_strips, plotting

    loaded = tidy.load_records(RUN_A)
    df = tidy.frame(loaded.records)
    cells = aggregate(df)
    keys = {r["cell_key"]: r for r in cells.to_dict("records")}
    echo = fig_strips._repeats(df, "echo_p99_ms")
    lag = fig_strips._repeats(df, "lag_p99_ms", ("lag_max_ms", "stall_max_ms"))
    for key, found in echo.items():
        # A repeat is drawn as a lower bound exactly when its record says so.
        assert any(b for _, b, _ in found) == bool(keys[key]["echo_lower_bound"])
    for key, found in lag.items():
        if keys[key]["status"] == "ok":
            # Every measured cell has a loop figure: a p99, or a stand-in for it.
            assert found
            assert all(s == (keys[key]["lag_p99_ms"] != keys[key]["lag_p99_ms"]) for _, _, s in found)
    here = plotting.panel_cells(cells, "pure_python", 2500.0)
    settings = keepalives(cells)
    state = fig_disconnects._state(here, [], workload="pure_python", size=2500.0, strategy="inline",
                                   keepalive=settings[0])
    assert state[0] == "ok" and state[4] == "lost" and state[5]
    state = fig_disconnects._state(here, [], workload="pure_python", size=2500.0, strategy="thread",
                                   keepalive=settings[1])
    assert state[4] == "inconclusive"
