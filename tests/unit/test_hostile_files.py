"""Hostile files and paths: each is refused (exit 2) or fails the harness (exit 1) with one line.

Run directories tampered with (a foreign record, values of the wrong type,
a damaged manifest, a second writer), special files (``/dev/zero``, FIFOs),
system directories, names too long, deep JSON, binary text, a full disk.
Everything runs in-process through :func:`wsblock.cli.main`, with cells
replaced by instant fakes: no cell is measured here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import FIXTURES
from wsblock import cli, inputs
from wsblock.engine import meta
from wsblock.matrix import measure as matrix_measure
from wsblock.matrix import reuse as matrix_reuse
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import rundir

FIXTURE_RECORD = next((FIXTURES / "run_a" / "cells").glob("*.json"))

TINY = (
    'workloads = ["blocking_io"]\nwork_ms = [50, 60]\nstrategies = ["inline", "thread"]\n'
    "ping_interval = [1]\nping_timeout = [1]\nduration = 1\nwarmup = 0.5\nclose_timeout = 1\n"
    "job_connections = 1\nobservers = 1\n"
)
LONG_NAME = "n" * 300


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """Fail a case that blocks (a FIFO opened for reading) instead of hanging the suite."""
    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError("the command hung")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fake_measure(planned: matrix_spec.PlannedCell, **_: Any) -> dict[str, Any]:
    """A record of ``planned`` built from a fixture record: nothing is measured."""
    rec = json.loads(FIXTURE_RECORD.read_text())
    rec["params"] = matrix_reuse.expected_params(planned)
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat, "wall_s": 1.0, "overhead_s": 0.5,
                     "parallel": 1, "cores": None, "prestarted": False}
    return rec


@pytest.fixture
def fake_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matrix_measure, "measure_one", fake_measure)
    from wsblock.engine import user_workloads

    monkeypatch.setattr(user_workloads, "preflight", lambda *a, **k: None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``wsblock ARGV`` in this process: exit code, stdout, stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    """The single ``error:`` line of a refused command (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def matrix_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str = "out") -> tuple[Path, Path]:
    """A finished matrix run of fake records: (its config, its directory)."""
    config = tmp_path / "m.toml"
    config.write_text(TINY)
    out = tmp_path / name
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 0, err
    return config, out


# -- one reader of run directories ---------------------------------------------------------------


def test_the_manifest_lists_every_planned_cell_and_a_foreign_record_is_left_out(
        tmp_path, capsys, fake_cells) -> None:
    config, out = matrix_dir(tmp_path, capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest[rundir.PLANNED_KEY]) == sorted(p.stem for p in (out / "cells").glob("*.json"))
    assert len(rundir.load(out).records) == 4 and not rundir.load(out).errors
    # A record from another run (another matrix), copied in.
    foreign = out / "cells" / FIXTURE_RECORD.name
    shutil.copy(FIXTURE_RECORD, foreign)
    # A planned cell's file replaced by another cell's record (params differ).
    planned = sorted((out / "cells").glob("*-60ms-*.json"))[0]
    other = json.loads(sorted((out / "cells").glob("*-50ms-*.json"))[0].read_text())
    other["matrix"]["cell_id"] = planned.stem
    planned.write_text(json.dumps(other))
    loaded = rundir.load(out)
    assert len(loaded.records) == 3
    reasons = {path.name: message for path, message in loaded.errors}
    assert reasons[foreign.name].startswith("foreign record: not a cell of this run")
    assert "parameters differ" in reasons[planned.name]

    code, text, err = run(capsys, "advise", str(out))
    assert code == 0, err
    assert f"warning: left out cells/{foreign.name}: foreign record" in err
    code, text, err = run(capsys, "compare", str(out), str(out))
    assert code == 0 and "2 file(s) left out (unreadable, or not of this run)" in text, err
    assert f"warning: left out cells/{foreign.name}: foreign record" in err
    code, text, err = run(capsys, "findings", "query", str(out), "jobs_per_s", "agg=n")
    assert code == 0 and text.startswith("3<!--"), (text, err)
    assert foreign.name in err and "warning: left out" in err
    # The matrix itself refuses to resume over them, as before.
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2 and foreign.name in one_error(err)


def test_a_manifest_without_a_list_of_cells_decides_nothing() -> None:
    # Runs written before the list existed read as they always did.
    loaded = rundir.load(FIXTURES / "run_a")
    assert loaded.records and not loaded.errors and rundir.PLANNED_KEY not in loaded.manifest


