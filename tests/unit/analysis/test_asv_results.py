"""The asv adapter, on results a real ``asv run`` wrote (websockets 13.0 and 17.4).

``tests/fixtures/asv_results`` is the ``results/asv`` directory of one
``WSBLOCK_ASV_PROFILE=smoke asv run --quick`` in virtualenvs built from a
commit, on a 2-core machine; ``asv_compare_reference.md`` is the comparison
table rendered from it, checked by eye once and kept as the reference.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from tests.helpers import FIXTURES
from wsblock.analysis.comparison import WORSE
from wsblock.analysis.intervals import CANNOT_TELL
from wsblock.analysis.asv_results import compare_markdown, load_asv_results, load_asv_timings
from wsblock.errors import UsageError
from wsblock.schema import metrics

RESULTS = FIXTURES / "asv_results"


def test_results_come_back_with_tidy_column_names() -> None:
    df = load_asv_results(RESULTS)
    tracked = [m.column for m in metrics.asv_tracked()]
    assert list(df.columns) == [
        "cell_id", "status", "workload", "work_ms", "strategy", "ping_interval", "ping_timeout",
        "keepalive_budget_s", *tracked,
        "commit_hash", "env_name", "websockets_version", "python", "machine", "date",
    ]
    # The metrics these results were measured with; a metric tracked since is NaN.
    measured = ["disconnect_share", "lag_p99_ms", "echo_p99_ms", "job_ms_p50"]
    assert [c for c in tracked if df[c].notna().any()] == measured
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    assert sorted(set(df["websockets_version"])) == ["13.0", "17.4"]
    assert set(df["env_name"]) == {"virtualenv-py3.11-websockets13.0", "virtualenv-py3.11-websockets17.4"}
    assert set(df["machine"]) == {"vm"} and set(df["python"]) == {"3.11"}
    assert df["commit_hash"].str.len().eq(40).all() and str(df["date"].dt.tz) == "UTC"
    row = df[(df.workload == "pure_python") & (df.strategy == "inline")].iloc[0]
    assert row.cell_id == "pure_python-1500ms-inline-pi0.5-pt0.5"
    assert row.work_ms == 1500.0 and row.ping_timeout == 0.5 and row.keepalive_budget_s == 1.0
    # What the smoke grid shows, in both websockets versions.
    for _, group in df.groupby("websockets_version"):
        by = {(r.workload, r.strategy): r for r in group.itertuples()}
        assert by[("pure_python", "inline")].disconnect_share > 0
        assert by[("blocking_io", "thread")].disconnect_share == 0
        assert by[("pure_python", "inline")].lag_p99_ms > 100 * by[("blocking_io", "thread")].lag_p99_ms
    # A percentile that recorded nothing stays NaN (every echo was lost).
    assert df["echo_p99_ms"].isna().sum() == 1


def test_timings_are_in_milliseconds() -> None:
    df = load_asv_timings(RESULTS)
    assert len(df) == 8 and set(df["steps"]) == {1, 25}
    assert all(40 < v < 200 for v in df["execute_ms"])  # about 50 ms of fixed work


def test_comparison_matches_the_reference_table() -> None:
    # Regenerate after an intended change of the comparison with:
    # python tests/fixtures/make_fixtures.py --references
    table = compare_markdown(load_asv_results(RESULTS))
    assert table == (FIXTURES / "asv_compare_reference.md").read_text()


def test_comparison_options() -> None:
    df = load_asv_results(RESULTS)
    shares = compare_markdown(df, baseline="17.4", metrics=["disconnect_share"])
    lines = shares.splitlines()
    assert lines[0].startswith("| change | A: websockets_version 17.4 | B: websockets_version 13.0 |")
    # 0.50 -> 0.80 is a large ratio, but one value a side is no evidence:
    # cannot tell, and nothing is marked.
    rows = [line.split("|") for line in lines[2:] if line.startswith("| ")]
    assert rows and all(r[1].strip() == "" and r[5].strip() == CANNOT_TELL for r in rows)
    assert "0.50 (n 1)" in shares and WORSE not in shares.split("\n\n")[0]
    changed = compare_markdown(df, baseline="17.4", only_changed=True, metrics=["disconnect_share"])
    assert changed.splitlines()[2] == ""
    with pytest.raises(UsageError, match="commit_hash has 1 values"):
        compare_markdown(df, by="commit_hash")
    with pytest.raises(UsageError, match="no rows with websockets_version '9.0'"):
        compare_markdown(df, baseline="9.0")
    with pytest.raises(UsageError, match="unknown column"):
        compare_markdown(df, by="colour")


def test_missing_results_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        load_asv_results(tmp_path / "nothing")
    shutil.copytree(RESULTS / "vm", tmp_path / "vm")
    with pytest.raises(UsageError, match="cannot read asv benchmarks"):
        load_asv_results(tmp_path)


def test_a_failed_value_marks_its_row(tmp_path: Path) -> None:
    import json

    shutil.copytree(RESULTS, tmp_path / "r")
    path = tmp_path / "r" / "vm" / "a4391d02-virtualenv-py3.11-websockets13.0.json"
    data = json.loads(path.read_text())
    # asv's file format (version 2): "result" is the first of the columns.
    assert data["result_columns"][0] == "result"
    entry = data["results"]["bench_responsiveness.Responsiveness.track_loop_lag_p99"]
    entry[0] = [None, *entry[0][1:]]  # the first cell failed
    path.write_text(json.dumps(data))
    df = load_asv_results(tmp_path / "r")
    failed = df[df.status == "failed"]
    assert len(failed) == 1 and math.isnan(failed.iloc[0].lag_p99_ms)
    assert failed.iloc[0].websockets_version == "13.0"
