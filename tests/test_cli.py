"""The command line: listings, and bad input refused with one line and exit 2."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import run_cli


def test_list_shows_workloads_and_strategies() -> None:
    proc = run_cli("list")
    assert proc.returncode == 0
    for name in ("pure_python", "numpy", "blocking_io", "pandas", "c_holds_gil",
                 "inline", "chunked", "thread", "process"):
        assert name in proc.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--workload", "nope", "--work-ms", "10", "--strategy", "inline"], "unknown workload"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "nope"], "unknown strategy"),
        (["--workload", "numpy", "--work-ms", "-5", "--strategy", "inline"], "work_ms"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--duration", "0"], "duration"),
        (["--workload", "c_holds_gil", "--work-ms", "10", "--strategy", "chunked"], "not supported"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--ping-timeout", "soon"], "ping-timeout"),
        (["--workload", "pandas", "--work-ms", "10", "--strategy", "inline", "--param", "chunksize=0"], "chunksize"),
        (["--workload", "numpy", "--strategy", "inline"], "--work-ms"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message) -> None:
    out = tmp_path / "r.json"
    proc = run_cli("run", "--out", str(out), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_a_port_in_use_is_bad_input(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "r.json"
        proc = run_cli("run", "--workload", "blocking_io", "--work-ms", "10", "--strategy", "inline",
                       "--port", str(port), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use"
    assert not out.exists()


def test_calibrate_rejects_unknown_workloads() -> None:
    proc = run_cli("calibrate", "nope")
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown workload")
