"""A user's own function as the workload: loading, checks, matrix files, real cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, ROOT
import workloads
from workloads import Job, execute
from workloads.functions import FunctionWorkload, WorkloadError, entry_points, slug
from wsblock.engine import user_workloads
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema.axes import cell_id

MODULE = textwrap.dedent('''
    def plain(n=1000):
        return sum(range(n))

    def sized(units, scale=1):
        return sum(range(units * scale))

    def stepped(parts=4):
        for _ in range(parts):
            sum(range(1000))
            yield

    def broken():
        raise ValueError("no table named reports")

    def needs(table):
        return table

    async def coroutine():
        return 1

    not_callable = 3
''')


@pytest.fixture()
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``userwork_<n>`` in a fresh working directory; returns its name."""
    name = f"userwork_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_function_is_looked_up_by_its_import_path(user_module: str) -> None:
    plain = workloads.lookup(f"{user_module}:plain")
    assert isinstance(plain, FunctionWorkload)
    assert plain.qualified_name == f"{user_module}.plain"
    assert (plain.calibrated, plain.generator, plain.chunkable, plain.max_units) == (False, False, False, 1)
    sized = workloads.lookup(f"{user_module}:sized")
    assert sized.calibrated and not sized.chunkable
    stepped = workloads.lookup(f"{user_module}:stepped")
    assert stepped.generator and stepped.chunkable
    # The catalogue stays the built-in one; a function is found by its path.
    assert f"{user_module}:plain" not in workloads.names()
    assert workloads.get(f"{user_module}:plain") is plain


def test_each_yield_of_a_generator_is_a_step(user_module: str) -> None:
    name = f"{user_module}:stepped"
    params = workloads.lookup(name).resolve_params({"parts": 7})
    assert execute(Job(name, 1, chunk_units=1, params=params)).steps == 7
    assert execute(Job(f"{user_module}:plain", 1, chunk_units=1)).steps == 1


def test_a_calibrated_function_gets_units_as_a_keyword(user_module: str) -> None:
    calls = []
    module = sys.modules.get(user_module) or __import__(user_module)
    workload = FunctionWorkload("x:y", lambda units, scale=1: calls.append((units, scale)))
    workload.steps(Job("x:y", 5, chunk_units=5, params={"scale": 2})).__next__()
    assert calls == [(5, 2)]
    assert module.sized(units=3) == 3