@pytest.mark.parametrize("path, value, shown", [
    (("disconnects", "total"), "abc", "disconnects.total: 'abc' is not a number"),
    (("loop_lag_ms", "p99"), "fast", "loop_lag_ms.p99: 'fast' is not a number"),
    (("loop_lag_ms", "p99"), True, "loop_lag_ms.p99: True is not a number"),
    (("disconnects", "by_code"), {"1011": "x"}, "disconnects.by_code.1011: 'x' is not a number"),
    (("matrix", "repeat"), "x", "matrix.repeat: 'x' is not a whole number"),
    (("params", "ping_interval"), "soon", "params.ping_interval: 'soon' is not"),
    (("survival", "verdict"), 3, "survival.verdict: 3 is not a text"),
])
def test_values_of_the_wrong_type_are_never_reused_nor_shown(
        tmp_path, capsys, fake_cells, path, value, shown) -> None:
    config, out = matrix_dir(tmp_path, capsys)
    target = sorted((out / "cells").glob("*.json"))[0]
    rec = json.loads(target.read_text())
    node = rec
    for key in path[:-1]:
        node = node[key]
    original = node[path[-1]]
    node[path[-1]] = value
    target.write_text(json.dumps(rec))
    # Resume: not an "ok" record to reuse; the run is refused naming it.
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2
    line = one_error(err)
    assert target.name in line and shown in line
    # Readers: set aside with the same reason.
    loaded = rundir.load(out)
    assert len(loaded.records) == 3
    assert [(p.name, shown in m) for p, m in loaded.errors] == [(target.name, True)]
    # A value of the right type reads (the check says yes as well as no).
    node[path[-1]] = 0 if path[0] in ("disconnects", "loop_lag_ms") and path[-1] != "by_code" else original
    target.write_text(json.dumps(rec))
    assert len(rundir.load(out).records) == 4


@pytest.mark.parametrize("damage, reason", [
    (lambda m: {**m, "sessions": "x"}, "sessions: not a list"),
    (lambda m: [1, 2], "a manifest must be a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "started_utc"}, "started_utc: missing"),
    (lambda m: {**m, "sessions": [{**m["sessions"][0], "overhead": {**m["sessions"][0]["overhead"],
                                                                    "wall_s": "x"}}]},
     "sessions[0].overhead.wall_s: not a number"),
    (lambda m: {**m, "config": None}, "config: missing"),
    (lambda m: {**m, "cells": ["a"]}, "cells: not a table"),
])
def test_a_damaged_manifest_is_set_aside_with_a_warning(tmp_path, capsys, fake_cells, damage, reason) -> None:
    config, out = matrix_dir(tmp_path, capsys)
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(damage(json.loads(manifest_path.read_text()))))
    # Readers: the records are still read, the manifest is named.
    loaded = rundir.load(out)
    assert loaded.manifest is None and len(loaded.records) == 4
    assert [(p.name, reason in m) for p, m in loaded.errors] == [("manifest.json", True)]
    code, _, err = run(capsys, "advise", str(out))
    assert code == 0 and "Traceback" not in err and reason in err
    # The matrix keeps it aside and resumes with a new one.
    code, out_text, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 0 and "Traceback" not in err, err
    assert "0 cells measured, 4 already recorded" in out_text
    assert reason in err and "kept as manifest.json.damaged-" in err
    assert rundir.manifest_problem(json.loads(manifest_path.read_text())) is None


