"""wsblock compare: two runs matched by cell parameters."""

from __future__ import annotations

import re

import argparse
import shutil
from pathlib import Path

import pytest

from tests.helpers import FIXTURES
from wsblock.errors import UsageError
from wsblock.cli import build_parser, command_module
from wsblock.analysis import intervals as iv
from wsblock.analysis.comparison import (
    BETTER, FAILED_A, FAILED_B, FAILED_BOTH, NOW_DISCONNECTS, NOW_SURVIVES, WORSE, Side, cell_mark, decide,
)
from wsblock.report.compare import METRICS, compare, compare_json
from wsblock.schema import metrics

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
    assert "0 worse, 0 better" in text
    table = [line for line in text.split("## Only in A")[0].splitlines()
             if line.startswith("| ") and not line.startswith(("| mark", "| :---"))]
    assert len(table) == 20 * len(METRICS)
    for line in table:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells[0] in ("", FAILED_BOTH), line
        assert cells[5] in ("1.00", "–"), line
        assert cells[6] in (iv.NO_CHANGE, iv.CANNOT_TELL), line


def test_every_value_carries_its_interval_and_repeats() -> None:
    text = compare(RUN_A, RUN_B)
    assert "| lost | 6 of 12 (0.50 [0.25, 0.75]), 2 rep. |" in text
    # The cell with two repeats in both runs shows its median and range (a
    # lower bound with its mark).
    assert re.search(r"\| (≥ )?[\d,.]+ \[[\d,.]+, [\d,.]+\] \(n 2\) \|", text), text
    # Fewer than three repeats a side: no verdict either way.
    assert "0 worse, 0 better, 0 no change" in text


def _cell(status: str = "ok", lost: tuple[int, ...] = (0, 0, 0)) -> Side:
    # A cell of len(lost) measured repeats of 6 connections each.
    if status != "ok":
        return Side(row={}, repeats=1)
    return Side(row={}, values={"disconnect_share": [k / 6 for k in lost],
                                "disconnects_total": [float(k) for k in lost],
                                "connections_opened": [6.0] * len(lost)}, repeats=len(lost))


KEPT, LOST, SOME = (0, 0, 0, 0), (4, 5, 6, 5), (0, 5, 0, 0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_cell(lost=KEPT), _cell(lost=LOST), NOW_DISCONNECTS),
        (_cell(lost=LOST), _cell(lost=KEPT), NOW_SURVIVES),
        (_cell(lost=KEPT), _cell(lost=KEPT), ""),
        (_cell(lost=LOST), _cell(lost=LOST), ""),
        (_cell(lost=KEPT), _cell(lost=SOME), ""),  # a boundary cell: repeats disagree, no claim
        (_cell(lost=(0, 0)), _cell(lost=(5, 6)), ""),  # two repeats: cannot tell
        # Three repeats a side cannot show a change in survival: every repeat
        # lost against none gives p = 0.1 over repeats (connections of a
        # repeat are lost together, so 18 of 18 is not 18 trials).
        (_cell(lost=(0, 0, 0)), _cell(lost=(4, 5, 6)), ""),
        (_cell(lost=KEPT), _cell(status="failed"), FAILED_B),
        (_cell(status="failed"), _cell(lost=KEPT), FAILED_A),
    ],
)
def test_marks_follow_survival_beyond_noise(a: Side, b: Side, expected: str) -> None:
    assert cell_mark(a, b) == expected


def test_survival_is_claimed_only_where_the_verdict_is_kept() -> None:
    lost, kept = _cell(lost=LOST), _cell(lost=KEPT)
    lost.verdicts = ["lost"] * 4
    kept.verdicts = ["kept", "inconclusive", "kept", "kept"]
    # B lost nothing, but one repeat could not show survival: better, not "now survives".
    assert cell_mark(lost, kept) == BETTER
    kept.verdicts = ["kept"] * 4
    assert cell_mark(lost, kept) == NOW_SURVIVES


def test_marks_follow_each_metrics_direction_and_the_change_test() -> None:
    lag, jobs = metrics.get("lag_p99_ms"), metrics.get("jobs_per_s")

    def side(column: str, *values: float) -> Side:
        return Side(row={}, values={column: list(values)}, repeats=len(values))

    low, high = (10.0, 10.5, 11.0), (30.0, 31.0, 32.0)
    assert decide(lag, side("lag_p99_ms", *low), side("lag_p99_ms", *high), factor=1.5).mark == WORSE
    assert decide(lag, side("lag_p99_ms", *high), side("lag_p99_ms", *low), factor=1.5).mark == BETTER
    assert decide(lag, side("lag_p99_ms", *low), side("lag_p99_ms", 12, 12.5, 13), factor=1.5).mark == ""
    assert decide(jobs, side("jobs_per_s", *low), side("jobs_per_s", *high), factor=1.5).mark == BETTER
    # Without a factor the metric's own minimum effect applies.
    found = decide(lag, side("lag_p99_ms", *low), side("lag_p99_ms", *high))
    assert found.mark == WORSE and found.outcome == iv.WORSE and found.ratio == pytest.approx(31 / 10.5)
    # One value a side: no claim, whatever the ratio.
    one = decide(lag, side("lag_p99_ms", 10), side("lag_p99_ms", 300), factor=1.5)
    assert one.mark == "" and one.outcome == iv.CANNOT_TELL


def test_corrupt_record_in_one_run_is_named_in_the_header(tmp_path: Path) -> None:
    run = tmp_path / "b"
    shutil.copytree(RUN_B, run)
    (run / "cells" / "zz-broken.json").write_text("oops", encoding="utf-8")
    text = compare(RUN_A, run)
    assert "1 file(s) left out (unreadable, or not of this run): cells/zz-broken.json" in text


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def _run(args: argparse.Namespace) -> int:
    return command_module(args.command).run(args)


def test_compare_command_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.md"
    args = _parser().parse_args(["compare", str(RUN_A), str(RUN_B), "--out", str(out)])
    assert _run(args) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text(encoding="utf-8")
    assert printed.startswith("# wsblock compare")


def test_compare_json_has_one_object_per_cell_and_metric(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    args = _parser().parse_args(["compare", str(RUN_A), str(RUN_B), "--json"])
    assert _run(args) == 0
    objects = json.loads(capsys.readouterr().out)
    assert objects == json.loads(json.dumps(compare_json(RUN_A, RUN_B)))
    assert len(objects) == 19 * len(METRICS)
    assert len({(o["cell"], o["metric"]) for o in objects}) == len(objects)
    for obj in objects:
        assert {"cell", "metric", "a", "b", "a_interval", "b_interval", "ratio", "verdict"} <= set(obj)
        # Neither run has three repeats of any cell.
        assert obj["verdict"] == iv.CANNOT_TELL
    lost = next(o for o in objects if o["metric"] == "disconnect_share" and o["a_count"] == [6, 12])
    assert lost["a_interval"] == pytest.approx([0.2538, 0.7462], abs=1e-3)
    none = next(o for o in objects if o["metric"] == "disconnect_share" and o["a_count"] == [0, 6])
    assert none["a_interval"][0] == 0 and 0.35 < none["a_interval"][1] < 0.45


def test_compare_command_rejects_missing_and_empty_directories(tmp_path: Path) -> None:
    args = _parser().parse_args(["compare", str(RUN_A), str(tmp_path / "nowhere")])
    with pytest.raises(UsageError, match="no such directory"):
        _run(args)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = _parser().parse_args(["compare", str(empty), str(RUN_B)])
    with pytest.raises(UsageError, match="no records"):
        _run(args)