@pytest.mark.parametrize("suffix,message", [
    ("nothing", "has no attribute nothing"),
    ("not_callable", r"not_callable is not callable \(int\)"),
    ("coroutine", "is a coroutine function"),
])
def test_a_bad_function_is_refused_with_its_cause(user_module: str, suffix: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        workloads.lookup(f"{user_module}:{suffix}")


def test_import_errors_and_malformed_paths_name_the_cause() -> None:
    with pytest.raises(WorkloadError, match="cannot import no_such_module_xyz: ModuleNotFoundError"):
        workloads.lookup("no_such_module_xyz:work")
    with pytest.raises(WorkloadError, match="expected package.module:function"):
        workloads.lookup("a b:c")
    with pytest.raises(WorkloadError, match="unknown workload"):
        workloads.lookup("nope")


def test_keyword_arguments_are_checked_against_the_signature(user_module: str) -> None:
    plain = workloads.lookup(f"{user_module}:plain")
    assert plain.resolve_params({"n": 5}) == {"n": 5}
    with pytest.raises(WorkloadError, match=r"unknown parameter m \(accepted: n\)"):
        plain.resolve_params({"m": 5})
    with pytest.raises(WorkloadError, match="units is set by the calibration"):
        workloads.lookup(f"{user_module}:sized").resolve_params({"units": 5})
    with pytest.raises(WorkloadError, match="missing parameter table"):
        workloads.lookup(f"{user_module}:needs").resolve_params({})
    with pytest.raises(WorkloadError, match="they enter file names"):
        workloads.lookup(f"{user_module}:needs").resolve_params({"table": "../etc"})
    with pytest.raises(WorkloadError, match="must be a number"):
        plain.resolve_params({"n": [1, 2]})


def test_cell_ids_of_functions_are_file_names_and_built_in_ids_do_not_change(user_module: str) -> None:
    cell = CellConfig(f"{user_module}:plain", None, "thread", ping_interval=1, ping_timeout=1,
                      workload_params={"n": 5}).validate()
    ident = cell_id(cell.to_dict(), repeat=0, settings=False)
    assert ident == f"{user_module}+plain-thread-pi1-pt1-n5-r0"
    assert "/" not in ident and ":" not in ident
    assert slug("a.b:c") != slug("a:b.c")
    builtin = CellConfig("pure_python", 200, "inline", ping_interval=0.5, ping_timeout=0.5).validate()
    assert cell_id(builtin.to_dict(), repeat=0, settings=False) == "pure_python-200ms-inline-pi0.5-pt0.5-r0"


def test_work_ms_of_a_function_called_once_is_set_aside(user_module: str) -> None:
    cell = CellConfig(f"{user_module}:plain", 500, "inline").validate()
    assert cell.work_ms is None and cell.ignored_work_ms == 500
    assert "ignored_work_ms" not in cell.to_dict()
    with pytest.raises(UsageError, match="work_ms is required"):
        CellConfig(f"{user_module}:sized", None, "inline").validate()
    with pytest.raises(UsageError, match="a generator function runs chunked"):
        CellConfig(f"{user_module}:plain", None, "chunked").validate()


def test_a_process_pool_needs_a_function_a_fresh_interpreter_can_load() -> None:
    # A module that exists only in this process (as one defined in a
    # notebook or a script's __main__ would): workers could not find it.
    module = types.ModuleType("only_here_xyz")
    module.work = lambda: None  # type: ignore[attr-defined]
    sys.modules["only_here_xyz"] = module
    try:
        cell = CellConfig("only_here_xyz:work", None, "process").validate()
        with pytest.raises(UsageError, match=r"only_here_xyz:work cannot be loaded in a worker process "
                                             r"\(process\): .*No module named 'only_here_xyz'"):
            user_workloads.check_for_strategy(cell)
        user_workloads.check_for_strategy(CellConfig("only_here_xyz:work", None, "thread").validate())
    finally:
        del sys.modules["only_here_xyz"]


def test_entry_points_register_functions_and_workloads(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    class Point:
        def __init__(self, name: str, obj: object, value: str = "pkg.mod:obj") -> None:
            self.name, self.obj, self.value = name, obj, value

        def load(self) -> object:
            if isinstance(self.obj, Exception):
                raise self.obj
            return self.obj

    points = [Point("report_render", lambda rows=10: None), Point("pure_again", workloads.get("pure_python")),
              Point("broken_pkg", ImportError("no module named pkg")), Point("number", 3)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points if group == "wsblock.workloads" else [])
    found, broken = entry_points()
    assert isinstance(found["report_render"], FunctionWorkload)
    assert found["report_render"].name == "report_render"
    assert "names a workload called 'pure_python'" in broken["pure_again"]
    assert "cannot load entry point pkg.mod:obj: ImportError" in broken["broken_pkg"]
    assert "neither a function nor a Workload" in broken["number"]


def test_matrix_params_table_and_work_ms_for_functions(user_module: str) -> None:
    matrix = matrix_spec.expand({
        "workloads": [f"{user_module}:plain", f"{user_module}:sized", "pure_python"],
        "work_ms": [100, 200], "strategies": ["inline", "thread"],
        "params": {f"{user_module}:plain": {"n": [10, 20]}, f"{user_module}:sized": {"scale": 2}},
    }, source="t")
    ids = [p.cell_id for p in matrix.cells]
    plain = [i for i in ids if "+plain" in i]
    # work_ms is no axis of a function called once per job: one cell per
    # strategy and argument, not one per ignored work_ms.
    assert sorted(plain) == sorted(f"{user_module}+plain-{s}-pi20-pt20-n{n}-r0"
                                   for s in ("inline", "thread") for n in (10, 20))
    assert f"{user_module}+sized-200ms-thread-pi20-pt20-scale2-r0" in ids
    assert "pure_python-100ms-inline-pi20-pt20-r0" in ids
    only = matrix_spec.expand({"workloads": [f"{user_module}:plain"], "strategies": ["inline"]}, source="t")
    assert [p.cell.work_ms for p in only.cells] == [None]
    with pytest.raises(UsageError, match="needs the key 'work_ms'"):
        matrix_spec.expand({"workloads": [f"{user_module}:sized"], "strategies": ["inline"]}, source="t")
    with pytest.raises(UsageError, match="unknown parameter scale"):
        matrix_spec.expand({"workloads": [f"{user_module}:plain"], "strategies": ["inline"],
                            "params": {"scale": 1}}, source="t")
    with pytest.raises(UsageError, match="no workload is a function"):
        matrix_spec.expand({"workloads": ["pure_python"], "work_ms": 1, "strategies": ["inline"],
                            "params": {"n": 1}}, source="t")


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "wsblock", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240, env=env)


@pytest.mark.e2e
@pytest.mark.parametrize("args,message", [
    (["--workload", "{m}:broken", "--strategy", "thread"],
     "error: {m}:broken raised ValueError: no table named reports (on a trial call)"),
    (["--workload", "{m}:sized", "--strategy", "thread"], "error: the following arguments are required: --work-ms"),
])
def test_errors_of_the_function_are_one_line_and_exit_2_before_any_server(
        user_module: str, tmp_path: Path, args: list[str], message: str) -> None:
    proc = _cli(tmp_path, "run", *[a.format(m=user_module) for a in args], "--duration", "1")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == message.format(m=user_module)
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert not any("starting server" in line for line in lines)


@pytest.mark.e2e
def test_a_function_runs_in_a_process_pool_from_the_working_directory(user_module: str, tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    proc = _cli(tmp_path, "run", "--workload", f"{user_module}:plain", "--strategy", "process",
                "--param", "n=200000", "--work-ms", "300", "--duration", "2", "--warmup", "0.3",
                "--ping-interval", "0.5", "--ping-timeout", "0.5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "work_ms_ignored" in proc.stdout and f"function    {user_module}.plain(n=200000)" in proc.stdout
    rec = json.loads(out.read_text())
    assert rec["params"]["workload"] == f"{user_module}:plain"
    assert rec["params"]["work_ms"] is None and rec["params"]["workload_params"] == {"n": 200000}
    assert rec["work"]["function"] == {"name": f"{user_module}:plain", "qualified_name": f"{user_module}.plain",
                                       "calibrated": False, "generator": False}
    assert rec["work"]["ignored_work_ms"] == 300 and rec["work"]["units"] == 1
    assert rec["job_ms"]["completed"] > 0 and rec["work"]["expected_ms"] > 0
    assert [w["code"] for w in rec["warnings"]].count("work_ms_ignored") == 1


def test_asv_reads_a_matrix_file_with_functions(user_module: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common

    path = tmp_path / "mine.toml"
    path.write_text(f'workloads = ["{user_module}:plain", "pure_python"]\nwork_ms = [50]\n'
                    f'strategies = ["thread", "process"]\n[params]\nn = 100\n')
    monkeypatch.setenv("WSBLOCK_ASV_PROFILE", str(path))
    assert common.profile_name() == str(path.resolve())
    grid = common.build_grid(common.profile_name())
    assert grid.params[:3] == [[f"{user_module}:plain", "pure_python"], [None, 50], ["thread", "process"]]
    assert len(grid.cells) == 4
    monkeypatch.setenv("WSBLOCK_ASV_PROFILE", str(tmp_path / "missing.toml"))
    with pytest.raises(UsageError, match="no such matrix file"):
        common.profile_name()


def test_text_arguments_keep_cells_apart_in_tables() -> None:
    from wsblock.analysis import cells as cellmod
    from wsblock.analysis import tidy

    fixture = FIXTURES / "run_a" / "cells" / "pure_python-200ms-inline-pi0.5-pt2-r0.json"
    records = []
    for region in ("north", "south"):
        rec = json.loads(fixture.read_text())
        rec.pop("matrix", None)
        rec["params"].update(workload="mod:fn", work_ms=None, workload_params={"region": region, "full": True})
        records.append(rec)
    df = tidy.frame(records)
    assert list(df["mod:fn_region"]) == ["north", "south"]
    rows = df.to_dict("records")
    first, second = tidy.cell_ids(df)
    assert first != second
    assert cellmod.variant(rows[0], df.columns) == "mod:fn (full=true, region=north)"


def test_a_skipped_function_without_work_size_is_listed() -> None:
    from wsblock.report import document
    from wsblock.analysis.cells import Skip

    lines = document._skip_lines([Skip({"workload": "mod:fn", "work_ms": None, "strategy": "chunked",
                                        "ping_timeout": 1.0}, "a single call")])
    assert lines == ["- mod:fn x chunked, 1 cell (ping_timeout 1 s): a single call"]
