"""Cells over repeats and changes between runs, on small synthetic tidy tables (no cells run)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pandas as pd
import pytest

from tests.helpers import FIXTURES
from wsblock.analysis import aggregate as agg
from wsblock.analysis import intervals as iv
from wsblock.analysis import tidy
from wsblock.analysis import changes


def _row(cell: str, repeat: int, *, lag: float = 1.0, echo: float = 5.0, jobs: float = 2.0,
         lost: int = 0, opened: int = 4, status: str = "ok", matrix: bool = True) -> dict[str, Any]:
    measured = status == "ok"
    return {
        "cell_id": f"{cell}-r{repeat}" if matrix else cell, "repeat": repeat if matrix else 0,
        "status": status, "error": None if measured else "boom",
        "workload": cell.split("-")[0], "work_ms": 100.0, "strategy": "inline",
        "ping_interval": 0.5, "ping_timeout": None, "client_pings": True, "handler_ping_timeout": None,
        "disconnects_total": lost if measured else math.nan,
        "disconnect_share": lost / opened if measured else math.nan,
        "connections_opened": opened if measured else math.nan,
        "lag_p99_ms": lag if measured else math.nan, "echo_p99_ms": echo if measured else math.nan,
        "jobs_per_s": jobs if measured else math.nan, "job_ms_p50": 100.0 if measured else math.nan,
        "python_version": "3.12",
    }


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_a_cell_is_its_axes_and_workload_parameters_without_the_repeat() -> None:
    row = {"cell_id": "numpy-50ms-thread-pi1-pt1-r2", "repeat": 2, "workload": "numpy", "work_ms": 50.0,
           "strategy": "thread", "ping_interval": 1.0, "ping_timeout": 1.0, "client_pings": True,
           "handler_ping_timeout": None, "numpy_size": float("nan"), "pandas_chunksize": 1000.0}
    pandas = {**row, "workload": "pandas", "cell_id": "anything"}
    assert tidy.cell_ids(_table([row, pandas])) == ["numpy-50ms-thread-pi1-pt1",
                                                    "pandas-50ms-thread-pi1-pt1-chunksize1000"]


def _name(cell: str) -> str:
    return tidy.cell_ids(_table([_row(cell, 0)]))[0]


def test_aggregate_gives_median_interval_confidence_and_n_per_metric() -> None:
    df = _table([_row("a", 0, lag=3.0), _row("a", 1, lag=1.0), _row("a", 2, lag=2.0),
                 _row("a", 3, status="failed"), _row("b", 0, lag=7.0)])
    out = agg.aggregate(df, ["lag_p99_ms", "echo_p99_ms"])
    a = out[out["cell"] == _name("a")].iloc[0]
    assert (a["lag_p99_ms"], a["lag_p99_ms_low"], a["lag_p99_ms_high"], a["lag_p99_ms_n"]) == (2.0, 1.0, 3.0, 3)
    assert a["lag_p99_ms_conf"] == pytest.approx(0.75)
    assert (a["repeats"], a["ok_repeats"], a["failed_repeats"], a["status"]) == (4, 3, 1, "ok")
    b = out[out["cell"] == _name("b")].iloc[0]
    assert b["lag_p99_ms_n"] == 1 and b["lag_p99_ms_conf"] == 0.0
    # Axes survive, "none" settings stay None.
    assert a["workload"] == "a" and a["ping_timeout"] is None
    assert list(out["cell"]) == [_name("a"), _name("b")]


def test_loss_is_pooled_over_repeats_with_a_wilson_interval_and_repeats_that_lost() -> None:
    df = _table([_row("a", 0, lost=4, opened=8), _row("a", 1, lost=0, opened=6), _row("a", 2, lost=1, opened=6)])
    a = agg.aggregate(df).iloc[0]
    assert (a["lost_k"], a["lost_n"], a["loss_repeats"], a["repeats_lost_any"]) == (5, 20, 3, 2)
    expected = iv.wilson(5, 20)
    assert a["lost_share"] == pytest.approx(0.25)
    assert (a["lost_low"], a["lost_high"]) == pytest.approx((expected.low, expected.high))
    assert a["unstable"] and "2 of 3 repeats lost connections" in a["unstable_reasons"]


def test_unstable_when_a_primary_metric_varies_beyond_the_limit_and_not_below_resolution() -> None:
    steady = [_row("s", i, lag=v) for i, v in enumerate((10.0, 11.0, 10.5))]
    noisy = [_row("n", i, lag=v) for i, v in enumerate((10.0, 30.0, 12.0))]
    # 0.01 .. 0.09 ms is all below the lag probe's resolution: not instability.
    tiny = [_row("t", i, lag=v) for i, v in enumerate((0.01, 0.09, 0.05))]
    out = agg.aggregate(_table(steady + noisy + tiny)).set_index("workload")
    assert not out.loc["s", "unstable"] and out.loc["s", "unstable_reasons"] == ""
    assert out.loc["n", "unstable"] and "lag_p99_ms varies" in out.loc["n", "unstable_reasons"]
    assert not out.loc["t", "unstable"]


def test_aggregate_of_an_empty_table_has_the_columns() -> None:
    out = agg.aggregate(pd.DataFrame(columns=["cell_id", "repeat", "status"]), ["lag_p99_ms"])
    assert out.empty and {"cell", "lag_p99_ms_low", "lost_share", "unstable"} <= set(out.columns)


def test_aggregate_reads_a_real_tidy_table(tmp_path) -> None:
    from pathlib import Path

    run = FIXTURES / "run_a"
    df = tidy.frame(tidy.load_records(run).records)
    out = agg.aggregate(df)
    assert len(out) == len(set(tidy.cell_ids(df)))
    ok = out[out["status"] == "ok"]
    assert (ok["stalled_share_n"] >= 1).all() and (ok["lost_n"] > 0).all()
    assert ((ok["stalled_share_low"] <= ok["stalled_share"])
            & (ok["stalled_share"] <= ok["stalled_share_high"])).all()
    # Where the probe had enough samples for a p99, it carries its interval.
    lag = ok[ok["lag_p99_ms_n"] >= 1]
    assert len(lag) > 0
    assert ((lag["lag_p99_ms_low"] <= lag["lag_p99_ms"]) & (lag["lag_p99_ms"] <= lag["lag_p99_ms_high"])).all()


def _run(rng: random.Random, cells: int, repeats: int, scale: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for c in range(cells):
        factor = (scale or {}).get(f"c{c}", 1.0)
        for r in range(repeats):
            rows.append(_row(f"c{c}", r, lag=factor * rng.lognormvariate(math.log(5 + c), 0.4),
                             echo=rng.lognormvariate(math.log(20), 0.4), jobs=rng.lognormvariate(0.0, 0.1),
                             lost=rng.choice([0, 0, 1]) if c % 3 == 0 else 0, opened=6))
    return _table(rows)


def test_identical_runs_rarely_change_and_a_real_difference_is_found() -> None:
    rng = random.Random(11)
    a = _run(rng, 30, 3)
    b = _run(rng, 30, 3, scale={"c4": 20.0})
    result = changes.compare_tables(a, b)
    assert len(result.changes) == 30 * len(changes.COMPARED)
    flagged = [v for v in result.changed() if v.cell != _name("c4")]
    assert len(flagged) <= 0.05 * len(result.changes)
    found = {(v.cell, v.metric): v for v in result.changes}[(_name("c4"), "lag_p99_ms")]
    assert found.outcome == iv.WORSE and found.ratio > 5
    assert found.a_interval[0] <= found.a <= found.a_interval[1] and found.a_n == found.b_n == 3


def test_fewer_than_three_repeats_cannot_tell_and_direction_is_respected() -> None:
    a = _table([_row("x", i, jobs=1.0 + i / 100, lag=1.0 + i / 100) for i in range(3)] + [_row("y", 0)])
    b = _table([_row("x", i, jobs=5.0 + i / 100, lag=9.0 + i / 100) for i in range(3)] + [_row("y", 0, lag=99.0)])
    got = {(v.cell, v.metric): v.outcome for v in changes.compare_tables(a, b).changes}
    assert got[(_name("x"), "jobs_per_s")] == iv.BETTER
    assert got[(_name("x"), "lag_p99_ms")] == iv.WORSE
    assert all(got[(_name("y"), m)] == iv.CANNOT_TELL for m in changes.COMPARED)


def test_loss_changes_only_when_every_repeat_agrees() -> None:
    # Survival is tested over repeats (Fisher's exact test), four a side.
    kept = [_row("x", i, lost=0, opened=6) for i in range(4)]
    lost = [_row("x", i, lost=5, opened=8) for i in range(4)]
    # A boundary cell: two repeats lost most connections, two lost none.
    boundary = [_row("x", 0, lost=6, opened=8), _row("x", 1, lost=0, opened=6), _row("x", 2, lost=6, opened=8),
                _row("x", 3, lost=0, opened=6)]
    worse = changes.compare_tables(_table(kept), _table(lost), [agg.LOSS]).changes[0]
    assert worse.outcome == iv.WORSE and worse.a_count == (0, 24) and worse.b_count == (20, 32)
    flip = changes.compare_tables(_table(kept), _table(boundary), [agg.LOSS]).changes[0]
    assert flip.outcome == iv.NO_CHANGE
    # Three repeats a side could not show it even when every repeat of one side lost (p = 0.1).
    few = changes.compare_tables(_table(kept[:3]), _table(lost[:3]), [agg.LOSS]).changes[0]
    assert few.outcome == iv.CANNOT_TELL and few.a_count == (0, 18) and few.b_count == (15, 24)


def test_json_has_one_object_per_cell_and_metric_with_the_documented_keys() -> None:
    a = _table([_row("x", i) for i in range(3)] + [_row("only_a", 0)])
    b = _table([_row("x", i) for i in range(3)] + [_row("only_b", 0)])
    result = changes.compare_tables(a, b)
    assert result.only_a == [_name("only_a")] and result.only_b == [_name("only_b")]
    objects = json.loads(json.dumps(result.as_json(), allow_nan=False))
    assert len(objects) == len(changes.COMPARED)
    for obj in objects:
        assert {"cell", "metric", "a", "b", "a_interval", "b_interval", "ratio", "verdict"} <= set(obj)
        assert obj["cell"] == _name("x") and obj["verdict"] in iv.OUTCOMES
    # Equal everywhere; survival over three repeats a side cannot show a change either way.
    assert f"{len(changes.COMPARED) - 1} no change, 1 cannot tell" in changes.summary_line(result)
    assert [o["verdict"] for o in objects if o["metric"] == agg.LOSS] == [iv.CANNOT_TELL]


def test_one_job_more_in_a_window_is_resolution_not_instability() -> None:
    rows = []
    for i, jobs in enumerate((0.0, 0.0, 0.25)):
        rows.append({**_row("q", i, jobs=jobs, lag=10.0, echo=5.0), "duration": 4.0})
    for i, jobs in enumerate((0.25, 1.0, 0.5)):
        rows.append({**_row("w", i, jobs=jobs, lag=10.0, echo=5.0), "duration": 4.0})
    out = agg.aggregate(_table(rows)).set_index("workload")
    assert not out.loc["q", "unstable"]
    assert out.loc["w", "unstable"] and "jobs_per_s varies" in out.loc["w", "unstable_reasons"]
    # Records that count partial jobs have no step of one job.
    assert agg.step("jobs_per_s", [{"window_s": 4.0}]) == 0.25
    assert agg.step("jobs_per_s", [{"window_s": 4.0, "jobs_in_window": 1.3}]) == 0.1
    assert agg.step("echo_per_s", [{"duration": 2.0}]) == 0.5


@pytest.mark.parametrize("repeats, expected", [
    (["kept", "kept", "kept"], "kept"),
    (["kept", "lost", "kept"], "lost"),
    (["kept", "inconclusive", "kept"], "inconclusive"),
    (["inconclusive", "lost"], "lost"),
    (["not_applicable", "not_applicable"], "not_applicable"),
    (["not_applicable", "kept"], "inconclusive"),
    (["kept", None], "inconclusive"),
    ([], None),
])
def test_a_cell_is_kept_only_when_every_repeat_kept_and_lost_when_any_lost(repeats, expected) -> None:
    assert agg.verdict_over(repeats) == expected


def test_labels_over_repeats_union_warnings_and_carry_any_lower_bound() -> None:
    rows = [_row("w-a", r) for r in range(3)]
    qualifiers = [("kept", "few_samples", False), ("inconclusive", "inconclusive_window,few_samples", True),
                  ("kept", math.nan, False)]
    for row, (verdict, warnings, bound) in zip(rows, qualifiers):
        row.update(verdict=verdict, warnings=warnings, echo_lower_bound=bound, job_ms_lower_bound=False,
                   stalls_primary=None)
    row = agg.aggregate(_table(rows)).iloc[0]
    assert row["verdict"] == "inconclusive"
    assert row["warnings"] == "few_samples,inconclusive_window"
    assert bool(row["echo_lower_bound"]) and not bool(row["job_ms_lower_bound"])
    assert not bool(row["stalls_primary"])


def test_labels_of_the_fixture_run_follow_its_records() -> None:
    from pathlib import Path
    loaded = tidy.load_records(FIXTURES / "run_a")
    cells = agg.aggregate(tidy.frame(loaded.records))
    by_cell = {r["cell"]: r for r in cells.to_dict("records")}
    for _, record in loaded.records:
        if record.get("status") != "ok":
            continue
        row = by_cell[tidy.cell_ids(tidy.frame([record]))[0]]
        if record["survival"]["verdict"] == "lost":
            assert row["verdict"] == "lost"
        if record["echo_latency_ms"].get("lower_bound"):
            assert row["echo_lower_bound"]
        for warning in record.get("warnings") or []:
            assert warning["code"] in row["warnings"].split(",")


def _bounded_runs(bound_a: bool, bound_b: bool, echo_a: float, echo_b: float) -> changes.RunComparison:
    rng = random.Random(7)
    a = [_row("x", i, echo=echo_a * (1 + 0.02 * rng.random())) for i in range(5)]
    b = [_row("x", i, echo=echo_b * (1 + 0.02 * rng.random())) for i in range(5)]
    for rows, bound in ((a, bound_a), (b, bound_b)):
        for row in rows:
            row["echo_lower_bound"] = bound
    return changes.compare_tables(_table(a), _table(b), ["echo_p99_ms"])


def test_echo_is_never_better_on_the_side_whose_values_are_lower_bounds() -> None:
    # B's echoes look ten times faster, but its connections died: cannot tell.
    [v] = _bounded_runs(False, True, 300.0, 30.0).changes
    assert v.outcome == iv.CANNOT_TELL and v.b_lower_bound and not v.a_lower_bound
    # The same numbers without the bound: better.
    assert _bounded_runs(False, False, 300.0, 30.0).changes[0].outcome == iv.BETTER
    # A bounded side that is already the slower one: the order holds.
    assert _bounded_runs(False, True, 30.0, 300.0).changes[0].outcome == iv.WORSE
    # A bounded baseline that looks faster cannot make B worse.
    assert _bounded_runs(True, False, 30.0, 300.0).changes[0].outcome == iv.CANNOT_TELL
    obj = _bounded_runs(False, True, 300.0, 30.0).as_json()[0]
    assert obj["b_lower_bound"] is True and obj["verdict"] == iv.CANNOT_TELL


def test_compare_engine_reads_lower_bounds_from_tidy_rows() -> None:
    from wsblock.analysis import comparison
    rows_a = [_row("x", i, echo=300.0 + i) for i in range(4)]
    rows_b = [{**_row("x", i, echo=30.0 + i), "echo_lower_bound": True} for i in range(4)]
    table_a, table_b = _table(rows_a), _table(rows_b)
    side_a = comparison.sides(table_a.assign(cell=tidy.cell_ids(table_a)), lambda row: row["cell"])
    side_b = comparison.sides(table_b.assign(cell=tidy.cell_ids(table_b)), lambda row: row["cell"])
    [cell] = side_a
    change = comparison.decide(comparison.metrics.get("echo_p99_ms"), side_a[cell], side_b[cell], cell=cell)
    assert change.outcome == iv.CANNOT_TELL and change.mark != comparison.BETTER
