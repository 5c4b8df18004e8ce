"""wsblock compare: two runs matched by cell parameters."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from wsblock.errors import UsageError
from wsblock.report import cli as report_cli
from wsblock.analysis.comparison import (
    BETTER, FAILED_A, FAILED_B, NOW_DISCONNECTS, NOW_SURVIVES, WORSE, Side, cell_mark, decide,
)
from wsblock.report.compare import compare
from wsblock.schema import metrics

FIXTURES = Path(__file__).parent / "fixtures"
RUN_A = FIXTURES / "run_a"
RUN_B = FIXTURES / "run_b"


def test_compare_matches_the_stored_reference() -> None:
    text = compare(RUN_A, RUN_B)
    reference = (FIXTURES / "compare_reference.md").read_text(encoding="utf-8")
    assert text == reference, "regenerate with: python tests/fixtures/make_fixtures.py --references"


def test_compare_is_deterministic_and_lists_one_sided_cells() -> None:
    text = compare(RUN_A, RUN_B)
    assert text == compare(RUN_A, RUN_B)
    only_a = text.split("## Only in A", 1)[1].split("## Only in B", 1)[0]
    only_b = text.split("## Only in B", 1)[1]
    assert "c_holds_gil 200 ms thread, ping 0.5 s / timeout 2 s" in only_a
    assert "pure_python 200 ms inline, ping 0.5 s / timeout none" in only_b
    assert "**A** = `run_a`" in text and "**B** = `run_b`" in text
    assert "websockets 17.4" in text


def test_compare_of_a_run_with_itself_has_no_marks_and_unit_ratios() -> None:
    text = compare(RUN_A, RUN_A)
    assert "0 now disconnect, 0 now survive" in text
    table = [line for line in text.splitlines()
             if line.startswith("| ") and " ms " in line and not line.startswith("| mark")]
    assert len(table) == 20
    for line in table:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells[0] in ("", "✗ failed in both"), line
        assert set(cells[4::3]) <= {"1.00", "–"}, line


def _cell(status: str = "ok", survived: object = True) -> Side:
    # A measured cell whose repeats lost no connection (survived), some
    # (not survived) or recorded no share at all (unknown).
    if status != "ok":
        return Side(row={}, repeats=1)
    share = {True: [0.0, 0.0], False: [0.0, 0.5]}.get(survived, [float("nan")])  # type: ignore[call-overload]
    return Side(row={}, values={"disconnect_share": share}, repeats=2)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_cell(survived=True), _cell(survived=False), NOW_DISCONNECTS),
        (_cell(survived=False), _cell(survived=True), NOW_SURVIVES),
        (_cell(survived=True), _cell(survived=True), ""),
        (_cell(survived=False), _cell(survived=False), ""),
        (_cell(survived=True), _cell(status="failed", survived=None), FAILED_B),
        (_cell(status="failed", survived=None), _cell(survived=True), FAILED_A),
        (_cell(survived=None), _cell(survived=True), ""),  # unknown: no claim
        (_cell(survived=float("nan")), _cell(survived=False), ""),
    ],
)
def test_marks_follow_survival(a: Side, b: Side, expected: str) -> None:
    assert cell_mark(a, b) == expected


def test_factor_marks_follow_each_metrics_direction() -> None:
    lag, jobs = metrics.get("lag_p99_ms"), metrics.get("jobs_per_s")

    def side(column: str, value: float) -> Side:
        return Side(row={}, values={column: [value]}, repeats=1)

    assert decide(lag, side("lag_p99_ms", 10), side("lag_p99_ms", 30), factor=1.5).mark == WORSE
    assert decide(lag, side("lag_p99_ms", 30), side("lag_p99_ms", 10), factor=1.5).mark == BETTER
    assert decide(lag, side("lag_p99_ms", 10), side("lag_p99_ms", 12), factor=1.5).mark == ""
    assert decide(jobs, side("jobs_per_s", 10), side("jobs_per_s", 30), factor=1.5).mark == BETTER
    assert decide(lag, side("lag_p99_ms", 10), side("lag_p99_ms", 30)).mark == ""  # no factor: no claim


def test_corrupt_record_in_one_run_is_named_in_the_header(tmp_path: Path) -> None:
    run = tmp_path / "b"
    shutil.copytree(RUN_B, run)
    (run / "cells" / "zz-broken.json").write_text("oops", encoding="utf-8")
    text = compare(RUN_A, run)
    assert "1 unreadable file(s) left out: cells/zz-broken.json" in text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsblock")
    report_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def test_compare_command_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.md"
    args = _parser().parse_args(["compare", str(RUN_A), str(RUN_B), "--out", str(out)])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text(encoding="utf-8")
    assert printed.startswith("# wsblock compare")


def test_compare_command_rejects_missing_and_empty_directories(tmp_path: Path) -> None:
    args = _parser().parse_args(["compare", str(RUN_A), str(tmp_path / "nowhere")])
    with pytest.raises(UsageError, match="no such directory"):
        args.handler(args)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = _parser().parse_args(["compare", str(empty), str(RUN_B)])
    with pytest.raises(UsageError, match="no records"):
        args.handler(args)
