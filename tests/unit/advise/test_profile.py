"""``wsblock profile``: the stall prediction from a call's figures, and the GIL probe on real calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT
from wsblock import cli
from wsblock.advise import holdprobe, loopprobe, profile
from wsblock.advise import stallpred as sp

EXAMPLES = ROOT / "examples"

THRESHOLD = 50.0


def _call(p50: float, *, hold: float, over_share: float, unpickle: float = 0.01) -> sp.Call:
    return sp.Call(p50=p50, max=p50 * 1.1, step_max=p50 * 1.1, hold_max=hold, over_share=over_share,
                   over_per_call=1.0 if over_share else 0.0, unpickle_p50=unpickle, unpickle_max=unpickle)


RELEASES = _call(300.0, hold=2.0, over_share=0.0)
HOLDS = _call(300.0, hold=290.0, over_share=0.95)


def test_a_call_that_releases_the_gil_predicts_no_thread_stall() -> None:
    s = sp.pattern("thread", RELEASES, concurrency=1, threshold_ms=THRESHOLD)
    assert not s.stalls and s.share == 0.0 and s.longest_ms < THRESHOLD


def test_a_call_that_holds_the_gil_predicts_a_thread_stall_as_long_as_the_call() -> None:
    s = sp.pattern("thread", HOLDS, concurrency=1, threshold_ms=THRESHOLD)
    assert s.stalls
    assert 0.9 * HOLDS.p50 <= s.longest_ms <= HOLDS.max
    assert s.share == pytest.approx(0.95)


@pytest.mark.parametrize("n", [1, 3])
def test_inline_predicts_concurrency_times_the_call(n: int) -> None:
    s = sp.pattern("inline", RELEASES, concurrency=n, threshold_ms=THRESHOLD)
    assert n * RELEASES.p50 <= s.longest_ms <= n * RELEASES.max
    # The heartbeat sees one job more than a socket (docs/design.md).
    assert s.heartbeat_ms == pytest.approx(s.longest_ms + RELEASES.p50)
    assert s.stalls and s.share == 1.0


def test_chunked_predicts_concurrency_times_the_longest_step() -> None:
    call = sp.Call(p50=300.0, max=310.0, step_max=12.0, hold_max=300.0, over_share=1.0, over_per_call=1.0)
    s = sp.pattern("chunked", call, concurrency=4, threshold_ms=THRESHOLD)
    assert s.longest_ms == pytest.approx(48.0) and s.stalls  # 4 steps, plus one more on the heartbeat
    assert not sp.pattern("chunked", call, concurrency=1, threshold_ms=THRESHOLD).stalls


def test_process_stalls_for_the_unpickling_of_each_result() -> None:
    small = sp.pattern("process", HOLDS, concurrency=1, threshold_ms=THRESHOLD)
    assert not small.stalls
    large = sp.pattern("process", _call(100.0, hold=20.0, over_share=0.0, unpickle=130.0), concurrency=1,
                       threshold_ms=THRESHOLD)
    assert large.stalls and large.longest_ms == pytest.approx(130.0, abs=1.0)
    assert 0.4 < large.share < 0.7  # one unpickling per call and unpickling time


def test_the_keepalive_forecast_follows_the_stalls() -> None:
    long_hold = _call(900.0, hold=880.0, over_share=0.97)
    predicted = sp.predict_all(long_hold, ["inline", "thread", "process"], concurrency=1, threshold_ms=THRESHOLD,
                               ping_interval=0.5, ping_timeout=0.5, checked=None)
    by = {p.stalls.strategy: p.forecast for p in predicted}
    assert by["inline"].p > 0.95 and by["thread"].p > 0.95
    assert by["process"].p == 0.0
    assert all(f.extrapolated for f in by.values())  # no checked range given
    quiet = sp.predict_all(RELEASES, ["thread"], concurrency=1, threshold_ms=THRESHOLD, ping_interval=0.5,
                           ping_timeout=0.5, checked=None)
    assert quiet[0].forecast.p == 0.0


def test_the_probe_reads_its_lateness_inside_the_call_only() -> None:
    samples = [(0.0, 0.0001), (0.001, 0.2), (0.2011, 0.2012)]
    hold = holdprobe.holds_in(samples, 0.05, 0.15, slack_s=0.0, threshold_ms=THRESHOLD)
    assert hold.longest_ms == pytest.approx(100.0) and hold.over_count == 1 and hold.share == pytest.approx(1.0)


def test_a_loop_stall_longer_than_the_hold_predicts_a_convoy_stall_under_thread() -> None:
    # Pure Python: the probe thread waits one switch interval, the loop beside the call several.
    slices = sp.Call(p50=300.0, max=330.0, step_max=330.0, hold_max=12.0, over_share=0.0, over_per_call=0.0,
                     loop_stall=120.0, loop_over_share=0.4, loop_over_per_call=1.0)
    s = sp.pattern("thread", slices, concurrency=1, threshold_ms=THRESHOLD)
    assert s.stalls and s.longest_ms == pytest.approx(120.0) and s.share == pytest.approx(0.4)
    assert "convoy" in s.mechanism
    # A C call that holds the GIL: the hold leads, as before.
    held = sp.Call(**{**HOLDS.__dict__, "loop_stall": 200.0})
    assert sp.pattern("thread", held, concurrency=1, threshold_ms=THRESHOLD).longest_ms == pytest.approx(290.0)


def _python_for(ms: float) -> None:
    """Pure Python for about ``ms``: holds the GIL but hands it over every switch interval."""
    deadline = time.perf_counter() + ms / 1000.0
    n = 0
    while time.perf_counter() < deadline:
        n += 1


def test_the_loop_probe_stalls_beside_pure_python_and_not_beside_a_sleep() -> None:
    switch_ms = sys.getswitchinterval() * 1000.0
    python, _ = loopprobe.measure(lambda: _python_for(300.0), 2, threshold_ms=THRESHOLD)
    # Wide margins: the loop waits at least about a switch interval for the
    # GIL at each wake-up and so is kept waiting most of the call; whether the
    # waits of one iteration add up past one interval (the convoy) depends on
    # the machine: on a quiet one they did, beside a second busy process
    # (another test worker) the loop waited one interval at a time.
    assert max(s.longest_ms for s in python) > 0.8 * switch_ms, python
    assert min(s.share for s in python) > 0.5, python
    sleeping, _ = loopprobe.measure(lambda: time.sleep(0.3), 2, threshold_ms=THRESHOLD)
    assert max(s.longest_ms for s in sleeping) < THRESHOLD, sleeping
    assert max(s.share for s in sleeping) < 0.3, sleeping
    assert all(s.samples > 10 for s in sleeping)  # the timer ran through each call


@pytest.mark.parametrize("hold, share, runs", [
    (9.0, 0.83, True),     # pure Python: short holds most of the time, the waits may convoy
    (45.0, 0.5, True),     # just under the threshold, half the time
    (170.0, 0.99, False),  # a C call that holds the GIL: the hold decides
    (4.0, 0.04, False),    # a call that releases the GIL: the loop gets it when it asks
    (9.0, 0.49, False),
])
def test_the_loop_probe_runs_only_where_it_can_change_the_thread_prediction(hold: float, share: float,
                                                                           runs: bool) -> None:
    why = profile.loop_probe_needed(hold, share, THRESHOLD)
    assert (why == "") is runs, why


def test_a_busy_machine_is_noted_and_a_quiet_one_is_not() -> None:
    assert "busy while profiling (load average 4.0 on 2 cores)" in profile.busy_note(4.0, 2)
    assert profile.busy_note(2.3, 2) == "" and profile.busy_note(None, 2) == ""


BROKEN = textwrap.dedent('''
    def broken(n=1):
        raise ValueError("no table named reports")
''')


@pytest.mark.parametrize("argv, says", [
    (["profile", "no_such_workload"], "unknown workload"),
    (["profile", "c_holds_gil", "--param", "nope=1"], "--param nope"),
    (["profile", "c_holds_gil", "--concurrency", "0"], "--concurrency"),
])
def test_bad_input_is_one_error_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err


def test_a_function_that_raises_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"profile_broken_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(BROKEN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "profile.json"
    try:
        assert cli.main(["profile", f"{name}:broken", "--quiet", "--out", str(out)]) == 2
    finally:
        sys.modules.pop(name, None)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "ValueError" in err[0], err
    assert not out.exists()


def _profile(tmp_path: Path, target: str, *args: str) -> dict:
    out = tmp_path / f"{target.replace(':', '+')}.json"
    proc = subprocess.run([sys.executable, "-m", "wsblock", "profile", target, *args, "--quiet", "--ping-interval",
                           "0.5", "--ping-timeout", "0.5", "--out", str(out)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    assert "one call takes p50" in proc.stdout and "holds the GIL for up to" in proc.stdout
    return json.loads(out.read_text())


@pytest.mark.e2e
def test_profile_tells_a_gil_holding_call_from_a_releasing_one(tmp_path: Path) -> None:
    holds = _profile(tmp_path, "gil_catalogue:json_parse", "--param", "mb=3")
    releases = _profile(tmp_path, "gil_catalogue:sha256", "--param", "mb=32")
    for rec in (holds, releases):
        assert rec["kind"] == "wsblock.profile" and rec["environment"]["python"]["version"]
        assert rec["profile"]["calls"]["n"] >= 10 and len(rec["profile"]["holds"]) >= 3
        assert set(rec["predictions"]["by_strategy"]) == {"inline", "thread", "process"}
        # The loop probe runs exactly where the gate says it can change the answer.
        p = rec["profile"]
        assert p["loop_skipped"] == profile.loop_probe_needed(p["hold_ms"], p["hold_share"], THRESHOLD)
        assert (p["loop_stalls"] == []) is bool(p["loop_skipped"])
    call = holds["profile"]["calls"]["p50"]
    # Wide margins: a shared machine leaves the probe unscheduled now and then.
    assert holds["profile"]["hold_ms"] >= 0.5 * call and holds["profile"]["hold_share"] >= 0.6
    assert releases["profile"]["hold_share"] <= 0.5
    assert holds["profile"]["transfer"]["result_bytes"] < 100  # a float comes back
    assert "of its time" in releases["profile"]["loop_skipped"]
    assert "not measured" in releases["printed"]


@pytest.mark.e2e
def test_profile_runs_the_loop_probe_beside_pure_python(tmp_path: Path) -> None:
    rec = _profile(tmp_path, "gil_catalogue:python_loop", "--param", "n=500000")
    p = rec["profile"]
    # Pure Python holds the GIL most of the time, in switch-interval slices.
    assert p["hold_share"] >= 0.5 and p["loop_skipped"] == "" and len(p["loop_stalls"]) >= 3
    assert "an event loop beside the call in a thread stalls for up to" in rec["printed"]


SETS_INTERVAL = textwrap.dedent('''
    import sys

    def quick(n=1000):
        sys.setswitchinterval(0.002)
        return sum(range(n))
''')


def test_a_function_that_sets_the_switch_interval_is_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"profile_switch_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(SETS_INTERVAL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = sys.getswitchinterval()
    try:
        assert cli.main(["profile", f"{name}:quick", "--quiet"]) == 0
    finally:
        sys.setswitchinterval(before)
        sys.modules.pop(name, None)
    out = capsys.readouterr().out
    assert "switch interval: 2 ms" in out and "changed the switch interval" in out, out
