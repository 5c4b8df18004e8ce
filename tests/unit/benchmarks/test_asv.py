"""The asv suite: discovery, one real run of the smoke grid, and cleanup on Ctrl-C.

asv runs here in the current environment (``-E existing:same``) with a
generated configuration whose results, HTML and environments live under
``tmp_path`` and whose home directory (where ``asv machine`` writes) is
``tmp_path`` too, so nothing touches the checkout or the user's files.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import ROOT
from wsblock.matrix import spec as matrix_spec
from wsblock.analysis.asv_results import compare_markdown, load_asv_results, load_asv_timings
from wsblock.errors import UsageError

MACHINE = "wsblock-test"
# Command-line fragments of the processes a cell starts.
CELL_MARKERS = ("wsblock.engine.cell_main", "wsblock.engine.server", "wsblock.engine.load")


def _config(tmp_path: Path) -> Path:
    """Write an asv.conf.json that keeps everything inside ``tmp_path``."""
    from asv import util

    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "benchmarks"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
        env_dir=str(tmp_path / "env"),
    )
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def _env(tmp_path: Path, profile: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # WSBLOCK_CACHE_DIR (set by conftest) keeps the calibration out of HOME.
    return {**os.environ, "HOME": str(home), "WSBLOCK_ASV_PROFILE": profile}


def _asv(*args: str) -> list[str]:
    return [sys.executable, "-m", "asv", *args]


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def _run_command(config: Path) -> list[str]:
    # -E existing:same, not --python=same: asv 0.6.6 applies the requirement
    # matrix to --python=same and runs the suite once per websockets version
    # in the same environment.
    return _asv("run", "-E", "existing:same", "--quick", "--set-commit-hash", _head(),
                "--machine", MACHINE, "--show-stderr", "--config", str(config))


def _machine(config: Path, env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(_asv("machine", "--yes", "--machine", MACHINE, "--config", str(config)),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


class Watcher:
    """Record every descendant of a process while it runs.

    Processes are reparented when their parent dies, after which they no
    longer descend from the root; polling the tree while it is intact
    catches each one with its creation time (so a reused pid is not
    mistaken for it).
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[tuple[int, float], str] = {}
        self.parents: dict[tuple[int, float], set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                children = psutil.Process(self.root).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            for child in children:
                try:
                    # Read the command line on every poll: a child caught
                    # between fork and exec still shows its parent's.
                    key = (child.pid, child.create_time())
                    self.seen[key] = " ".join(child.cmdline())
                    # Every ancestor ever seen, not only the parent: a poll can
                    # miss the middle of a chain (front, guardian, worker) yet
                    # see its ends, and a process is reparented when its parent dies.
                    self.parents.setdefault(key, set()).update(ancestor.pid for ancestor in child.parents())
                except psutil.Error:
                    continue
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def matching(self, marker: str) -> list[tuple[int, float]]:
        return [key for key, cmd in self.seen.items() if marker in cmd]

    def commands(self, marker: str) -> list[tuple[int, float]]:
        """Processes matching ``marker`` none of whose ancestors does: a command's guardian and
        worker processes carry its command line (see ``wsblock.engine.reaper``)."""
        pids = {pid for pid, _ in self.matching(marker)}
        return [key for key in self.matching(marker) if not pids & self.parents.get(key, set())]

    def alive(self) -> dict[int, str]:
        """Recorded processes that still run (zombies count as gone)."""
        out = {}
        for (pid, created), cmd in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    out[pid] = cmd
            except psutil.NoSuchProcess:
                pass
        return out

    def wait_gone(self, timeout: float) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def kill_leftovers(self) -> None:
        """Last resort for a failed test: only processes this test started."""
        for pid in self.alive():
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    # A session of its own, like a job in a terminal: Ctrl-C reaches its group.
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- discovery ---------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("profile", ["smoke", "quick", "stack"])
def test_asv_check_passes(tmp_path: Path, profile: str) -> None:
    config = _config(tmp_path)
    proc = subprocess.run(_asv("check", "--python=same", "--config", str(config)), cwd=tmp_path,
                          env=_env(tmp_path, profile), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout


def test_grid_follows_the_profile() -> None:
    from benchmarks import common

    for name in matrix_spec.PROFILES:
        matrix = matrix_spec.load_profile(name)
        grid = common.build_grid(name)
        assert grid.param_names[:5] == list(common.BASE_AXES)
        assert set(grid.param_names[5:]) <= set(common.OPTIONAL_AXES)
        assert grid.params[0] == matrix.definition["workloads"]
        assert grid.params[2] == matrix.definition["strategies"]
        # Shown as asv shows them: 2000, not 2000.0.
        assert [repr(v) for v in grid.params[1]] == [repr(v) for v in matrix.definition["work_ms"]]
        assert sum(len(group) for group in grid.cells.values()) == len(matrix.cells)
        assert len(grid.skipped) == len(matrix.skipped)
        for planned in matrix.cells:
            assert planned in grid.planned(grid.key_of(planned.cell))
        for cell, reason in matrix.skipped:
            with pytest.raises(NotImplementedError, match=re.escape(reason)):
                grid.planned(grid.key_of(cell))
    quick = common.build_grid("quick")
    cell = quick.matrix.cells[0].cell
    with pytest.raises(NotImplementedError, match="not a cell of profile quick"):
        quick.planned(quick.key([cell.workload, cell.work_ms + 1, cell.strategy, cell.ping_interval,
                                 cell.ping_timeout]))


def test_grid_grows_an_axis_only_where_a_profile_varies_it() -> None:
    from benchmarks import common

    smoke = matrix_spec.load_profile("smoke").definition
    varied = matrix_spec.expand({**smoke, "client_pings": [True, False]}, source="varied")
    grid = common.build_grid("varied", varied)
    assert grid.param_names == [*common.BASE_AXES, "client_pings"]
    assert grid.params[-1] == [True, False]
    assert len(grid.cells) == 8
    chunks = matrix_spec.expand({"workloads": ["pandas"], "work_ms": [10], "strategies": ["inline"],
                                 "pandas_chunksize": [1000, 2000]}, source="chunks")
    with pytest.raises(UsageError, match="varies workload parameters"):
        common.build_grid("chunks", chunks)


def test_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common

    monkeypatch.setenv("WSBLOCK_ASV_PROFILE", "huge")
    with pytest.raises(UsageError, match="WSBLOCK_ASV_PROFILE='huge' is not a profile"):
        common.profile_name()


# -- real runs ---------------------------------------------------------------


@pytest.mark.e2e
def test_smoke_profile_through_asv(tmp_path: Path) -> None:
    config = _config(tmp_path)
    env = _env(tmp_path, "smoke")
    _machine(config, env, tmp_path)
    log = tmp_path / "asv.log"
    proc = _start(_run_command(config), env, tmp_path, log)
    watcher = Watcher(proc.pid)
    try:
        proc.wait(timeout=240)
    finally:
        watcher.stop()
        _stop(proc)
    output = log.read_text(errors="replace")
    try:
        assert proc.returncode == 0, output
        assert watcher.wait_gone(30) == {}, "processes outlived asv run"
    finally:
        watcher.kill_leftovers()

    # Each cell ran once for all four metrics, in one setup_cache.
    cells = matrix_spec.load_profile("smoke").cells
    # Polling the process tree every 50 ms can miss a process (it was seen
    # missing one cell in about one run of three) but never invents one: no
    # more cell runs than cells (once per metric would be 16), and a single
    # setup_cache.
    assert 1 <= len(watcher.commands("wsblock.engine.cell_main")) <= len(cells), output
    assert 1 <= len(watcher.matching("wsblock.engine.server")) <= len(cells)
    assert output.count("Setting up common:") == 1

    df = load_asv_results(tmp_path / "results")
    assert len(df) == len(cells) and set(df["status"]) == {"ok"}, df
    assert set(df["machine"]) == {MACHINE} and set(df["commit_hash"]) == {_head()}
    for column in ("disconnect_share", "stall_max_ms", "stalled_share"):
        assert all(math.isfinite(v) for v in df[column]), df[column]
    by = {(r.workload, r.strategy): r for r in df.itertuples()}
    inline, fixed = by[("pure_python", "inline")], by[("blocking_io", "thread")]
    # The physics the smoke profile exists to show.
    assert inline.disconnect_share > 0
    assert fixed.disconnect_share == 0
    # A blocked loop gives the probe too few samples for a p99: the stall
    # figures are the loop measure there.
    assert inline.stall_max_ms > 1000  # the loop sat through whole 1.5 s jobs
    assert inline.stalled_share > 0.5
    assert fixed.stalled_share < 0.05 and math.isfinite(fixed.lag_p99_ms) and fixed.lag_p99_ms < 100
    assert 1000 < fixed.job_ms_p50 < 3000

    timings = load_asv_timings(tmp_path / "results")
    assert len(timings) == 4 and (timings["execute_ms"] > 0).all(), timings

    table = compare_markdown(df.assign(websockets_version=["a", "b"] * 2), by="websockets_version",
                             keys=("workload", "work_ms", "ping_interval", "ping_timeout"))
    assert table.startswith("| change | A: websockets_version a | B: websockets_version b |")


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_interrupted_asv_run_leaves_no_process(tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to asv's group), or asv killed outright (SIGKILL to asv alone)."""
    config = _config(tmp_path)
    env = _env(tmp_path, "smoke")
    _machine(config, env, tmp_path)
    proc = _start(_run_command(config), env, tmp_path, tmp_path / "asv.log")
    watcher = Watcher(proc.pid)
    try:
        # Wait until a cell's server and load processes run, then interrupt.
        deadline = time.monotonic() + 120
        while not watcher.matching("wsblock.engine.load") and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert watcher.matching("wsblock.engine.load"), (tmp_path / "asv.log").read_text(errors="replace")
        time.sleep(0.5)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.kill()
        proc.wait(timeout=60)
        # A cell stopping cleanly takes about 3 s; nothing may linger longer.
        left = watcher.wait_gone(15)
        assert left == {}, f"processes outlived the interrupted asv run: {left}"
    finally:
        watcher.stop()
        _stop(proc)
        watcher.kill_leftovers()
    cell_processes = [watcher.seen[k] for m in CELL_MARKERS for k in watcher.matching(m)]
    assert cell_processes  # the test did see what it claims is gone