def test_places_a_matrix_writes_that_are_not_what_they_should_be_refuse_the_run(
        tmp_path, capsys, fake_cells) -> None:
    config, out = matrix_dir(tmp_path, capsys)
    (out / "cells.csv").unlink()
    (out / "cells.csv").mkdir()
    for planned in sorted((out / "cells").glob("*.json"))[:1]:
        planned.unlink()  # one cell to run again
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2 and "cells.csv exists and is not a regular file" in one_error(err)
    assert len(list((out / "cells").glob("*.json"))) == 3  # nothing ran
    # Special files where a manifest or a record is read: set aside, never read whole.
    (out / "cells.csv").rmdir()
    (out / "manifest.json").unlink()
    (out / "manifest.json").symlink_to("/dev/zero")
    os.mkfifo(out / "cells" / "fifo.json")
    loaded = rundir.load(out)
    reasons = {p.name: m for p, m in loaded.errors}
    assert "is under /dev" in reasons["manifest.json"]
    assert "not a regular file" in reasons["fifo.json"]
    code, _, err = run(capsys, "advise", str(out))
    assert code == 0 and "fifo.json" in err


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys, fake_cells) -> None:
    config = tmp_path / "m.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    out.mkdir()
    with rundir.lock(out, command="wsblock matrix --config first.toml", started_utc="2026-12-07T05:00:00+00:00"):
        code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
        assert code == 2
        line = one_error(err)
        assert f"pid {os.getpid()}" in line and "2026-12-07T05:00:00" in line and "first.toml" in line
        assert not (out / "cells").exists() and not (out / "manifest.json").exists()
        # Also when the first check passed before the other writer took the lock.
        monkey = pytest.MonkeyPatch()
        monkey.setattr(rundir, "holder", lambda directory: None)
        try:
            code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
        finally:
            monkey.undo()
        assert code == 2 and f"pid {os.getpid()}" in one_error(err)
    # Released: the same command runs.
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 0, err


@pytest.mark.e2e
def test_a_second_matrix_process_on_the_same_out_exits_2(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from wsblock.schema import rundir\n"
         f"with rundir.lock(Path({str(out)!r}), command='wsblock matrix --profile smoke', started_utc='t0'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run([sys.executable, "-m", "wsblock", "matrix", "--profile", "smoke", "--out", str(out),
                               "--quiet"], capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2, proc.stderr
    assert f"pid {holder.pid}" in one_error(proc.stderr) and "--profile smoke" in proc.stderr


def test_the_report_shows_a_hostile_command_as_text(tmp_path, capsys, fake_cells) -> None:
    from markdown_it import MarkdownIt

    _, out = matrix_dir(tmp_path, capsys)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["command"] = "wsblock matrix --config 'x`![p](q.png)`.toml' [click](https://example.invalid) <b>"
    manifest["config_path"] = "``[a](b)``"
    manifest["environment"]["cpu"]["model"] = "[cpu](https://example.invalid) `x` | *y*"
    manifest_path.write_text(json.dumps(manifest))
    code, _, err = run(capsys, "report", str(out))
    assert code == 0, err
    text = (out / "report" / "report.md").read_text()
    page = (out / "report" / "report.html").read_text()
    assert "example.invalid" in text and 'href="https://example.invalid"' not in page
    assert "q.png" in page and 'src="q.png"' not in page
    run_section = text.split("## Run", 1)[1].split("## Cells", 1)[0]
    tokens = MarkdownIt("commonmark").enable("table").parse(run_section)
    inline = [c for t in tokens if t.children for c in t.children]
    assert not [c for c in inline if c.type in ("link_open", "image")]
    codes = [c.content for c in inline if c.type == "code_inline"]
    assert manifest["command"] in codes and manifest["config_path"] in codes


# -- one check of every path and file ----------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "dir"])
def test_special_files_are_refused_as_inputs(tmp_path, capsys, fifo, special) -> None:
    path = {"/dev/zero": "/dev/zero", "fifo": str(fifo), "dir": str(tmp_path)}[special]
    fragment = {"/dev/zero": "under /dev", "fifo": "not a regular file", "dir": "is a directory"}[special]
    cases = [
        ("run", "--cell", path, "--out", str(tmp_path / "r.json")),
        ("matrix", "--config", path, "--dry-run"),
        ("findings", "check", path),
        ("findings", "fill", path),
        ("boundary", "--cell", path, "--out", str(tmp_path / "b")),
    ]
    for argv in cases:
        started = time.monotonic()
        code, _, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert fragment in one_error(err), (argv, err)
        assert time.monotonic() - started < 10


def test_a_fifo_swapped_in_after_the_check_does_not_hang(fifo, monkeypatch) -> None:
    # The check saw a regular file; by the time it is opened, it is a FIFO.
    monkeypatch.setattr(inputs, "check_file", lambda *args, **kwargs: None)
    with pytest.raises(cli.UsageError, match="not a regular file"):
        inputs.read_bytes(fifo, "record")


