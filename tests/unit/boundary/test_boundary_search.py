"""The boundary search: design, brackets, fit and its run directory, without real cells."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, ROOT
from wsblock import atomic
from wsblock.boundary import fit as fitmod
from wsblock.boundary import run as runmod
from wsblock.boundary import search
from wsblock.cli import main
from wsblock.engine.config import CellConfig


def _drive(truth, *, level=0.5, low=10.0, high=10_000.0, budget=40, n=6, seed=1, max_repeats=3):
    # Run the design against a known loss curve, with binomial noise.
    rng = random.Random(seed)
    obs: list[search.Observation] = []
    while len(obs) < budget:
        ms = search.next_length(obs, level=level, low_ms=low, high_ms=high, max_repeats=max_repeats)
        if ms is None:
            break
        lost = sum(rng.random() < truth(ms) for _ in range(n))
        obs.append(search.Observation(ms, lost, n))
    return obs


def test_a_sharp_boundary_is_bracketed_within_the_resolution():
    obs = _drive(lambda ms: 1.0 if ms > 700 else 0.0)
    b = search.bracket(obs, 0.5)
    assert b.bracketed
    assert b.low <= 700 <= b.high
    assert b.high / b.low <= 1.1
    assert len(obs) <= 20


def test_a_soft_boundary_is_bracketed_with_repeats_near_it():
    def truth(ms: float) -> float:
        return 1.0 / (1.0 + math.exp(-6.0 * (math.log(ms) - math.log(700.0))))

    hits = 0
    for seed in range(20):
        obs = _drive(truth, seed=seed)
        assert len(obs) <= 40
        b = search.bracket(obs, 0.5)
        assert b.bracketed
        hits += b.low <= 700 * 1.3 and b.high >= 700 / 1.3
        counts: dict[float, int] = {}
        for o in obs:
            counts[o.work_ms] = counts.get(o.work_ms, 0) + 1
        assert max(counts.values()) <= 3
    # Wide margin: noise can push a bracket off the true crossing now and then.
    assert hits >= 15


def test_a_boundary_outside_the_range_is_said_to_be_outside():
    below = search.bracket(_drive(lambda ms: 1.0), 0.5)
    assert below.low is None and below.high == pytest.approx(10.0)
    above = search.bracket(_drive(lambda ms: 0.0), 0.5)
    assert above.high is None and above.low == pytest.approx(10_000.0)


def test_the_interval_counts_only_lengths_confidently_on_one_side():
    obs = [search.Observation(100, 0, 6), search.Observation(200, 2, 6), search.Observation(300, 4, 6),
           search.Observation(400, 6, 6)]
    b = search.bracket(obs, 0.5)
    c = search.confident_bracket(obs, 0.5)
    assert (b.low, b.high) == (200, 300)
    assert (c.low, c.high) == (100, 400)  # 2/6 and 4/6 could lie on either side
    assert search.confident_bracket(obs[1:3], 0.5).low is None


def test_non_monotone_measurements_widen_the_bracket():
    obs = [search.Observation(100, 6, 6), search.Observation(200, 0, 6), search.Observation(400, 6, 6)]
    b = search.bracket(obs, 0.5)
    assert (b.low, b.high) == (100, 200)


def test_logistic_fit_finds_the_crossing_and_refuses_separated_or_flat_data():
    obs = [search.Observation(ms, k, 6) for ms, k in ((100, 0), (200, 1), (400, 3), (800, 5), (1600, 6))]
    curve = fitmod.fit(obs)
    assert curve is not None and curve.b > 0
    assert 250 <= curve.length_at(0.5) <= 650
    assert fitmod.fit([search.Observation(100, 0, 6), search.Observation(200, 0, 6)]) is None
    assert fitmod.fit([search.Observation(100, 3, 6)]) is None


FIXTURE = FIXTURES / "run_a" / "cells"


def _fake_record(cell: CellConfig, lost: int) -> dict:
    # A real measured record, relabelled: only its loss count is made up.
    rec = json.loads(sorted(FIXTURE.glob("*.json"))[0].read_text())
    rec["params"] = cell.to_dict()
    n = rec["disconnects"]["original"]["connections"]
    rec["disconnects"]["original"]["lost"] = min(lost, n)
    # Jobs took what they were asked to take (an idle machine).
    rec["job_ms"] = {**rec["job_ms"], "p50": cell.work_ms, "completed_p50": cell.work_ms}
    return rec


def test_run_directory_holds_records_and_a_summary_and_resumes(tmp_path: Path):
    template = CellConfig("pure_python", 1.0, "inline", ping_interval=1.0, ping_timeout=1.0, duration=4.0)
    measured: list[float] = []

    def measure(planned, path):
        measured.append(planned.cell.work_ms)
        rec = _fake_record(planned.cell, 6 if planned.cell.work_ms > 900 else 0)
        rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
        atomic.write_json(path, rec)
        return rec

    result = runmod.run_search([template], tmp_path, budget=12, command="test", quiet=True, measure=measure)
    entry = result["estimates"][0]
    assert entry["p50"]["bracketed"]
    assert entry["p50"]["low"] <= 900 <= entry["p50"]["high"]
    assert entry["cells"] == len(measured) <= 12
    assert json.loads((tmp_path / runmod.SUMMARY).read_text())["estimates"][0]["cells"] == entry["cells"]
    assert len(list((tmp_path / "cells").glob("*.json"))) == len(measured)
    # The model's prediction on each cell's own stall pattern is kept beside it.
    assert len(entry["model_predicted"]) == entry["cells"]
    assert all(0.0 <= m["p"] <= 1.0 for m in entry["model_predicted"])
    # Run again: every record is reused, nothing is measured.
    before = len(measured)
    again = runmod.run_search([template], tmp_path, budget=12, command="test", quiet=True, measure=measure)
    assert len(measured) == before
    assert again["estimates"][0]["p50"] == entry["p50"]


def test_default_range_spans_the_model_limits():
    low, high = runmod.default_range(CellConfig("pure_python", 1.0, "inline", ping_interval=1.0,
                                                ping_timeout=1.0, job_connections=2))
    assert low == pytest.approx(250.0) and high == pytest.approx(4000.0)


@pytest.mark.parametrize("argv, message", [
    (["--work-ms", "100"], "what the search varies"),
    (["--budget", "0"], "--budget"),
    (["--ping-interval", "none"], "no keepalive can fail"),
    (["--min-ms", "500", "--max-ms", "100"], "below --max-ms"),
])
def test_bad_boundary_input_is_exit_2_and_runs_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    code = main(["boundary", "--workload", "pure_python", "--strategy", "inline", "--out", str(out), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_boundary_model_command_prints_the_table(capsys, tmp_path):
    root = ROOT / "results" / "reference" / "keepalive"
    assert main(["boundary", "model", str(root), "--phases", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| pure_python 3000 ms inline pi 1.0 pt 1.0 | 3 |" in out
    assert (tmp_path / "boundary_model.md").is_file() and (tmp_path / "boundary_model.png").is_file()
    assert main(["boundary", "model", str(tmp_path / "missing")]) == 2


def test_boundary_figure_draws_one_line_per_strategy(tmp_path):
    from wsblock.report import fig_boundary

    estimates = [
        {"workload": "pure_python", "strategy": s, "ping_timeout": pt,
         "p50": {"value": v, "low": v / 1.2, "high": None if pt == 2.0 else v * 1.2}, "model_p50_ms": v * 1.1}
        for s, scale in (("inline", 1.0), ("chunked", 5.0)) for pt, v in ((0.5, 700 * scale), (2.0, 2100 * scale))
    ]
    paths = fig_boundary.boundary_figure(estimates, tmp_path)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    svg = (tmp_path / "boundary.svg").read_text()
    assert "inline (measured)" in svg and "chunked (model)" in svg


def test_rules_figure_puts_each_search_at_each_rule(tmp_path):
    from wsblock.report import fig_boundary

    # A boundary at ping_timeout / N lies on the first rule's diagonal; at
    # ping_interval 4 s the second rule puts it 2.5 times further right.
    estimates = [{"ping_interval": pi, "ping_timeout": 1.0, "job_connections": 1,
                  "p50": {"value": 1000.0, "low": 900.0, "high": 1100.0}} for pi in (1.0, 4.0)]
    estimates.append({"ping_interval": None, "ping_timeout": None, "job_connections": 1, "p50": {"value": 5.0}})
    assert [rule(4.0, 1.0, 1) for _, rule in fig_boundary.RULES] == [1000.0, 2500.0]
    assert [rule(20.0, 20.0, 2) for _, rule in fig_boundary.RULES] == [10000.0, 10000.0]
    paths = fig_boundary.rules_figure(estimates, tmp_path)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert "2 searches" in (tmp_path / "boundary_rules.svg").read_text()


def _drive_staircase(truth, *, budget=40, n=6, seed=1, low=100.0, high=4000.0, stretch=1.0):
    # Cells lose all their connections or none (they share the stalls):
    # the staircase against a known curve, the cell the unit of chance.
    rng = random.Random(seed)
    obs: list[search.Observation] = []
    while len(obs) < budget:
        ms = search.staircase_next(obs, level=0.5, low_ms=low, high_ms=high)
        if ms is None:
            break
        took = ms * stretch
        obs.append(search.Observation(ms, n if rng.random() < truth(took) else 0, n, took))
    return obs


def _soft(ms: float) -> float:
    return 1.0 / (1.0 + math.exp(-8.0 * (math.log(ms) - math.log(600.0))))


def test_staircase_gathers_cells_around_the_crossing():
    obs = _drive_staircase(_soft, budget=30)
    assert len(obs) == 30
    near = [o for o in obs if 600 / 1.5 <= o.work_ms <= 600 * 1.5]
    assert len(near) >= 20
    assert search.reversals(obs, 0.5) >= 5
    # Everything kept, or everything lost: the staircase walks off the range and stops.
    assert search.staircase_next(_drive_staircase(lambda ms: 0.0), level=0.5, low_ms=100, high_ms=4000) is None
    assert _drive_staircase(lambda ms: 1.0)[-1].work_ms == pytest.approx(100.0)


def test_cell_level_interval_covers_the_truth_and_two_searches_overlap():
    hits = overlaps = 0
    previous = None
    for seed in range(12):
        obs = _drive_staircase(_soft, budget=30, seed=seed)
        c = fitmod.crossing([(o.job_ms, o.lost / o.connections) for o in obs], 0.5)
        assert c.cells == 30 and c.low is not None and c.high is not None
        assert c.low <= c.value <= c.high
        hits += c.low <= 600 <= c.high
        if previous is not None:
            overlaps += c.low <= previous.high and previous.low <= c.high
        previous = c
    # Nominal 95 % (about 92 % in longer simulations); wide margin for 12 seeds.
    assert hits >= 9
    assert overlaps >= 9


def test_crossing_is_read_in_the_job_length_the_cells_measured():
    # A loaded machine stretches every job by 1.6: the boundary in work_ms
    # moves, the one in measured job length does not.
    obs = _drive_staircase(_soft, budget=30, stretch=1.6)
    in_jobs, in_work = runmod.crossings(obs, 0.5)
    assert in_jobs.low <= 600 <= in_jobs.high
    assert in_work.high < 600


def test_crossing_says_when_the_level_lies_outside_the_measured_lengths():
    kept = fitmod.crossing([(100, 0.0), (200, 0.0), (400, 0.0)], 0.5)
    assert kept.value is None and kept.high is None and kept.low is not None
    lost = fitmod.crossing([(100, 1.0), (200, 1.0)], 0.5)
    assert lost.value is None and lost.low is None
    # Counting cells, not connections: one cell at 4/6 next to 0/6 and 6/6 leaves a wide interval.
    c = fitmod.crossing([(500, 0.0), (550, 4 / 6), (600, 1.0)], 0.5)
    assert c.low is None or c.low < 450
    assert c.high is None or c.high > 650


def test_boundary_figure_command_combines_searches(capsys, tmp_path):
    root = ROOT / "results" / "reference" / "boundary"
    searches = [str(root / name) for name in ("jc1-pt0.5", "jc1-pt1", "jc2-pt0.5")]
    assert main(["boundary", "figure", *searches, "--out", str(tmp_path)]) == 0
    assert "3 estimates from 3 searches" in capsys.readouterr().out
    svg = (tmp_path / "boundary.svg").read_text()
    assert "1 job conn. (measured)" in svg and "2 job conn. (measured)" in svg
    rules = (tmp_path / "boundary_rules.svg").read_text()
    assert "ping_timeout / N" in rules and "(ping_interval + ping_timeout) / 2N" in rules
    assert "ping_interval 1 s" in rules and "N = 2 job conn." in rules
    assert main(["boundary", "figure", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "no readable boundary.json" in capsys.readouterr().err
