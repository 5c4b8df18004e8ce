"""A user's function cannot take the harness down or make it lie.

Each hostile function (``tests/fixtures/hostile``) is run through the real
command line: what it does at import, on its trial call or in a job of the
server (``sys.exit``, ``os._exit``, ``KeyboardInterrupt``, another
``BaseException``, never returning, printing, changing directory) ends as
one ``error:`` line and the exit code of its kind (2: the function is bad
input, refused before any server; 1: the cell failed, with its cause in the
record), never 0, never 130, never a traceback. Each case has a
well-behaved counterpart that measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import helpers

pytestmark = pytest.mark.e2e

FIXTURES = helpers.FIXTURES / "hostile"
CELL = ("--strategy", "inline", "--duration", "2", "--warmup", "0.5", "--close-timeout", "1")


def _wsblock(*args: str, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    # The fixtures are importable from the environment (PYTHONPATH), as an
    # installed package of the user's would be.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "wsblock", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _one_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _record(path: Path) -> dict[str, Any]:
    from wsblock.schema import record

    rec = json.loads(path.read_text())
    record.check_types(rec)
    return rec


@pytest.mark.parametrize(("function", "cause"), [
    ("exits", "SystemExit(0)"),
    ("hard_exit", "exit status 0"),
    ("interrupts", "KeyboardInterrupt"),
    ("odd", "Odd: not an Exception"),
])
def test_a_function_that_ends_its_trial_call_is_refused(tmp_path: Path, function: str, cause: str) -> None:
    out = tmp_path / "cell.json"
    proc = _wsblock("run", "--quiet", "--workload", f"wsb_hostile_calls:{function}", *CELL, "--out", str(out),
                    cwd=tmp_path)
    _one_error(proc, 2, f"wsb_hostile_calls:{function}", cause, "trial call")
    assert not out.exists()


@pytest.mark.parametrize(("module", "cause"), [
    ("wsb_hostile_exit_at_import", "SystemExit(0)"),
    ("wsb_hostile_hard_exit_at_import", "exit status 0"),
])
def test_a_module_that_exits_at_import_is_refused(tmp_path: Path, module: str, cause: str) -> None:
    proc = _wsblock("run", "--quiet", "--workload", f"{module}:work", *CELL, cwd=tmp_path)
    _one_error(proc, 2, f"{module}:work", cause, "import")


def test_a_function_that_never_returns_is_refused_at_the_trial_limit(tmp_path: Path) -> None:
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:never_returns", *CELL,
                    "--trial-timeout", "1", cwd=tmp_path, timeout=60)
    _one_error(proc, 2, "never_returns", "within 1 s", "--trial-timeout")
    # An endless generator under chunked: the same limit.
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:endless", "--strategy", "chunked",
                    "--duration", "2", "--trial-timeout", "1", cwd=tmp_path, timeout=60)
    _one_error(proc, 2, "endless", "within 1 s")
    bad = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:behaves", *CELL, "--trial-timeout", "0",
                   cwd=tmp_path, timeout=60)
    _one_error(bad, 2, "--trial-timeout")


def test_printing_and_changing_directory_do_not_confuse_the_cell(tmp_path: Path) -> None:
    out = tmp_path / "chatty.json"
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_chatty_import:work", *CELL, "--out", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rec = _record(out)
    assert rec["status"] == "ok" and rec["throughput"]["completed_in_window"] > 0
    # The server's import printed both lines; neither reached the control channel.
    assert '{"event": "ready", "port": 1}' in rec["user_output"]["stdout"]
    assert "starting up the reports module" in rec["user_output"]["stdout"]
    assert "user_output" in proc.stdout  # the summary says the work wrote something

    out = tmp_path / "prints.json"
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:prints", *CELL, "--out", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rec = _record(out)
    assert rec["status"] == "ok" and rec["throughput"]["completed_in_window"] > 0
    output = rec["user_output"]
    assert output["stdout"].endswith("a line of the function's own\n") and len(output["stdout"]) <= 4096
    assert output["truncated"] and "and one on stderr" in output["stderr"]

    # os.chdir in every job, in a relative --out: the server and the record are unaffected.
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:wanders", *CELL, "--out", "wanders.json",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _record(tmp_path / "wanders.json")["throughput"]["completed_in_window"] > 0


@pytest.mark.parametrize(("function", "strategy", "cause"), [
    ("exits_in_server", "inline", "SystemExit(0) in a job (inline)"),
    ("interrupts_in_server", "thread", "KeyboardInterrupt in a job (thread)"),
    ("hard_exit_in_server", "inline", "os._exit"),
])
def test_a_job_that_ends_the_server_fails_the_cell_with_its_cause(tmp_path: Path, function: str, strategy: str,
                                                                   cause: str) -> None:
    out = tmp_path / "cell.json"
    proc = _wsblock("run", "--quiet", "--workload", f"wsb_hostile_calls:{function}", *CELL, "--strategy", strategy,
                    "--out", str(out), cwd=tmp_path)
    _one_error(proc, 1, function, cause)
    rec = _record(out)
    assert rec["status"] == "failed" and cause in rec["error"] and function in rec["error"]


def test_a_job_that_never_returns_fails_the_cell(tmp_path: Path) -> None:
    out = tmp_path / "cell.json"
    proc = _wsblock("run", "--quiet", "--workload", "wsb_hostile_calls:hangs_in_server", *CELL,
                    "--out", str(out), cwd=tmp_path, timeout=90)
    _one_error(proc, 1, "hangs_in_server", "had not returned")
    assert _record(out)["status"] == "failed"


def test_a_matrix_goes_on_past_a_cell_whose_job_exits(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('workloads = ["wsb_hostile_calls:behaves", "wsb_hostile_calls:exits_in_server"]\n'
                      'strategies = ["inline"]\nduration = 2\nwarmup = 0.5\nclose_timeout = 1\n'
                      'ping_interval = "none"\nping_timeout = "none"\n')
    out = tmp_path / "run"
    # A short trial limit refuses nothing that returns in time.
    proc = _wsblock("matrix", "--quiet", "--config", str(config), "--out", str(out), "--trial-timeout", "10",
                    cwd=tmp_path, timeout=180)
    _one_error(proc, 1, "1 of 2 cells")
    records = {r["params"]["workload"]: r for r in (_record(p) for p in (out / "cells").glob("*.json"))}
    assert records["wsb_hostile_calls:behaves"]["status"] == "ok"
    failed = records["wsb_hostile_calls:exits_in_server"]
    assert failed["status"] == "failed" and "SystemExit(0) in a job" in failed["error"]


def test_a_matrix_and_advise_refuse_a_function_that_exits_on_its_trial_call(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('workloads = ["wsb_hostile_calls:behaves", "wsb_hostile_calls:exits"]\n'
                      'strategies = ["inline"]\nduration = 2\n')
    proc = _wsblock("matrix", "--quiet", "--config", str(config), "--out", str(tmp_path / "run"), cwd=tmp_path)
    _one_error(proc, 2, "wsb_hostile_calls:exits", "SystemExit(0)")
    assert not (tmp_path / "run" / "cells").exists() or not list((tmp_path / "run" / "cells").iterdir())
    proc = _wsblock("advise", "wsb_hostile_calls:interrupts", "--out", str(tmp_path / "advise-call"),
                    "--quiet", cwd=tmp_path)
    _one_error(proc, 2, "wsb_hostile_calls:interrupts", "KeyboardInterrupt")
    proc = _wsblock("advise", "wsb_hostile_exit_at_import:work", "--out", str(tmp_path / "advise-import"),
                    "--quiet", cwd=tmp_path)
    _one_error(proc, 2, "wsb_hostile_exit_at_import", "SystemExit(0)")


def test_advise_says_why_a_cell_failed(tmp_path: Path) -> None:
    proc = _wsblock("advise", "wsb_hostile_calls:exits_in_the_server", "--strategy", "inline", "--repeats", "1",
                    "--ping-interval", "1", "--ping-timeout", "1", "--out", str(tmp_path / "advise"), "--quiet",
                    cwd=tmp_path, timeout=180)
    _one_error(proc, 1, "1 cell failed", "exits_in_the_server raised SystemExit(0)")


def test_a_printed_event_cannot_tell_a_matrix_that_a_cell_was_measured(tmp_path: Path) -> None:
    # A matrix's cell process (``wsblock.engine.cell_main --events``) sends
    # "measured" on a pipe the matrix gave it; the same line printed by the
    # user's module at import stays on stdout, where nothing reads events.
    from wsblock.engine.proc import EVENTS_ENV

    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"workload": "wsb_hostile_fake_measured:work", "work_ms": None, "strategy": "inline",
                                "duration": 2, "warmup": 0.5, "close_timeout": 1}))

    read_end, write_end = os.pipe()
    env = {**os.environ, EVENTS_ENV: str(write_end),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "wsblock.engine.cell_main", "--events", "--cell", str(cell),
                             "--out", str(tmp_path / "r.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            pass_fds=(write_end,))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as events:
        sent = [json.loads(line) for line in events]
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert sent == [{"event": "measured"}]
    assert '{"event": "measured"}' in out
