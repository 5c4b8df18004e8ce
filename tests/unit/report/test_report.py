"""The report: figures, report.md, the summary tables and the CLI entry."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import FIXTURES
from wsblock.analysis import tidy
from wsblock.analysis.cells import aggregate, keepalives
from wsblock.errors import UsageError
from wsblock.report import ReportResult, build_report
from wsblock.cli import build_parser, command_module
from wsblock.report.labels import keepalive_labels, keepalive_title
from wsblock.report.tables import summary_tables

RUN_A = FIXTURES / "run_a"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEMS = ("disconnect_map", "loop_delay", "throughput_jobs", "throughput_echo", "echo_p99", "survival_boundary")


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
    # 96 wake-ups, the largest 235 ms late; the watchdog timed a 236 ms stall: the stall is shown.
    assert thread["lag p99 ms"] == "stall 236"
    assert inline["loop delay ms"] == "3,000" and thread["loop delay ms"] == "236"
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
    return build_parser()


def _run(args: argparse.Namespace) -> int:
    return command_module(args.command).run(args)


def test_report_command_defaults_to_dir_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _small_run(tmp_path, count=1)
    args = _parser().parse_args(["report", str(run)])
    assert _run(args) == 0
    out = capsys.readouterr().out
    assert str(run / "report" / "report.md") in out
    assert (run / "report" / "disconnect_map.png").exists()


def test_report_command_rejects_a_missing_directory(tmp_path: Path) -> None:
    args = _parser().parse_args(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    with pytest.raises(UsageError) as info:
        _run(args)
    message = str(info.value)
    assert message[:1].islower() and not message.endswith(".") and "\n" not in message


def test_figures_read_warnings_lower_bounds_and_withheld_percentiles() -> None:
    from wsblock.report import fig_disconnects, fig_strips, plotting

    loaded = tidy.load_records(RUN_A)
    df = tidy.frame(loaded.records)
    cells = aggregate(df)
    keys = {r["cell"]: r for r in cells.to_dict("records")}
    echo = fig_strips._repeats(df, "echo_p99_ms")
    spec = fig_strips.loop_spec()
    lag = fig_strips._repeats(df, spec.column, spec.withheld, spec.watchdog)
    for key, found in echo.items():
        # A repeat is drawn as a lower bound exactly when its record says so.
        assert any(m[1] for m in found) == bool(keys[key]["echo_lower_bound"])
    for key, found in lag.items():
        if keys[key]["status"] == "ok":
            # Every measured cell has a loop figure: the loop delay, or a stand-in for it.
            assert found
            assert all(m[2] == (keys[key]["loop_delay_ms"] != keys[key]["loop_delay_ms"]) for m in found)
    here = plotting.panel_cells(cells, "pure_python", 2500.0)
    settings = keepalives(cells)
    state = fig_disconnects._state(here, [], workload="pure_python", size=2500.0, strategy="inline",
                                   keepalive=settings[0])
    assert state[0] == "ok" and state[4] == "lost" and state[5]
    state = fig_disconnects._state(here, [], workload="pure_python", size=2500.0, strategy="thread",
                                   keepalive=settings[1])
    assert state[4] == "inconclusive"


# The verdict, report.html, slide-sized figures and ``wsblock advise``.

def _verdict_rows(markdown: str) -> dict[tuple[str, str], dict[str, str]]:
    header, *rows = _tables(_section(markdown, "Verdict"))[0]
    return {(r[0], r[1]): dict(zip(header, r)) for r in rows}


def test_verdict_is_the_first_section_and_settings_follow(report: ReportResult) -> None:
    text = report.markdown.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:3] == ["Verdict", "Run", "Environment"]
    assert "Stability of the repeats" in headings  # the unstable cells stay listed


def test_verdict_statements_match_the_cells_they_summarise(report: ReportResult) -> None:
    cells = aggregate(tidy.frame(tidy.load_records(RUN_A).records))
    rows = _verdict_rows(report.markdown.read_text(encoding="utf-8"))
    assert set(rows) == {(v, s) for v, s in zip(cells["variant"], cells["strategy"])}
    for (variant, strategy), row in rows.items():
        mine = cells[(cells["variant"] == variant) & (cells["strategy"] == strategy)]
        measured = mine[mine["ok_repeats"] > 0]
        verdicts = list(measured["verdict"])
        word = row["verdict"].strip("*")
        if word == "drops connections":
            assert "lost" in verdicts
        else:
            assert "lost" not in verdicts
        if word == "inconclusive":
            assert any(v not in ("kept", "not_applicable") for v in verdicts)
        if word in ("safe", "slow loop", "cannot tell"):
            assert set(verdicts) <= {"kept", "not_applicable"}
        # Connections lost of those at risk, over the measured cells: a description, without an interval.
        k, n = int(measured["lost_k"].sum()), int(measured["lost_n"].sum())
        assert row["connections lost"] == f"{k} of {n}"
        # Survival is counted per repeat: the deciding cell's repeats with loss, k of n, with an interval.
        if word == "drops connections":
            assert re.match(r"^\d+ of \d+ \[[\d.]+, [\d.]+\], (reproducible|intermittent)$", row["repeats with loss"])
        kept = sum(v == "kept" for v in verdicts)
        assert row["cells"].startswith(f"{kept} kept, {verdicts.count('lost')} lost")
        # Every cell of the fixture has fewer than 3 repeats: the caveat says so.
        counts = sorted(int(c) for c in measured["ok_repeats"])
        each = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]} to {counts[-1]}"
        assert row["caveats"].startswith(f"{each} measured repeat")
        assert "per cell, fewer than 3" in row["caveats"]
    # What the fixture measured: inline lost connections with every workload;
    # the thread pool lost none, but its 2 s windows could not show survival.
    assert {s: rows[(w, s)]["verdict"] for w, s in rows if w == "pure_python"} == {
        "inline": "**drops connections**", "thread": "**inconclusive**"}


def test_verdict_sentences_name_their_cells_with_counts(report: ReportResult) -> None:
    section = _section(report.markdown.read_text(encoding="utf-8"), "Verdict")
    cells = aggregate(tidy.frame(tidy.load_records(RUN_A).records))
    bullet = next(line for line in section.splitlines() if line.startswith("- `inline` **drops connections**")
                  and "c_holds_gil" in line)
    row = cells[cells["cell"] == "c_holds_gil-200ms-inline-pi0.5-pt0.5"].iloc[0]
    assert row["verdict"] == "lost"
    assert f"lost in {int(row['repeats_lost_any'])} of {int(row['loss_repeats'])} repeats" in bullet
    assert f"({int(row['lost_k'])} of {int(row['lost_n'])} connections)" in bullet
    assert "`c_holds_gil-200ms-inline-pi0.5-pt0.5`" in bullet and "(n 1," in bullet


def _cells(**columns: object) -> "pd.DataFrame":
    import pandas as pd

    base = {"workload": "w", "variant": "w", "strategy": "thread", "work_ms": 100.0, "ping_interval": 1.0,
            "ping_timeout": 2.0, "cell": "w-100ms-thread-pi1-pt2", "ok_repeats": 3, "verdict": "kept",
            "lost_k": 0, "lost_n": 18, "repeats_lost_any": 0, "loss_repeats": 3, "unstable": False,
            "warnings": "", "stall_max_ms": 0.0, "stall_max_ms_low": 0.0, "stall_max_ms_high": 0.0,
            "stall_max_ms_n": 3, "stalled_share": 0.0, "stalled_share_n": 3, "stalls_count": 0.0,
            "stalls_count_low": 0.0, "stalls_count_n": 3, "repeats_stalled": 0, "lag_p99_ms": 1.5,
            "lag_p99_ms_n": 3, "lag_p50_ms": 0.1, "lag_p50_ms_n": 3, "lag_samples": 5000, "lag_samples_n": 3,
            "cycles_observed": 4, "cycles_observed_n": 3, "jobs_per_s": 19.0}
    return pd.DataFrame([{**base, **columns}])


@pytest.mark.parametrize(("columns", "expected"), [
    ({}, "safe"),
    ({"stalls_count": 4.0, "stalls_count_low": 3.0, "repeats_stalled": 3, "stall_max_ms": 230.0,
      "stalled_share": 0.2}, "slow loop"),
    ({"stalls_count": 1.0, "stalls_count_low": 0.0, "repeats_stalled": 2, "stall_max_ms": 60.0,
      "stalled_share": 0.005}, "safe"),  # not every repeat stalled, and far from the ping_timeout
    ({"ok_repeats": 2}, "cannot tell"),
    ({"unstable": True, "unstable_reasons": "echo_p99_ms varies 40% over repeats"}, "safe"),
    ({"warnings": "few_samples,oversubscribed"}, "safe"),  # busy cores can only make it harsher
    ({"warnings": "few_samples,load_saturated"}, "cannot tell"),
    ({"warnings": "few_samples"}, "safe"),
    ({"verdict": "inconclusive"}, "inconclusive"),
    ({"verdict": "not_applicable"}, "inconclusive"),
    ({"verdict": "lost", "lost_k": 1, "repeats_lost_any": 1, "ok_repeats": 1}, "drops connections"),
    ({"ok_repeats": 0, "verdict": None}, "no data"),
])
def test_recommend_rules(columns: dict[str, object], expected: str) -> None:
    from wsblock.analysis.recommend import recommend

    result = recommend(_cells(**columns))
    assert [a.verdict for a in result.advice] == [expected]


def test_calibration_drift_in_another_strategy_does_not_weaken_this_one() -> None:
    import pandas as pd

    from wsblock.analysis.recommend import recommend

    # The inline cell of the same workload saw its jobs run short of their
    # target: that says nothing about the thread cell's own measurement.
    cells = pd.concat([_cells(), _cells(strategy="inline", cell="w-100ms-inline-pi1-pt2",
                                        warnings="calibration_drift", work_ratio_to_target=0.7,
                                        work_ratio_to_target_min=0.7, work_ratio_to_target_max=0.7)])
    advice = {a.strategy: a for a in recommend(cells).advice}
    assert advice["thread"].verdict == "safe" and not advice["thread"].weak
    assert advice["inline"].verdict == "cannot tell"
    assert any("calibration_drift" in w and "w-100ms-inline-pi1-pt2" in w and "look safer" in w
               for w in advice["inline"].weak)


def test_recommend_pools_cells_and_cites_the_cell_that_lost_in_most_repeats() -> None:
    import pandas as pd

    from wsblock.analysis.recommend import recommend

    cells = pd.concat([
        _cells(),
        _cells(work_ms=500.0, cell="w-500ms-thread-pi1-pt2", verdict="lost", lost_k=4, lost_n=18,
               repeats_lost_any=2),
        _cells(work_ms=900.0, cell="w-900ms-thread-pi1-pt2", verdict="lost", lost_k=3, lost_n=18,
               repeats_lost_any=1),
    ], ignore_index=True)
    advice = recommend(cells).advice[0]
    assert advice.verdict == "drops connections"
    # The cell that lost in the most repeats decides: 2 of 3 is reproducible.
    assert advice.loss is not None and advice.loss.cell == "w-500ms-thread-pi1-pt2"
    assert (advice.loss_count.k, advice.loss_count.n) == (4, 18) and advice.loss_repeats == (2, 3)
    assert advice.loss_kind == "reproducible"
    assert advice.connections is not None and (advice.connections.k, advice.connections.n) == (7, 54)
    assert advice.reference is not None and advice.reference.work_ms == 900.0


def test_report_html_is_self_contained_and_matches_the_markdown(report: ReportResult) -> None:
    assert report.html is not None and report.html.name == "report.html"
    assert report.html.parent == report.markdown.parent
    page = report.html.read_text(encoding="utf-8")
    markdown = report.markdown.read_text(encoding="utf-8")
    assert "://" not in page  # no URL of any host: nothing to fetch
    assert re.search(r"<(link|iframe|object|embed)\b", page) is None
    assert re.findall(r'<script\b[^>]*\bsrc=', page) == []
    images = re.findall(r'<img src="([^"]+)"', page)
    pngs = [p for p in report.figures if p.suffix == ".png"]
    assert len(images) == len(pngs) == markdown.count("![")
    import base64

    svgs = sorted(p.read_bytes() for p in report.figures if p.suffix == ".svg")
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in images
                      if src.startswith("data:image/svg+xml;base64,"))
    assert embedded == svgs  # every figure, embedded whole
    assert page.count("<table>") == len(_tables(markdown))
    # The verdict comes first, as in the markdown, and carries the same rows.
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>Run</h2>") < page.index("<h2>Environment</h2>")
    for (variant, strategy) in _verdict_rows(markdown):
        assert re.search(rf"<td[^>]*>{re.escape(variant)}</td>\n<td[^>]*>{re.escape(strategy)}</td>", page)


def test_figures_fit_a_slide(report: ReportResult) -> None:
    from PIL import Image

    pngs = [path for path in report.figures if path.suffix == ".png"]
    assert len(pngs) >= 3, report.figures  # the loop, echo and throughput figures at least
    for path in pngs:
        if path.suffix == ".png":
            width, height = Image.open(path).size
            assert width <= 1600 and height <= 900, (path.name, width, height)
            assert width >= 900, path.name  # readable on a slide, not a thumbnail


def test_survival_figure_is_left_out_with_its_reason_for_one_work_size(tmp_path: Path) -> None:
    result = build_report(FIXTURES / "pandas_chunks", tmp_path / "out")
    assert not any(p.stem == "survival_boundary" for p in result.figures)
    text = result.markdown.read_text(encoding="utf-8")
    assert "No survival-boundary figure: the run has one work size (400 ms)" in text
    assert "](survival_boundary.png)" not in text
    assert "://" not in result.html.read_text(encoding="utf-8")


def test_advise_prints_the_verdict_and_rejects_a_bad_directory(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["advise", str(RUN_A)])
    assert _run(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("run_a: what the measurements say")
    for workload in ("pure_python", "blocking_io", "c_holds_gil"):
        assert f"\n{workload}\n  - inline DROPS CONNECTIONS, " in out
    assert "thread INCONCLUSIVE: 0 of 24 original connections lost" in out and "`" not in out
    for bad in (tmp_path / "nowhere", tmp_path):
        args = _parser().parse_args(["advise", str(bad)])
        with pytest.raises(UsageError, match="^(no such directory|no records)"):
            _run(args)


@pytest.mark.e2e
def test_advise_exits_2_with_one_error_line(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    proc = run_cli("advise", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: no such directory") and proc.stderr.count("\n") == 1


@pytest.mark.e2e
def test_report_html_renders_in_a_browser_without_network(report: ReportResult, tmp_path: Path) -> None:
    import os
    import subprocess

    from PIL import Image, ImageStat

    from tests.helpers import require_program

    browser = require_program("chromium", "chromium-browser", package="chromium")
    shot = tmp_path / "page.png"
    # A proxy that refuses every connection: a request for anything would fail.
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1400,2000",
         report.html.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERR_" not in proc.stderr and "Uncaught" not in proc.stderr
    image = Image.open(shot).convert("L")
    assert image.size == (1400, 2000)
    # Not blank: text and a table make the page far from uniform.
    assert ImageStat.Stat(image).stddev[0] > 20


def test_cells_that_differ_in_an_axis_no_figure_shows_get_their_own_variant() -> None:
    import pandas as pd

    from wsblock.analysis import cells as cellmod

    df = pd.DataFrame([{"workload": "w", "switch_interval_ms": v, "loop": "asyncio"} for v in (1.0, 20.0)])
    assert cellmod.varied_axes(df) == ["switch_interval_ms"]  # the loop did not vary
    labels = {cellmod.variant(r, [], cellmod.varied_axes(df)) for r in df.to_dict("records")}
    assert labels == {"w (switch_interval_ms=1)", "w (switch_interval_ms=20)"}
    assert cellmod.variant({"workload": "w"}, []) == "w"


def test_the_verdict_scope_names_functions_without_a_work_size() -> None:
    import pandas as pd

    from wsblock.report import recommendation

    base = {"ping_interval": 1.0, "ping_timeout": 1.0}
    sized = pd.DataFrame([{**base, "work_ms": 200.0}, {**base, "work_ms": 2500.0}])
    assert recommendation.scope(sized).startswith("work sizes 200, 2,500 ms; keepalive")
    functions = pd.DataFrame([{**base, "work_ms": float("nan")}, {**base, "work_ms": float("nan")}])
    text = recommendation.scope(functions)
    assert text.startswith("functions called once per job; keepalive") and "–" not in text
    mixed = pd.concat([sized, functions])
    assert recommendation.scope(mixed).startswith("work sizes 200, 2,500 ms and functions called once per job;")
