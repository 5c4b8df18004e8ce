"""Names that would run code the user did not write: refused before anything is imported or called.

A cell, matrix or record file names functions to call. A function of the
standard library (``os:unlink``) is refused, from a file or the command
line, unless ``--allow-stdlib-functions`` (or the matrix key) allows it; a
dry run imports no user's module; the user's module is loaded from its file,
so stray modules in the working directory are never imported; ``boundary``
makes the trial calls of ``run``, refuses a function without ``units`` and
exits 1 when it measured nothing. The hostile modules are in
``tests/fixtures/hostile``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FIXTURES
import workloads
from workloads import locate
from workloads.functions import WorkloadError, check_value, split
from wsblock import cli
from wsblock.matrix import spec as matrix_spec

HOSTILE = FIXTURES / "hostile"
FAST = ["--duration", "1", "--warmup", "0.3", "--ping-interval", "0.5", "--ping-timeout", "0.5"]


def _wsblock(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -P: the working directory is not on sys.path, as for the installed ``wsblock`` command.
    return subprocess.run([sys.executable, "-P", "-m", "wsblock", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture()
def victim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file in a fresh working directory that a hostile cell tries to delete."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "victim.txt"
    path.write_text("keep me\n")
    return path


def _cell_file(tmp_path: Path, workload: str, params: dict[str, object]) -> str:
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"params": {"workload": workload, "strategy": "inline", "work_ms": None,
                                           "workload_params": params}}))
    return str(path)


def _matrix_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("make_args", [
    lambda d: ["run", "--cell", _cell_file(d, "os:unlink", {"path": "victim.txt"})],
    lambda d: ["run", "--workload", "os:unlink", "--strategy", "inline", "--param", "path=victim.txt"],
    lambda d: ["run", "--workload", "os:system", "--strategy", "inline", "--param", "command=id"],
    lambda d: ["run", "--cell", _cell_file(d, "shutil:rmtree", {"path": ".."})],
    lambda d: ["run", "--workload", "builtins:eval", "--strategy", "inline", "--param", "source=1"],
    # Reached through a module that imports os, or an alias in the user's own module.
    lambda d: ["run", "--workload", "wsblock.engine.proc:os.unlink", "--strategy", "inline",
               "--param", "path=victim.txt"],
    lambda d: ["matrix", "--out", str(d / "out"), "--config", _matrix_file(
        d, 'workloads = ["os:unlink"]\nstrategies = ["inline"]\n[params]\npath = "victim.txt"\n')],
    lambda d: ["matrix", "--dry-run", "--config", _matrix_file(
        d, 'workloads = ["subprocess:run"]\nstrategies = ["inline"]\n')],
    lambda d: ["advise", "os:unlink", "--param", "path=victim.txt", "--out", str(d / "out")],
    lambda d: ["boundary", "--workload", "os:unlink", "--strategy", "inline", "--param", "path=victim.txt",
               "--out", str(d / "out")],
], ids=["cell", "run", "system", "rmtree", "eval", "attribute-path", "matrix", "dry-run", "advise", "boundary"])
def test_a_standard_library_function_is_refused_before_it_is_imported_or_called(
        make_args, victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(make_args(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = _errors(err)
    assert len(lines) == 1 and "standard library" in lines[0] and locate.ALLOW_OPTION in lines[0], err
    assert "Traceback" not in err
    assert victim.read_text() == "keep me\n"
    assert not (tmp_path / "out").exists()


def test_a_refused_module_is_never_imported(capsys: pytest.CaptureFixture[str]) -> None:
    # Importing ``this`` prints the Zen of Python: refused by its name, it prints nothing.
    assert "this" not in sys.modules
    assert cli.main(["run", "--workload", "this:s", "--strategy", "inline"]) == 2
    out, err = capsys.readouterr()
    assert "this" not in sys.modules and "Beautiful" not in out
    assert _errors(err) == [f"error: this:s: module this is part of the standard library, and a workload named in "
                            f"a file or on the command line is refused from it and from builtins "
                            f"({locate.ALLOW_OPTION} runs it anyway)"]


def test_an_alias_of_a_standard_library_function_in_the_users_module_is_refused(
        victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "aliasmod.py").write_text("import os\nremove = os.unlink\n")
    try:
        code = cli.main(["run", "--workload", "aliasmod:remove", "--strategy", "inline",
                         "--param", "path=victim.txt"])
    finally:
        sys.modules.pop("aliasmod", None)
    err = capsys.readouterr().err
    assert code == 2 and "module posix" in _errors(err)[0], err
    assert victim.exists()


@pytest.mark.e2e
def test_the_option_allows_a_standard_library_function_with_a_warning(tmp_path: Path) -> None:
    proc = _wsblock(tmp_path, "run", "--workload", "time:perf_counter", "--strategy", "inline", *FAST,
                    "--quiet", "--allow-stdlib-functions", "--out", str(tmp_path / "rec.json"))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: time:perf_counter")]
    assert len(warnings) == 1 and locate.ALLOW_OPTION in warnings[0], proc.stderr
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["status"] == "ok" and record["throughput"]["jobs_done"] > 0


@pytest.mark.e2e
def test_the_matrix_key_allows_a_standard_library_function_with_a_warning(tmp_path: Path) -> None:
    base = 'workloads = ["time:perf_counter"]\nstrategies = ["inline"]\n'
    refused = _wsblock(tmp_path, "matrix", "--dry-run", "--config", _matrix_file(tmp_path, base))
    assert refused.returncode == 2 and len(_errors(refused.stderr)) == 1, refused.stderr
    allowed = _wsblock(tmp_path, "matrix", "--dry-run", "--config",
                       _matrix_file(tmp_path, base + "allow_stdlib_functions = true\n"))
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.split() == ["time+perf_counter-inline-pi20-pt20-r0"]
    assert "allowed by allow_stdlib_functions in matrix" in allowed.stderr
    wrong = _wsblock(tmp_path, "matrix", "--dry-run", "--config",
                     _matrix_file(tmp_path, base + 'allow_stdlib_functions = "yes"\n'))
    assert wrong.returncode == 2 and _errors(wrong.stderr) == [
        "error: allow_stdlib_functions: expected true or false, got 'yes'"]


def test_standard_library_modules_are_known_by_name_and_by_file() -> None:
    assert locate.is_stdlib("os") and locate.is_stdlib("xml.dom") and locate.is_stdlib("posix")
    assert locate.is_stdlib("anything", origin=json.__file__)
    assert locate.is_stdlib("anything", origin="built-in")
    assert not locate.is_stdlib("pytest", origin=pytest.__file__)
    # A module installed in the environment still works.
    assert isinstance(workloads.lookup("wsblock.paths:data_dir"), workloads.FunctionWorkload)


def test_text_parameters_and_names_are_matched_whole() -> None:
    with pytest.raises(WorkloadError, match="text values"):
        check_value("mod:fn", "path", "abc\n")
    assert check_value("mod:fn", "path", "abc") == "abc"
    with pytest.raises(WorkloadError, match="expected package.module:function"):
        split("mod:fn\n")


def _copy(names: list[str], into: Path) -> None:
    for name in names:
        shutil.copy(HOSTILE / name, into / Path(name).name)


MATRIX = """
workloads = ["markmod:work", "markmod:plain"]
strategies = ["inline", "process"]
work_ms = [5, 10]
[params."markmod:plain"]
n = [1, 2]
"""


@pytest.mark.e2e
def test_a_dry_run_imports_no_users_module_and_lists_the_cells_a_run_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy(["markmod.py"], tmp_path)
    marker = tmp_path / "markmod.imported"
    proc = _wsblock(tmp_path, "matrix", "--dry-run", "--config", _matrix_file(tmp_path, MATRIX))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    monkeypatch.chdir(tmp_path)
    try:
        with workloads.outlines():
            outlined = matrix_spec.expand(matrix_spec.tomllib.loads(MATRIX), source="t")
        assert "markmod" not in sys.modules and not marker.exists()
        imported = matrix_spec.expand(matrix_spec.tomllib.loads(MATRIX), source="t")
        assert marker.exists()  # the real expansion imports it: the outline has its signature
    finally:
        sys.modules.pop("markmod", None)
    ids = [p.cell_id for p in imported.cells]
    assert [p.cell_id for p in outlined.cells] == ids == proc.stdout.split()
    assert len(ids) == 2 * 2 + 2 * 2  # work at two work_ms; plain once per job, at two n


@pytest.mark.e2e
def test_a_dry_run_of_a_function_it_cannot_read_says_so(tmp_path: Path) -> None:
    (tmp_path / "made.py").write_text("open('made.imported', 'w').close()\nwork = (lambda: lambda units: 1)()\n")
    proc = _wsblock(tmp_path, "matrix", "--dry-run", "--config", _matrix_file(
        tmp_path, 'workloads = ["made:work"]\nstrategies = ["inline"]\nwork_ms = 5\n'))
    assert proc.returncode == 2 and len(_errors(proc.stderr)) == 1, proc.stderr
    assert "run without --dry-run" in proc.stderr
    assert not (tmp_path / "made.imported").exists()


@pytest.mark.e2e
def test_stray_modules_in_the_working_directory_are_never_imported(tmp_path: Path) -> None:
    # pandas looks for numexpr, bottleneck and pyarrow; json is the standard library's; the process pool
    # loads the user's module by its path.
    _copy(["markmod.py", "planted/json.py", "planted/numexpr.py", "planted/bottleneck.py", "planted/pyarrow.py"],
          tmp_path)
    proc = _wsblock(tmp_path, "matrix", "--quiet", "--out", str(tmp_path / "out"), "--config", _matrix_file(
        tmp_path, 'workloads = ["markmod:plain"]\nstrategies = ["process"]\nduration = 1\nwarmup = 0.3\n'
                  'ping_interval = 0.5\nping_timeout = 0.5\n'))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "markmod.imported").exists()
    assert sorted(p.name for p in tmp_path.glob("*.imported")) == ["markmod.imported"]
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*.json")]
    assert record["status"] == "ok" and record["throughput"]["server_jobs_done"] > 0


@pytest.mark.e2e
@pytest.mark.parametrize("function,code,says", [
    ("boom", 2, "raising:boom raised RuntimeError: boom (on a trial call)"),
    ("plain", 2, "raising:plain has no units parameter"),
    ("in_cells", 1, "1 of 1 searches measured no cell"),
])
def test_boundary_calls_the_function_first_and_never_exits_0_without_a_measurement(
        tmp_path: Path, function: str, code: int, says: str) -> None:
    _copy(["raising.py"], tmp_path)
    out = tmp_path / "out"
    proc = _wsblock(tmp_path, "boundary", "--workload", f"raising:{function}", "--strategy", "inline",
                    "--budget", "1", "--out", str(out), *FAST)
    assert proc.returncode == code, proc.stderr
    lines = _errors(proc.stderr)
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.exists() == (code == 1)  # refused before the run directory is made
