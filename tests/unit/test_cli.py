"""The command line: listings, and bad input refused with one line and exit 2.

Validation is checked in this process (the ``run_main`` fixture calls the
command's ``main()``): it needs no process of its own. One listing and one
refusal run as real processes, for the exit code and stderr a shell sees.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.helpers import run_cli


@pytest.mark.e2e
def test_list_shows_workloads_and_strategies() -> None:
    proc = run_cli("list")
    assert proc.returncode == 0
    for name in ("pure_python", "numpy", "blocking_io", "pandas", "c_holds_gil",
                 "inline", "chunked", "thread", "process"):
        assert name in proc.stdout


@pytest.mark.e2e
def test_a_real_process_refuses_bad_input_with_one_line_and_exit_2(tmp_path) -> None:
    out = tmp_path / "r.json"
    proc = run_cli("run", "--workload", "nope", "--work-ms", "10", "--strategy", "inline", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: unknown workload") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


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
        (["--workload", "numpy", "--work-ms", "1e9", "--strategy", "inline"], "work_ms must be from"),
        (["--workload", "numpy", "--work-ms", "nan", "--strategy", "inline"], "work_ms"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--duration", "1e12"], "duration"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--warmup", "1e9"], "warmup"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--echo-interval-ms", "1e-9"],
         "echo_interval_ms"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--stall-ms", "1e9"], "stall_ms"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--job-connections", "1000"],
         "job_connections"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "process", "--workers", "65"], "workers"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--host", ""], "host"),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--host", "192.0.2.1"],
         "cannot bind 192.0.2.1:0: "),
        (["--workload", "numpy", "--work-ms", "10", "--strategy", "inline", "--ping-interval", "none",
          "--ping-timeout", "1"], "--ping-timeout has no effect"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_main, tmp_path, args, message) -> None:
    out = tmp_path / "r.json"
    proc = run_main("run", "--out", str(out), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_a_port_in_use_is_bad_input(run_main, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "r.json"
        proc = run_main("run", "--workload", "blocking_io", "--work-ms", "10", "--strategy", "inline",
                        "--port", str(port), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use"
    assert not out.exists()


def test_calibrate_rejects_unknown_workloads(run_main) -> None:
    proc = run_main("calibrate", "nope")
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown workload")


@pytest.mark.parametrize("kind", ["directory", "empty", "proc", "unwritable"])
def test_a_bad_out_is_refused_before_anything_starts(run_main, tmp_path, kind) -> None:
    import os
    import time

    target = {"directory": str(tmp_path), "empty": "", "proc": "/proc/self/r.json",
              "unwritable": str(tmp_path / "ro" / "r.json")}[kind]
    immutable = False
    if kind == "unwritable":
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        if os.access(tmp_path / "ro", os.W_OK):
            # Root ignores permissions; an immutable directory stops root too.
            try:
                done = subprocess.run(["chattr", "+i", str(tmp_path / "ro")], capture_output=True, text=True)
            except OSError:
                done = None
            if done is None or done.returncode != 0:
                pytest.skip("running as root where the file system has no immutable flag: nothing stops writes")
            immutable = True
    started = time.monotonic()
    try:
        proc = run_main("run", "--workload", "pure_python", "--work-ms", "3000", "--strategy", "inline",
                        "--duration", "10", "--out", target)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(tmp_path / "ro")], check=True)
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 5.0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out"), proc.stderr
    assert "wsblock:" not in proc.stderr  # no progress: nothing started


@pytest.mark.parametrize(
    "content,message",
    [
        ({"work_ms": 10, "strategy": "inline"}, "missing cell parameter: workload"),
        ({"workload": "numpy", "work_ms": 10, "strategy": "inline", "job_connections": True}, "job_connections"),
        ({"workload": "numpy", "work_ms": "10", "strategy": "inline"}, "work_ms"),
        ({"workload": "numpy", "work_ms": 10, "strategy": "inline", "host": 5}, "host"),
        ({"workload": "numpy", "work_ms": 10, "strategy": "inline", "client_pings": 1}, "client_pings"),
        ({"workload": ["numpy"], "work_ms": 10, "strategy": "inline"}, "unknown workload"),
        ({"workload": "pandas", "work_ms": 10, "strategy": "inline", "workload_params": [1]}, "workload_params"),
        ({"params": [1, 2]}, "must be a JSON object"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_cell_files_are_validated_by_type_with_exit_2(run_main, tmp_path, content, message) -> None:
    import json

    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps(content))
    proc = run_main("run", "--cell", str(cell))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


def test_a_derived_pool_is_capped_like_workers() -> None:
    from wsblock.engine.config import MAX_WORKERS, CellConfig

    cell = CellConfig("pure_python", 10, "process", job_connections=128).validate()
    assert cell.pool_size == MAX_WORKERS == 64
    assert cell.to_dict()["workers"] == 64


def test_a_binary_matrix_file_is_exit_2(run_main, tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(b"\xff\xfe\x00workloads = 1\x80")
    proc = run_main("matrix", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: matrix file") and "UTF-8" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_huge_grid_is_refused_fast_without_yes(run_main, tmp_path) -> None:
    import time

    path = tmp_path / "m.toml"
    path.write_text(
        'workloads = ["pure_python", "numpy", "blocking_io", "pandas", "c_holds_gil"]\n'
        f"work_ms = {list(range(1, 401))}\n"
        'strategies = ["inline", "chunked", "thread", "process"]\n'
        f"ping_timeout = {list(range(1, 201))}\n"
    )
    started = time.monotonic()
    proc = run_main("matrix", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 8.0
    assert "has 1520000 cells, more than 2000; add --yes" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_matrix_estimated_beyond_24_hours_needs_yes(run_main, tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('workloads = ["numpy"]\nwork_ms = [10]\nstrategies = ["inline", "thread", "process"]\n'
                    "ping_timeout = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28]\n"
                    "duration = 2000\nwarmup = 10\n")
    proc = run_main("matrix", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "would run for about 46 h 54 min" in proc.stderr and "more than 24 h; add --yes" in proc.stderr
    assert not (tmp_path / "out").exists()
