"""The declared vocabulary reaches every layer: metrics, axes, cell ids, records.

Each declared metric must reach the tidy table, the report and (when
declared so) the asv suite; each declared axis must reach the matrix file,
the command line, the cell id, the tidy table, the asv parameters, the
configs of the server and load processes, and read as its default from a
record written before it existed. A metric added to ``wsblock/schema`` or an
axis declared on ``CellConfig`` is checked here without editing this file.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path

import pytest

import workloads
from wsblock.analysis import asv_results, tidy
from wsblock.analysis import cells as cellmod
from wsblock.cli import build_parser
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import axes, metrics, record
from tests.helpers import FIXTURES, ROOT, run_cli

RUN_A = FIXTURES / "run_a"


def _records() -> list[tuple[Path, dict]]:
    return tidy.load_records(RUN_A).records


# -- metrics -----------------------------------------------------------------


def test_metric_columns_are_unique_and_well_formed() -> None:
    columns = [m.column for m in metrics.METRICS]
    assert len(columns) == len(set(columns))
    for m in metrics.METRICS:
        assert m.better in ("lower", "higher", "none"), m
        assert m.aggregate in ("median", "max", "min"), m
        assert m.path and m.label and m.short and m.description, m


@pytest.mark.parametrize("metric", metrics.METRICS, ids=lambda m: m.column)
def test_every_metric_reaches_the_tidy_table_and_the_report(metric: metrics.Metric) -> None:
    records = _records()
    df = tidy.frame(records)
    assert metric.column in df.columns
    # The value in the table is the value in the record (read by its path).
    for (path, rec), value in zip(records, df[metric.column]):
        if record.is_ok(rec):
            expected = metric.read(record.upgrade(rec))
            assert (value == expected) or (value != value and expected != expected), path
    assert metric.column in cellmod.aggregate(df).columns
    assert metric.column in tidy.to_csv_text(df).splitlines()[0].split(",")


def test_a_measured_metric_has_values_in_the_fixtures() -> None:
    df = tidy.frame(_records())
    ok = df[df["status"] == "ok"]
    # Every metric a current record carries was measured somewhere in run_a,
    # except 99th percentiles that 3 s windows cannot support: the record
    # then withholds them and says so.
    # machine_niced_cores and the set-up stall are newer than the fixtures'
    # records (absent there); a result's unpickling and size are measured
    # only under process, which run_a does not run.
    newer = {"machine_niced_cores", "setup_stall_max_ms", "result_transfer_p50_ms", "result_transfer_max_ms",
             "result_pickled_bytes_max"}
    empty = [m.column for m in metrics.METRICS if ok[m.column].isna().all() and m.column not in newer]
    withheld = {"ticker_lag_p99_ms": "ticker_lag_ms", "job_latency_p99_ms": "job_latency_ms"}
    assert set(empty) <= set(withheld), empty
    for column in empty:
        for _, rec in _records():
            if record.is_ok(rec):
                section = rec[withheld[column]]
                assert section["p99"] is None and section["samples"] < 100, (column, section)


@pytest.mark.parametrize("metric", metrics.asv_tracked(), ids=lambda m: m.column)
def test_every_tracked_metric_reaches_the_asv_suite(metric: metrics.Metric,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSBLOCK_ASV_PROFILE", "smoke")
    module = importlib.import_module(f"benchmarks.{metric.asv_module}")
    method = getattr(getattr(module, metric.asv_class), metric.asv_method)
    assert method.unit
    assert asv_results.CELL_METRICS[metric.asv_method] == metric.column
    assert metric.column in asv_results.METRIC_LABELS


def test_report_and_compare_columns_come_from_the_declaration() -> None:
    from wsblock.report import compare, tables

    assert [c for _, c, _ in tables.METRICS] == [m.column for m in metrics.in_table()]
    assert list(compare.METRICS) == list(metrics.in_compare())


# -- axes --------------------------------------------------------------------


def _matrix(axis: axes.Axis) -> dict:
    data = {a.toml_key: [a.examples[0]] for a in axes.AXES if a.default is axes.REQUIRED}
    data[axis.toml_key] = list(axis.examples)
    return data


def _same(axis: axes.Axis, a: object, b: object) -> bool:
    return repr(axis.normal(a)) == repr(axis.normal(b))


@pytest.mark.parametrize("axis", axes.AXES, ids=lambda a: a.name)
def test_every_axis_reaches_the_matrix_the_cli_the_id_the_tidy_table_and_asv(axis: axes.Axis) -> None:
    from benchmarks import common
    from wsblock.commands.options import cell_from_args

    matrix = matrix_spec.expand(_matrix(axis), source="test")
    values = {repr(axis.normal(getattr(p.cell, axis.name))) for p in matrix.cells}
    assert len(values) == 2, "the matrix file multiplies the axis out"
    ids = {p.cell_id for p in matrix.cells}
    assert len(ids) == len(matrix.cells), "cells that differ in the axis get different ids"

    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices["run"]._actions  # type: ignore[union-attr]
               if axis.cli_option in a.option_strings)
    assert run.dest == axis.name
    # The option gives the cell the value the matrix file gives it.
    required = [text for a in axes.AXES if a.default is axes.REQUIRED and a is not axis
                for text in (a.cli_option, str(a.examples[0]))]
    for written in axis.examples:
        value = axis.parse(axis.toml_key, written)
        option: list[str] = []
        if axis.default is axes.REQUIRED or not _same(axis, value, axis.default):
            option = [axis.cli_option] if axis.kind is bool else [axis.cli_option, str(written)]
        cell = cell_from_args(parser.parse_args(["run", *required, *option]))
        assert _same(axis, getattr(cell, axis.name), value), (option, getattr(cell, axis.name))

    rows = [tidy.flatten({"schema_version": record.SCHEMA_VERSION, "status": "failed", "error": "x",
                          "params": p.cell.to_dict(), "meta": {}}) for p in matrix.cells]
    assert axis.name in tidy.ID_COLUMNS
    assert {repr(r[axis.name]) for r in rows} == values

    grid = common.build_grid("test", matrix)
    assert axis.name in grid.param_names


@pytest.mark.parametrize("axis", axes.AXES, ids=lambda a: a.name)
def test_every_axis_reaches_the_server_and_load_processes_and_old_records(axis: axes.Axis) -> None:
    from wsblock.engine.process_config import JobConfig, LoadConfig, ServerConfig

    for planned in matrix_spec.expand(_matrix(axis), source="test").cells:
        cell = planned.cell
        job = JobConfig(cell.workload, 1, 1, dict(cell.workload_params))
        sent = (ServerConfig(cell=cell, data_dir="/d", warm_job=job, stats_path="/s", deadline=1.0),
                LoadConfig(cell=cell, uri="ws://127.0.0.1:1/", open_timeout=1.0, job=job,
                           results_path="/r", deadline=1.0))
        for config in sent:
            back = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
            assert _same(axis, getattr(back.cell, axis.name), getattr(cell, axis.name)), type(config).__name__
        if axis.default is axes.REQUIRED or axis.name in record.REQUIRED["params"]:
            continue
        # A record written before the axis existed ran at its default.
        params = {k: v for k, v in cell.to_dict().items() if k != axis.name}
        old = record.upgrade({"schema_version": record.SCHEMA_VERSION, "status": "failed", "error": "x",
                              "params": params, "meta": {}})
        assert old["params"][axis.name] == axis.default
        assert axes.cell_id(old["params"]) == axes.cell_id({**params, axis.name: axis.default})


@pytest.mark.parametrize("axis", axes.AXES, ids=lambda a: a.name)
def test_duplicate_axis_values_are_refused(axis: axes.Axis) -> None:
    data = _matrix(axis)
    first = axis.examples[0]
    twin = first.upper() if isinstance(first, str) and first.lower() == "none" else first
    data[axis.toml_key] = [first, twin]
    with pytest.raises(UsageError, match=f"{axis.toml_key}: the same value twice"):
        matrix_spec.expand(data, source="test")


def test_close_numbers_get_different_ids_and_equal_ones_are_refused() -> None:
    base = {"workloads": ["numpy"], "strategies": ["inline"]}
    cells = matrix_spec.expand({**base, "work_ms": [300, 300.0000001]}, source="t").cells
    assert len({c.cell_id for c in cells}) == 2
    for values in ([300, 300], [300, 300.0]):
        with pytest.raises(UsageError, match="work_ms: the same value twice"):
            matrix_spec.expand({**base, "work_ms": values}, source="t")
    with pytest.raises(UsageError, match="ping_timeout: the same value twice"):
        matrix_spec.expand({**base, "work_ms": [1], "ping_timeout": ["none", "None"]}, source="t")


@pytest.mark.e2e
def test_the_matrix_command_refuses_duplicates_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('workloads = ["numpy"]\nwork_ms = [300, 300]\nstrategies = ["inline"]\n')
    proc = run_cli("matrix", "--config", str(path), "--out", str(tmp_path / "out"), "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: work_ms: the same value twice (300 and 300)"
    assert not (tmp_path / "out").exists()


def test_matrix_ids_of_committed_runs_are_unchanged() -> None:
    reference = ROOT / "results" / "reference"
    for manifest in sorted(reference.glob("*/manifest.json")):
        config = json.loads(manifest.read_text())["config"]
        planned = {p.cell_id for p in matrix_spec.expand(config, source=str(manifest)).cells}
        assert planned == {p.stem for p in (manifest.parent / "cells").glob("*.json")}, manifest


def test_fixtures_are_planned_by_the_matrix_engine() -> None:
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_fixtures
    finally:
        sys.path.remove(str(FIXTURES))
    for name, matrix in (("run_a", make_fixtures.matrix_a()), ("run_b", make_fixtures.matrix_b())):
        files = {p.stem for p in (FIXTURES / name / "cells").glob("*.json")}
        assert {p.cell_id for p in matrix.cells} == files


# -- records -----------------------------------------------------------------


def test_old_records_are_upgraded_in_one_place() -> None:
    _, rec = _records()[0]
    old = copy.deepcopy(rec)
    old["schema_version"] = 1
    for key in ("ticker_lag_ms", "job_cpu_ms"):
        del old[key]
    del old["disconnects"]["by_initiator"]
    del old["params"]["client_pings"], old["params"]["handler_ping_timeout"]
    new = record.load(old)
    assert new["schema_version"] == record.SCHEMA_VERSION and old["schema_version"] == 1
    assert new["params"]["client_pings"] is True and new["params"]["handler_ping_timeout"] is None
    row = tidy.flatten(old)
    assert row["disconnects_by_client"] == 0 and row["ticker_lag_p99_ms"] != row["ticker_lag_p99_ms"]
    with pytest.raises(ValueError, match=f"unsupported schema_version {record.SCHEMA_VERSION + 1}"):
        record.upgrade({**rec, "schema_version": record.SCHEMA_VERSION + 1})


def test_the_engine_writes_the_current_version() -> None:
    from wsblock.engine import assemble

    assert "SCHEMA_VERSION" in assemble.build.__globals__
    assert assemble.build.__globals__["SCHEMA_VERSION"] == record.SCHEMA_VERSION == 5
    failed = record.failed(params={}, error="error: x", exit_code=2, stderr_tail=[], meta={})
    assert failed["schema_version"] == record.SCHEMA_VERSION and failed["error"] == "x"


# -- catalogues --------------------------------------------------------------


def test_a_new_workload_module_is_discovered_without_editing_a_list(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sleepy_extra.py").write_text(
        "import time\n"
        "from workloads.base import Workload\n\n"
        "class Sleepy(Workload):\n"
        "    name = 'sleepy_extra'\n"
        "    order = 25\n"
        "    description = 'test workload'\n"
        "    gil = 'releases it'\n"
        "    unit = 'ms'\n"
        "    max_units = 10\n"
        "    calibration_start = 1\n\n"
        "    def steps(self, job):\n"
        "        yield\n\n"
        "WORKLOAD = Sleepy()\n"
    )
    monkeypatch.setattr(workloads, "__path__", [*workloads.__path__, str(tmp_path)])
    monkeypatch.setattr(workloads, "_REGISTRY", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        names = workloads.names()
        # Its declared place in the catalogue, between numpy (20) and blocking_io (30).
        assert names.index("sleepy_extra") == names.index("numpy") + 1
        assert cellmod.workload_key("sleepy_extra") < cellmod.workload_key("blocking_io")
        matrix = matrix_spec.expand({"workloads": ["sleepy_extra"], "work_ms": [1], "strategies": ["thread"]},
                                    source="t")
        assert [p.cell.workload for p in matrix.cells] == ["sleepy_extra"]
    finally:
        sys.modules.pop("workloads.sleepy_extra", None)


def test_strategy_traits_replace_name_checks() -> None:
    from wsblock.engine import strategies

    assert [s for s in strategies.names() if strategies.has(s, "chunks")] == ["chunked"]
    assert [s for s in strategies.names() if strategies.has(s, "out_of_process")] == ["process"]
    assert [s for s in strategies.names() if strategies.has(s, "uses_pool")] == ["thread", "process"]
    assert not strategies.has("nonesuch", "uses_pool")


def test_the_vocabulary_document_is_current() -> None:
    from wsblock.schema.__main__ import vocabulary

    stored = (ROOT / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    assert stored == vocabulary(), "regenerate with: python -m wsblock.schema > docs/vocabulary.md"