def test_files_over_the_size_limit_are_refused_without_reading_them(tmp_path, capsys) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(inputs.MAX_JSON_BYTES + 1)  # sparse: nothing is written
    code, _, err = run(capsys, "run", "--cell", str(big))
    assert code == 2 and "more than the" in one_error(err)
    small = tmp_path / "small.txt"
    small.write_text("x" * 100)
    assert inputs.read_text(small, "text", limit=100) == "x" * 100
    with pytest.raises(cli.UsageError, match="more than the 99 accepted"):
        inputs.read_text(small, "text", limit=99)


@pytest.mark.parametrize("argv", [
    ("run", "--workload", "numpy", "--work-ms", "10", "--strategy", "thread", "--out", "OUT/r.json"),
    ("matrix", "--profile", "smoke", "--out", "OUT"),
    ("report", str(FIXTURES / "run_a"), "--out", "OUT"),
    ("advise", "numpy", "--out", "OUT"),
    ("compare", str(FIXTURES / "run_a"), str(FIXTURES / "run_b"), "--out", "OUT/c.md"),
    ("selftest", "--out", "OUT/s.json"),
    ("boundary", "--workload", "numpy", "--strategy", "inline", "--out", "OUT"),
    ("boundary", "model", str(FIXTURES / "run_a"), "--out", "OUT"),
])
@pytest.mark.parametrize("place, fragment", [
    ("/proc/wsblock-out", "is under /proc"),
    ("/sys/wsblock-out", "is under /sys"),
    (f"TMP/{LONG_NAME}", "longer than 255 bytes"),
    ("FILE", "exists and is not a directory"),
])
def test_places_that_cannot_hold_results_are_refused_before_anything_starts(
        tmp_path, capsys, argv, place, fragment) -> None:
    (tmp_path / "FILE").write_text("")
    base = place.replace("TMP", str(tmp_path)).replace("FILE", str(tmp_path / "FILE"))
    args = [a.replace("OUT", base) for a in argv]
    if place == "FILE" and any(a.endswith((".json", ".md")) for a in args):
        fragment = "is not a directory"  # the file's parent is a file
    code, _, err = run(capsys, *args)
    assert code == 2, (args, err)
    assert fragment in one_error(err), (args, err)
    assert not any(p.name != "FILE" for p in tmp_path.iterdir())  # nothing written


