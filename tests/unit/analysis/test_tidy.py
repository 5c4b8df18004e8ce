"""The tidy table: loading run directories, flattening records, cells.csv."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from tests.helpers import FIXTURES
from wsblock.analysis import tidy
from wsblock.errors import UsageError

RUN_A = FIXTURES / "run_a"
RUN_B = FIXTURES / "run_b"

EXPECTED_COLUMNS = [
    "cell_id", "repeat", "status", "error", "workload", "work_ms", "strategy", "ping_interval",
    "ping_timeout", "keepalive_budget_s", "client_pings", "handler_ping_timeout", "duration", "job_connections", "observers", "workers",
    "chunk_ms", "start_method", "units", "unit", "disconnects_total", "disconnect_share",
    "first_disconnect_s", "disconnects_1011", "disconnects_by_client", "disconnects_by_server",
    "disconnects_by_none", "connections_opened", "lag_p50_ms", "lag_p90_ms", "lag_p99_ms",
    "lag_p999_ms", "lag_max_ms", "lag_samples", "stalls_count", "stall_max_ms", "stall_total_ms",
    "stalled_share", "jobs_per_s", "echo_per_s", "echo_p50_ms", "echo_p99_ms", "echo_max_ms",
    "echo_lost", "job_ms_p50", "job_ms_max", "job_cpu_ms_p50", "job_latency_p50_ms",
    "job_latency_p99_ms", "server_cpu_util", "workers_cpu_util", "load_cpu_util",
    "machine_busy_cores", "machine_cpus", "python_version", "websockets_version", "timestamp_utc",
]


def _one(run: Path, name: str) -> dict:
    return json.loads((run / "cells" / name).read_text(encoding="utf-8"))


def test_load_records_reads_every_record_and_the_manifest() -> None:
    loaded = tidy.load_records(RUN_A)
    assert len(loaded.records) == len(list((RUN_A / "cells").glob("*.json")))
    assert loaded.errors == []
    assert loaded.manifest is not None and loaded.manifest["kind"] == "wsblock.matrix"
    # Sorted by path, so every tool sees the same order.
    assert [p for p, _ in loaded.records] == sorted(p for p, _ in loaded.records)


def test_frame_has_one_row_per_record_and_the_expected_columns() -> None:
    loaded = tidy.load_records(RUN_A)
    df = tidy.frame(loaded.records)
    assert len(df) == len(loaded.records)
    missing = [c for c in EXPECTED_COLUMNS if c not in df.columns]
    assert not missing
    # Stable order: the fixed columns keep their relative order.
    positions = [list(df.columns).index(c) for c in EXPECTED_COLUMNS]
    assert positions == sorted(positions)


def test_failed_record_has_nan_metrics_and_its_error() -> None:
    df = tidy.frame(tidy.load_records(RUN_A).records)
    failed = df[df["status"] == "failed"]
    assert len(failed) == 1
    row = failed.iloc[0]
    assert "in use" in row["error"]
    for column in ("disconnect_share", "lag_p99_ms", "jobs_per_s", "echo_p99_ms", "disconnects_1011"):
        assert math.isnan(row[column])
    assert row["workload"] == "blocking_io" and row["strategy"] == "thread"


def test_ok_record_counts_unseen_close_codes_as_zero() -> None:
    df = tidy.frame(tidy.load_records(RUN_A).records)
    ok = df[df["status"] == "ok"]
    # A record that saw no close at all has no 1011 key: the table says 0, not "missing".
    clean = ok[ok["disconnects_total"] == 0]
    assert len(clean) > 0 and (clean["disconnects_1011"] == 0).all()
    assert not ok["disconnects_1011"].isna().any()
    lost = ok[ok["disconnects_total"] > 0]
    assert len(lost) > 0
    assert (lost["disconnects_1011"] == lost["disconnects_total"]).all()


def test_flatten_maps_nested_values() -> None:
    rec = _one(RUN_A, "pure_python-200ms-inline-pi0.5-pt0.5-r0.json")
    row = tidy.flatten(rec)
    assert row["cell_id"] == rec["matrix"]["cell_id"]
    assert row["repeat"] == 0
    # A blocked loop gives the probe too few samples for a p99: withheld in
    # the record (null), NaN in the table; its maximum is there.
    assert rec["loop_lag_ms"]["p99"] is None and math.isnan(row["lag_p99_ms"])
    assert "p99" in rec["loop_lag_ms"]["withheld"]
    assert row["lag_max_ms"] == rec["loop_lag_ms"]["max"]
    assert row["echo_p99_ms"] == rec["echo_latency_ms"]["p99"]
    assert row["jobs_per_s"] == rec["throughput"]["jobs_per_s"]
    assert row["machine_busy_cores"] == rec["resources"]["machine"]["busy_cores"]
    assert row["websockets_version"] == rec["meta"]["packages"]["websockets"]
    assert row["keepalive_budget_s"] == pytest.approx(1.0)
    assert row["units"] == rec["work"]["units"]


def test_ping_timeout_none_stays_none_and_is_written_as_none(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_B, run)
    df = tidy.frame(tidy.load_records(run).records)
    nones = df[df["ping_timeout"].map(lambda v: v is None)]
    assert len(nones) == 1
    assert math.isnan(nones.iloc[0]["keepalive_budget_s"])
    path = tidy.write_csv(run)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(df)
    assert sum(r["ping_timeout"] == "none" for r in rows) == 1
    assert {r["ping_timeout"] for r in rows} == {"0.5", "2.0", "none"}


def test_records_before_keepalive_variants_get_the_defaults(tmp_path: Path) -> None:
    # A record written before client_pings / handler_ping_timeout existed.
    rec = json.loads(json.dumps(_one(RUN_A, "pure_python-200ms-thread-pi0.5-pt2-r0.json")))
    rec["params"].pop("client_pings", None)
    rec["params"].pop("handler_ping_timeout", None)
    variant = json.loads(json.dumps(rec))
    variant["params"].update(client_pings=False, handler_ping_timeout="none")
    df = tidy.frame([rec, variant])
    assert list(df["client_pings"]) == [True, False]
    assert list(df["handler_ping_timeout"]) == [None, "none"]
    rows = list(csv.DictReader(tidy.to_csv_text(df).splitlines()))
    assert [r["handler_ping_timeout"] for r in rows] == ["unset", "none"]
    assert [r["client_pings"] for r in rows] == ["True", "False"]


def test_write_csv_writes_one_row_per_record(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_A, run)
    path = tidy.write_csv(run)
    assert path == run / "cells.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames or []
    assert len(rows) == len(list((run / "cells").glob("*.json")))
    assert [c for c in EXPECTED_COLUMNS if c not in header] == []
    assert not list(run.glob(".cells.csv.*"))  # no temporary file left behind


def test_standalone_records_at_top_level(tmp_path: Path) -> None:
    for name in ("pure_python-200ms-inline-pi0.5-pt0.5-r0.json", "blocking_io-200ms-thread-pi0.5-pt2-r0.json"):
        rec = _one(RUN_A, name)
        del rec["matrix"]  # as `wsblock run --out` writes it
        (tmp_path / name).write_text(json.dumps(rec), encoding="utf-8")
    loaded = tidy.load_records(tmp_path)
    assert loaded.manifest is None and loaded.errors == []
    df = tidy.frame(loaded.records)
    # Without a matrix, an id names every setting that differs from its default.
    assert sorted(df["cell_id"]) == ["blocking_io-200ms-thread-pi0.5-pt2-duration=3-warmup=1",
                                     "pure_python-200ms-inline-pi0.5-pt0.5-duration=3-warmup=1"]
    assert list(df["repeat"]) == [0, 0]


def test_standalone_records_that_differ_in_any_parameter_get_different_ids() -> None:
    base = _one(RUN_A, "pure_python-200ms-inline-pi0.5-pt0.5-r0.json")
    del base["matrix"]
    changes = [("client_pings", False), ("handler_ping_timeout", 5.0), ("handler_ping_timeout", "none"),
               ("duration", 4.0), ("observers", 3), ("chunk_ms", 5.0), ("stall_ms", 20.0),
               ("work_ms", 200.0000001)]
    variants = []
    for key, value in changes:
        rec = json.loads(json.dumps(base))
        rec["params"][key] = value
        variants.append(rec)
    ids = list(tidy.frame([base, *variants])["cell_id"])
    assert len(set(ids)) == len(ids), ids


def test_corrupt_and_invalid_files_are_reported_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_A, run)
    (run / "cells" / "garbage.json").write_text("{not json", encoding="utf-8")
    rec = _one(RUN_A, "pure_python-200ms-thread-pi0.5-pt2-r0.json")
    del rec["loop_lag_ms"]
    (run / "cells" / "incomplete.json").write_text(json.dumps(rec), encoding="utf-8")
    loaded = tidy.load_records(run)
    errors = {p.name: message for p, message in loaded.errors}
    assert set(errors) == {"garbage.json", "incomplete.json"}
    assert errors["garbage.json"].startswith("not valid JSON")
    assert "loop_lag_ms" in errors["incomplete.json"]
    assert len(loaded.records) == len(list((RUN_A / "cells").glob("*.json")))


def test_workload_parameters_become_prefixed_columns() -> None:
    rec = _one(RUN_A, "pure_python-200ms-inline-pi0.5-pt2-r0.json")
    rec["params"]["workload_params"] = {"chunksize": 5000}
    df = tidy.frame([rec, _one(RUN_A, "blocking_io-200ms-inline-pi0.5-pt2-r0.json")])
    assert "pure_python_chunksize" in df.columns
    assert df["pure_python_chunksize"].iloc[0] == 5000
    assert math.isnan(df["pure_python_chunksize"].iloc[1])
    assert list(df.columns).index("pure_python_chunksize") == list(df.columns).index("start_method") + 1


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        tidy.load_records(tmp_path / "nowhere")


def test_server_peak_rss_is_that_of_a_live_python_server() -> None:
    df = tidy.frame(tidy.load_records(RUN_A).records)
    ok = df[df["status"] == "ok"]
    # A Python process with websockets and numpy loaded: tens of MiB, never
    # zero (unsampled) and far below a GiB for these small jobs.
    assert ok["server_peak_rss_mib"].between(10, 1024).all(), ok["server_peak_rss_mib"]
    failed = df[df["status"] != "ok"]
    assert failed["server_peak_rss_mib"].isna().all()
