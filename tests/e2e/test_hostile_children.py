"""Everything a cell starts ends with it: a user's function's children, daemons and helper checks.

The functions of ``tests/fixtures/hostile_children.py`` start ``sleep 600``
as a plain child, in a session of its own, as a double-forked daemon and once
per call. Every process of a command run here carries a unique mark in its
environment (``HOSTILE_MARK``, inherited by everything the command starts, and
given to the functions' children explicitly), so the tests find exactly the
processes of the run, by pid, however far they moved from it; anything found
is killed at the end, so a failing test leaks nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                  reason="child subreapers and /proc are Linux only")]

MARK = "HOSTILE_MARK"
GONE_WITHIN_S = 2.0
"""No process of a run may be alive this long after the command has ended."""

QUICK = ["--duration", "2", "--warmup", "0.5", "--close-timeout", "1"]
LONG = ["--duration", "30", "--warmup", "0.5", "--close-timeout", "1"]


def _marked(mark: str) -> dict[int, str]:
    """Live (not zombie) processes carrying ``HOSTILE_MARK=mark``: pid -> command line."""
    wanted = f"{MARK}={mark}".encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if wanted not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found[int(name)] = command
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    """A mark unique to the test; whatever carries it at the end is killed, by pid."""
    token = f"t{secrets.token_hex(8)}"
    try:
        yield token
    finally:
        for pid in _marked(token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start(mark: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, MARK: mark,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "wsblock", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _sleeps(mark: str) -> dict[int, str]:
    return {pid: c for pid, c in _marked(mark).items() if c.startswith("sleep")}


def _wait_for_window(proc: subprocess.Popen[str], mark: str, strays: int = 6, timeout: float = 120.0) -> None:
    """Wait until the server runs and the function has started ``strays`` children that still live."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = _marked(mark)
        if any("wsblock.engine.server" in c for c in found.values()) and len(_sleeps(mark)) >= strays:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended first: {proc.communicate()[1]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no server with {strays} children of the function: {_marked(mark)}")


def _wait_for(proc: subprocess.Popen[str], mark: str, text: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(text in c for c in _marked(mark).values()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended first: {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no process running {text!r}: {_marked(mark)}")


def _left_after_end(mark: str) -> dict[int, str]:
    """What still carries the mark :data:`GONE_WITHIN_S` after the command ended (empty if nothing)."""
    end = time.monotonic() + GONE_WITHIN_S
    while (left := _marked(mark)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("strategy", ["inline", "process"])
def test_a_cell_ends_every_child_of_the_function_and_counts_them(strategy: str, mark: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "cell.json"
    proc = _start(mark, tmp_path, "run", "--quiet", "--workload", "hostile_children:everything",
                  "--param", f"mark={mark}", "--strategy", strategy, "--out", str(out), *QUICK)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert not _left_after_end(mark)
    rec = json.loads(out.read_text())
    # Children that left their process groups (one in its own session and a
    # daemon, from the trial calls and from the server or its workers) were
    # ended and counted; those still in a group end with it, uncounted, so
    # how many of each kind were strays depends on timing: at least the two
    # kinds that always leave, once.
    assert rec["processes"]["subreaper"] is True
    assert rec["processes"]["strays_ended"] >= 2, rec["processes"]
    assert "stray_processes" in [w["code"] for w in rec["warnings"]]
    # The cell ended them itself: nothing was left for the command's guardian.
    assert "warning: ended" not in err


@pytest.mark.parametrize("strategy", ["inline", "process"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_nothing_outlives_an_interrupted_or_killed_run(strategy: str, sig: int, mark: str,
                                                        tmp_path: Path) -> None:
    proc = _start(mark, tmp_path, "run", "--quiet", "--workload", "hostile_children:everything",
                  "--param", f"mark={mark}", "--strategy", strategy, *LONG)
    _wait_for_window(proc, mark)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    assert not _left_after_end(mark)


def test_nothing_outlives_a_killed_matrix(mark: str, tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('workloads = ["hostile_children:everything"]\nstrategies = ["process"]\n'
                      'duration = 30\nwarmup = 0.5\nclose_timeout = 1\n'
                      f'[params."hostile_children:everything"]\nmark = "{mark}"\n')
    proc = _start(mark, tmp_path, "matrix", "--quiet", "--config", str(config), "--out", str(tmp_path / "run"))
    _wait_for_window(proc, mark)
    proc.kill()
    proc.communicate(timeout=60)
    assert not _left_after_end(mark)


@pytest.mark.parametrize("command", ["run", "matrix"])
def test_a_killed_command_takes_its_worker_load_check_along(command: str, mark: str, tmp_path: Path) -> None:
    # The check imports the function in a fresh interpreter, as a pool's
    # worker would; this module takes ten minutes to import there.
    if command == "run":
        args = ["run", "--quiet", "--workload", "slow_to_load:work", "--strategy", "process", *QUICK]
    else:
        config = tmp_path / "m.toml"
        config.write_text('workloads = ["slow_to_load:work"]\nstrategies = ["process"]\nduration = 2\n')
        args = ["matrix", "--quiet", "--config", str(config), "--out", str(tmp_path / "run")]
    proc = _start(mark, tmp_path, *args)
    _wait_for(proc, mark, "workloads.lookup")
    proc.kill()
    proc.communicate(timeout=60)
    assert not _left_after_end(mark)


def test_a_signal_to_the_whole_process_group_interrupts_once(mark: str, tmp_path: Path) -> None:
    # The command's front, guardian and worker share a process group: the
    # worker gets its own copy, and the front's is not passed on again.
    env = {**os.environ, MARK: mark}
    proc = subprocess.Popen([sys.executable, "-m", "wsblock", "run", "--quiet", "--workload", "pure_python",
                             "--work-ms", "50", "--strategy", "inline", *LONG], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(proc, mark, "wsblock.engine.load")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: interrupted; every process of the run was stopped"]
    assert not _left_after_end(mark)


def test_a_daemon_returns_to_a_subreaper_and_is_ended(mark: str) -> None:
    # In a process of its own: this one (pytest's) is no subreaper.
    code = ("import os, subprocess, sys\n"
            "from wsblock.engine import reaper\n"
            "assert reaper.become_subreaper()\n"
            "env = {**os.environ, 'HOSTILE_MARK': sys.argv[1]}\n"
            "subprocess.run(['sh', '-c', 'setsid sleep 600 & sleep 600 &'], env=env, check=True)\n"
            "print(reaper.end_descendants(), flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code, mark], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2"]
    assert not _marked(mark)


def test_a_worker_killed_by_a_signal_is_a_harness_failure(capsys: pytest.CaptureFixture[str]) -> None:
    from wsblock.engine.reaper import _front_exit

    assert _front_exit(["0", "9", "0"], 0) == 1
    assert _front_exit(["3", "0", "2"], 0) == 3
    assert _front_exit([], 9 << 8) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: harness failure: the command's process was killed by signal 9 (SIGKILL)",
                   "warning: ended 2 processes the command left running (started by a user's function, "
                   "they had left its process groups)",
                   "error: harness failure: the command's guardian process ended (exit 9)"]