def test_a_place_that_refuses_writes_is_refused(tmp_path, capsys, monkeypatch) -> None:
    # A read-only mount or an immutable directory: the write attempt fails.
    import tempfile

    real = tempfile.TemporaryFile

    def refused(*args: Any, dir: Any = None, **kwargs: Any) -> Any:
        if dir is not None and Path(dir).resolve().is_relative_to(tmp_path / "ro"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    for argv in (("matrix", "--profile", "smoke", "--out", str(tmp_path / "ro" / "run")),
                 ("report", str(FIXTURES / "run_a"), "--out", str(tmp_path / "ro" / "rep")),
                 ("compare", str(FIXTURES / "run_a"), str(FIXTURES / "run_b"), "--out",
                  str(tmp_path / "ro" / "c.md"))):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Read-only file system" in one_error(err), (argv, err)
    # The same places are accepted where writes work.
    code, _, err = run(capsys, "matrix", "--profile", "smoke", "--out", str(tmp_path / "rw"), "--dry-run")
    assert code == 0, err


def test_an_immutable_directory_is_refused_for_real_where_the_file_system_has_the_flag(tmp_path, capsys) -> None:
    # Root writes through permissions, not through the immutable flag.
    place = tmp_path / "imm"
    place.mkdir()
    try:
        flagged = subprocess.run(["chattr", "+i", str(place)], capture_output=True).returncode == 0
    except OSError:
        flagged = False
    try:
        if not flagged:
            place.chmod(0o500)  # not root: permissions stop writes
        if os.access(place, os.W_OK) and not flagged:
            return  # root on a file system without the flag: test_a_place_that_refuses_writes covers it
        for argv in (("matrix", "--profile", "smoke", "--out", str(place / "run")),
                     ("report", str(FIXTURES / "run_a"), "--out", str(place)),
                     ("selftest", "--out", str(place / "s.json"))):
            code, _, err = run(capsys, *argv)
            assert code == 2 and "cannot write in" in one_error(err), (argv, err)
        assert not list(place.iterdir())
    finally:
        if flagged:
            subprocess.run(["chattr", "-i", str(place)], check=True)
        place.chmod(0o700)


def test_input_names_too_long_and_system_inputs_are_refused(tmp_path, capsys) -> None:
    for argv, fragment in (
        (("run", "--cell", str(tmp_path / f"{LONG_NAME}.json")), "longer than 255 bytes"),
        (("matrix", "--config", str(tmp_path / f"{LONG_NAME}.toml"), "--dry-run"), "longer than 255 bytes"),
        (("report", str(tmp_path / LONG_NAME)), "longer than 255 bytes"),
        (("findings", "check", f"{tmp_path}/{LONG_NAME}.md"), "longer than 255 bytes"),
        (("run", "--cell", "/proc/self/environ"), "is under /proc"),
        (("advise", "/sys/kernel"), "is under /sys"),
        (("compare", "/proc", str(FIXTURES / "run_a")), "is under /proc"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and fragment in one_error(err), (argv, err)


def test_deep_json_is_refused_or_left_out_never_a_recursion_error(tmp_path, capsys, fake_cells) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    cell = tmp_path / "cell.json"
    cell.write_text(deep)
    code, _, err = run(capsys, "run", "--cell", str(cell))
    assert code == 2 and "nested deeper than" in one_error(err)
    _, out = matrix_dir(tmp_path, capsys)
    (out / "cells" / "deep.json").write_text('{"a": ' + deep + "}")
    (out / "manifest.json").write_text('{"config": ' + "[" * 100 + "]" * 100 + "}")
    loaded = rundir.load(out)
    reasons = {p.name: m for p, m in loaded.errors}
    assert "nested deeper than" in reasons["deep.json"] and "nested deeper than" in reasons["manifest.json"]
    assert len(loaded.records) == 4
    toml = tmp_path / "deep.toml"
    toml.write_text("workloads = " + "[" * 100_000 + "]" * 100_000 + "\n")
    code, _, err = run(capsys, "matrix", "--config", str(toml), "--dry-run")
    assert code == 2 and "nested too deeply" in one_error(err)
    # Nesting within the limit parses (a record nests about 5 levels).
    assert inputs.parse_json("[" * inputs.MAX_JSON_DEPTH + "]" * inputs.MAX_JSON_DEPTH)
    assert inputs.nesting_depth('{"a": "[[[[", "b": [[1]]}') == 3


def test_findings_documents_binary_missing_and_bad_decimals(tmp_path, capsys) -> None:
    binary = tmp_path / "doc.md"
    binary.write_bytes(b"\xff\xfe\x00binary")
    for argv, fragment in (
        (("findings", "check", str(binary)), "is not UTF-8 text"),
        (("findings", "fill", str(binary)), "is not UTF-8 text"),
        (("findings", "fill", str(tmp_path / "missing.md")), "does not exist"),
        (("findings", "check", str(tmp_path / "missing.md")), "does not exist"),
        (("findings", "query", str(FIXTURES / "run_a"), "jobs_per_s", "--decimals", "-1"), "--decimals must be"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and fragment in one_error(err), (argv, err)
    code, text, err = run(capsys, "findings", "query", str(FIXTURES / "run_a"), "jobs_per_s", "--decimals", "0")
    assert code == 0, err


def test_a_full_disk_is_exit_1_with_one_line(tmp_path, capsys, fake_cells, monkeypatch) -> None:
    from wsblock import atomic

    config = tmp_path / "m.toml"
    config.write_text(TINY)
    real = atomic.write_bytes
    written: list[str] = []

    def full(path: Any, data: bytes) -> None:
        if Path(path).parent.name == "cells":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(str(path))
        real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", full)
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 1
    line = one_error(err)
    assert "No space left on device" in line and "cells" in line
    code, _, err = run(capsys, "compare", str(FIXTURES / "run_a"), str(FIXTURES / "run_b"),
                       "--out", str(tmp_path / "cells" / "c.md"))
    assert code == 1 and "No space left on device" in one_error(err)


# -- matrix files obey the command line's rules --------------------------------------------------


def test_a_matrix_with_nothing_to_run_is_refused(tmp_path, capsys) -> None:
    config = tmp_path / "m.toml"
    config.write_text('workloads = ["c_holds_gil"]\nwork_ms = [50]\nstrategies = ["chunked"]\n')
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and "no cell to run: every cell is skipped" in one_error(err)
    assert not (tmp_path / "out").exists()
    config.write_text('workloads = ["c_holds_gil"]\nwork_ms = [50]\nstrategies = ["chunked", "thread"]\n')
    code, _, err = run(capsys, "matrix", "--config", str(config), "--dry-run")
    assert code == 0, err


def test_a_ping_timeout_without_pings_is_refused_in_a_matrix_as_on_the_command_line(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "run", "--workload", "numpy", "--work-ms", "10", "--strategy", "thread",
                       "--ping-interval", "none", "--ping-timeout", "5")
    cli_line = one_error(err)
    assert code == 2 and "has no effect with --ping-interval none (no pings are sent)" in cli_line
    config = tmp_path / "m.toml"
    base = 'workloads = ["numpy"]\nwork_ms = [10]\nstrategies = ["thread"]\n'
    config.write_text(base + 'ping_interval = ["none", 1]\nping_timeout = [5]\n')
    code, _, err = run(capsys, "matrix", "--config", str(config), "--dry-run")
    assert code == 2 and "ping_timeout has no effect with ping_interval none (no pings are sent)" in one_error(err)
    # Without pings and without a timeout, or with both: accepted, as on the command line.
    for tail in ('ping_interval = ["none"]\n', 'ping_interval = [1]\nping_timeout = [5]\n',
                 'ping_interval = ["none"]\nping_timeout = ["none"]\n'):
        config.write_text(base + tail)
        code, _, err = run(capsys, "matrix", "--config", str(config), "--dry-run")
        assert code == 0, (tail, err)


def test_a_huge_grid_is_refused_by_its_count_even_with_yes(tmp_path, capsys) -> None:
    values = ", ".join(str(v) for v in range(1, 1001))
    seconds = ", ".join(f"{v / 10:g}" for v in range(1, 1001))
    config = tmp_path / "huge.toml"
    config.write_text(f'workloads = ["numpy"]\nstrategies = ["thread"]\nwork_ms = [{values}]\n'
                      f"ping_interval = [{seconds}]\nping_timeout = [{seconds}]\n")
    started = time.monotonic()
    code, out, err = run(capsys, "matrix", "--config", str(config), "--yes", "--dry-run")
    assert time.monotonic() - started < 10
    assert code == 2 and "1,000,000,000 cells" in one_error(err) and not out
    # Within the limit, --yes lists them.
    config.write_text('workloads = ["numpy"]\nstrategies = ["thread"]\nwork_ms = [10, 20]\n')
    code, out, err = run(capsys, "matrix", "--config", str(config), "--yes", "--dry-run")
    assert code == 0 and len(out.splitlines()) == 2


def test_git_is_asked_without_optional_locks(tmp_path, monkeypatch) -> None:
    log = tmp_path / "git.log"
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$GIT_OPTIONAL_LOCKS $*" >> {log}\necho 0123abcd\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert meta.git_commit()["commit"] == "0123abcd"
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and all(c.startswith("0 --no-optional-locks ") for c in calls), calls
    assert any(" status " in c for c in calls)


def test_markdown_escaping_makes_foreign_text_inert_and_leaves_names_alone() -> None:
    from markdown_it import MarkdownIt

    from wsblock.report import markdown as md

    parser = MarkdownIt("commonmark").enable("table")
    for text in ("[a](https://example.invalid)", "![p](q.png)", "<b>x</b>", "*x* _y_", "`a` ``b``", "a | b",
                 "\\[a](b)", "# title", "&amp;"):
        html = parser.render(f"- {md.escape(text)}\n")
        assert "<a " not in html and "<img" not in html and "<em>" not in html and "<code>" not in html, text
        assert html.count("<li>") == 1
        code = parser.render(f"- {md.code(text)}\n")
        assert code.count("<code>") == 1 and "<a " not in code and "<img" not in code, text
    assert md.escape("pure_python 3.0 ms, thread (c_holds_gil)") == "pure_python 3.0 ms, thread (c_holds_gil)"
    assert md.code("pure_python") == "`pure_python`"
    table = md.table(["a", "b"], [[md.escape("x|y"), md.code("p|q")]])
    assert parser.render(table).count("<td") == 2


def test_the_lock_is_free_once_its_holder_is_gone(tmp_path) -> None:
    assert rundir.holder(tmp_path) is None
    with rundir.lock(tmp_path, command="wsblock matrix --profile smoke", started_utc="t0"):
        assert f"pid {os.getpid()}" in (rundir.holder(tmp_path) or "")
        with pytest.raises(rundir.Busy, match="--profile smoke"):
            with rundir.lock(tmp_path, command="second", started_utc="t1"):
                pass
    assert rundir.holder(tmp_path) is None  # the file stays; the lock does not
    with rundir.lock(tmp_path, command="second", started_utc="t1"):
        pass


def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_never_written_through(
        tmp_path, capsys, fake_cells) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    config = tmp_path / "m.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2 and "symbolic link" in one_error(err)
    with pytest.raises(cli.UsageError, match="symbolic link"):
        with rundir.lock(out, command="x", started_utc="t"):
            pass
    assert victim.read_text() == "precious\n"
    (out / ".lock").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "cells").symlink_to(elsewhere)
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2 and "cells is a symbolic link" in one_error(err) and not list(elsewhere.iterdir())
    (out / "cells").unlink()
    os.mkfifo(out / ".lock")
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 2 and ".lock exists and is not a regular file" in one_error(err)


RECORD_DAMAGE = [
    ("meta", "x"), ("meta.packages", "x"), ("meta.git", 5), ("meta.git.commit", 5), ("meta.blas", "x"),
    ("meta.memory_gib", "lots"), ("warnings", "x"), ("warnings", [1]), ("params", "x"), ("params.workload", 5),
    ("params.workload_params", "x"), ("params.client_pings", "no"), ("matrix", "x"), ("matrix.cell_id", 5),
    ("status", 5), ("status", "weird"), ("echo_latency_ms", "x"), ("survival", "x"), ("stalls.primary", "yes"),
    ("disconnects.by_initiator", "x"), ("job_ms.lower_bound", 1), ("window", "x"), ("resources", [1]),
    ("throughput.jobs_per_s", "NaN"), ("schema_version", "3"), ("schema_version", True),
]


def _damage(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize("dotted, value", RECORD_DAMAGE)
def test_a_record_damaged_anywhere_is_left_out_never_a_traceback(tmp_path, capsys, fake_cells, dotted, value) -> None:
    _, out = matrix_dir(tmp_path, capsys)
    target = sorted((out / "cells").glob("*.json"))[0]
    rec = json.loads(target.read_text())
    _damage(rec, dotted, value)
    target.write_text(json.dumps(rec))
    loaded = rundir.load(out)
    assert [p.name for p, _ in loaded.errors] == [target.name] and len(loaded.records) == 3
    for argv in (("advise", str(out)), ("compare", str(out), str(out)),
                 ("findings", "query", str(out), "jobs_per_s", "agg=n")):
        code, text, err = run(capsys, *argv)
        assert code == 0 and "Traceback" not in err and target.name in err, (argv, err)


MANIFEST_DAMAGE = [
    ("environment", "x"), ("environment.packages", "x"), ("environment.git.commit", 5), ("environment.cpu", [1]),
    ("command", 5), ("planned", "many"), ("skipped", "x"), ("skipped", [1]), ("hosts", [1]), ("finished_utc", 1),
    ("sessions", [1, 2]), ("cell_params", "x"), ("cells", {"a": 1}),
]


@pytest.mark.parametrize("dotted, value", MANIFEST_DAMAGE)
def test_a_manifest_damaged_anywhere_is_set_aside_never_a_traceback(
        tmp_path, capsys, fake_cells, dotted, value) -> None:
    config, out = matrix_dir(tmp_path, capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    _damage(manifest, dotted, value)
    (out / "manifest.json").write_text(json.dumps(manifest))
    loaded = rundir.load(out)
    assert loaded.manifest is None and [p.name for p, _ in loaded.errors] == ["manifest.json"]
    for argv in (("advise", str(out)), ("compare", str(out), str(out)),
                 ("findings", "query", str(out), "jobs_per_s", "agg=n"),
                 ("matrix", "--config", str(config), "--out", str(out), "--quiet")):
        code, text, err = run(capsys, *argv)
        assert code == 0 and "Traceback" not in err and "manifest.json" in err, (argv, err)


def test_a_file_system_that_cannot_lock_runs_the_matrix_with_a_warning(tmp_path, capsys, fake_cells,
                                                                        monkeypatch) -> None:
    import fcntl

    def unsupported(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    config = tmp_path / "m.toml"
    config.write_text(TINY)
    code, _, err = run(capsys, "matrix", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 0 and "cannot lock files" in err, err
