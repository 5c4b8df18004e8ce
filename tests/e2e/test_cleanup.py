"""Nothing a run starts outlives it: interrupts, a dead worker, a hung server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers import alive, cmdline, descendants

pytestmark = pytest.mark.e2e


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wsblock", "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )


def _wait_for_children(proc: subprocess.Popen[str], names: tuple[str, ...], timeout: float = 60) -> set[int]:
    """Wait until the run's processes (and pool workers) exist; return all pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = descendants(proc.pid)
        # A short-lived process can turn into a zombie between the two calls.
        cmdlines = " ".join(cmdline(p) for p in alive(kids))
        if all(n in cmdlines for n in names):
            return kids
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"run did not start {names}")


def _wait_for_connections(pid: int, timeout: float = 60) -> None:
    """Wait until process ``pid`` has an established TCP connection."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(pid).net_connections("tcp")):
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} accepted no connection")


RUN = ["--workload", "pure_python", "--work-ms", "2000", "--strategy", "process",
       "--duration", "30", "--warmup", "1", "--close-timeout", "1"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_process(sig: int) -> None:
    proc = _start(*RUN)
    pids = _wait_for_children(proc, ("wsblock.engine.server", "wsblock.engine.load", "forkserver"))
    time.sleep(2)  # a job is in flight in a worker
    pids |= descendants(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    time.sleep(0.5)
    assert not alive(pids)


def test_a_dead_worker_fails_the_run_and_leaves_nothing() -> None:
    proc = _start(*RUN)
    pids = _wait_for_children(proc, ("wsblock.engine.server", "wsblock.engine.load", "forkserver"))
    time.sleep(2)
    pids |= descendants(proc.pid)
    server = next(p for p in pids if "wsblock.engine.server" in cmdline(p))
    workers = [p for p in descendants(server)
               if psutil.Process(p).cpu_percent(interval=0.3) > 20]
    assert workers, "no busy pool worker found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err
    assert "worker" in err
    time.sleep(0.5)
    assert not alive(pids)


def test_a_hung_server_is_killed_with_its_group() -> None:
    proc = _start("--workload", "pure_python", "--work-ms", "100", "--strategy", "process",
                  "--duration", "3", "--warmup", "1", "--close-timeout", "1")
    pids = _wait_for_children(proc, ("wsblock.engine.server", "wsblock.engine.load", "forkserver"))
    server = next(p for p in pids if "wsblock.engine.server" in cmdline(p))
    pids |= descendants(server)
    # The load starts beside the server and connects only once the window is
    # sent: wait for its connections, so that the server hangs during the
    # window rather than before it said it was ready.
    _wait_for_connections(server)
    os.kill(server, signal.SIGSTOP)  # hung: it will never answer or exit by itself
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    time.sleep(0.5)
    assert not alive(pids)
