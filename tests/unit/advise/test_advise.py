"""``wsblock advise TARGET``: the target check, the keepalive forecast, the recommendation rule, one real run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli
from wsblock.advise import choose as ch
from wsblock.advise import predict
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.analysis import tidy
from wsblock.cli import main

RUN_A = FIXTURES / "run_a"


# --- the target is checked before any server starts -------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch"], "error: unknown workload 'nosuch'"),
    (["./nowhere"], "error: no such directory"),
    (["nomod_advise:fn"], "error: nomod_advise:fn: cannot import nomod_advise"),
    (["c_holds_gil", "--param", "rows=3"], "error: --param rows: c_holds_gil takes no parameters"),
    (["c_holds_gil", "--strategy", "chunked"], "error: no strategy among chunked can run c_holds_gil"),
    (["c_holds_gil", "--concurrency", "0"], "error: --concurrency must be 1 to 256"),
    (["c_holds_gil", "--job-connections", "300"], "error: --concurrency must be 1 to 256"),
    (["c_holds_gil", "--call-budget-ms", "-1"], "error: --call-budget-ms must be a positive number of ms"),
    ([str(RUN_A), "--concurrency", "2"], "error: --concurrency applies to a workload, not to a run directory"),
    (["c_holds_gil", "--work-ms", "-5"], "error: work_ms: expected positive numbers"),
    (["c_holds_gil", "--ping-interval", "none", "--ping-timeout", "3"], "error: --ping-timeout has no effect"),
    ([str(RUN_A), "--work-ms", "5"], "error: --work-ms applies to a workload, not to a run directory"),
])
def test_a_bad_target_or_option_is_one_error_line_and_exit_2(argv: list[str], message: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    extra = ["--out", str(out)] if not Path(argv[0]).is_absolute() and not argv[0].startswith(".") else []
    assert main(["advise", *argv, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert captured.out == "" and not out.exists()


def test_a_function_that_raises_is_refused_before_any_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "advise_broken.py").write_text(textwrap.dedent('''
        def work():
            raise ValueError("no table named reports")
    '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["advise", "advise_broken:work", "--out", str(tmp_path / "run")]) == 2
    finally:
        sys.modules.pop("advise_broken", None)
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("error: advise_broken:work raised ValueError: no table named reports "
                                    "(on a trial call)")
    assert not (tmp_path / "run").exists()


# --- the keepalive forecast from measured stalls -----------------------------

def _records(strategy: str, work_ms: float, timeout: float) -> list[dict]:
    loaded = tidy.load_records(RUN_A).records
    return [r for _, r in loaded if r["params"]["strategy"] == strategy and r["params"]["workload"] == "blocking_io"
            and r["params"]["work_ms"] == work_ms and r["params"]["ping_timeout"] == timeout]


def test_forecast_follows_the_stalls_and_the_settings() -> None:
    inline = _records("inline", 2500, 0.5)
    assert inline and all(r["stalls"]["max_ms"] >= 2000 for r in inline)
    # Stalls of seconds kill a 0.5 s / 0.5 s keepalive, not a 20 s / 20 s one.
    short = predict.forecast(inline, ping_interval=0.5, ping_timeout=0.5)
    assert short is not None and short.outcome == "lost" and short.p > 0.95
    default = predict.forecast(inline, ping_interval=20, ping_timeout=20)
    assert default is not None and default.outcome == "kept" and default.high < 0.05
    assert default.horizon_s == predict.HORIZON_S == 3600
    # A loop that never stalled cannot lose a connection to keepalive.
    thread = predict.forecast(_records("thread", 2500, 0.5), ping_interval=0.5, ping_timeout=0.5)
    assert thread is not None and thread.p == 0.0 and thread.high == 0.0
    assert predict.forecast([], ping_interval=20, ping_timeout=20) is None


def test_at_settings_keeps_the_stalled_share_and_the_longest_stall() -> None:
    record = _records("inline", 200, 0.5)[0]
    out = predict.at_settings(record, ping_interval=20, ping_timeout=20, horizon=140)
    window = record["window"]["duration_s"]
    assert out["params"]["ping_interval"] == 20 and out["window"]["duration_s"] == 140
    assert out["stalls"]["max_ms"] == record["stalls"]["max_ms"]
    assert math.isclose(out["stalls"]["total_ms"] / 140, record["stalls"]["total_ms"] / window)
    assert record["params"]["ping_interval"] == 0.5  # the record itself is untouched


# --- the recommendation rule --------------------------------------------------

def _advice(strategy: str, *, stall: float, share: float, lag: float, stalled: bool, weak: tuple[str, ...] = (),
            lost: int = 0) -> rec.Advice:
    cond = rec.Condition(f"w-{strategy}", 1000, 20, 20, 3)
    return rec.Advice("w", strategy, rec.SLOW_LOOP if stalled else rec.SAFE, cells=1, kept=(cond,),
                      connections=iv.wilson(lost, 18), reference=cond, stall=rec.Quantity(stall, stall, stall, 3),
                      stalled_share=rec.Quantity(share, share, share, 3), lag_p99=rec.Quantity(lag, lag, lag, 3),
                      jobs_per_s=rec.Quantity(1, 1, 1, 3), stalled=(cond,) if stalled else (), repeats=(3, 3),
                      weak=weak)


def _kept(p: float = 0.0) -> ch.Keep:
    f = predict.Forecast(p, p, p, 3, 140)
    return ch.Keep(f.outcome if f.outcome != "near" else "unknown", ch.PREDICTED, None, f)


def test_a_function_that_holds_the_gil_gets_process_and_the_reason() -> None:
    judged = [
        ch.Judged("thread", _advice("thread", stall=1900, share=0.97, lag=1017, stalled=True), _kept()),
        ch.Judged("inline", _advice("inline", stall=2800, share=0.99, lag=2000, stalled=True), _kept(0.3)),
        ch.Judged("process", _advice("process", stall=0, share=0, lag=3.6, stalled=False), _kept()),
    ]
    choice = ch.choose(judged)
    assert choice.strategy == "process"
    assert choice.reasons[0].startswith("process: keeps every connection (predicted from the measured stalls "
                                        "by the boundary model")
    assert "keeps the loop free (loop-lag p99 3.60 ms, no stall over 50 ms)" in choice.reasons[0]
    assert choice.reasons[1].startswith("inline does not keep the loop free: the function held the loop 99 % of the time")
    assert choice.reasons[2].startswith("thread does not keep the loop free, because this function held the "
                                        "loop (GIL) 97 % of the time in the thread cells")


def test_the_cheapest_strategy_that_keeps_the_loop_free_wins() -> None:
    free = dict(stall=0, share=0, lag=2, stalled=False)
    judged = [ch.Judged(s, _advice(s, **free), _kept()) for s in ("process", "thread")]
    judged.append(ch.Judged("chunked", _advice("chunked", stall=66, share=0.97, lag=60, stalled=True), _kept()))
    assert ch.choose(judged).strategy == "thread"
    # A loop-lag p99 over the stall threshold is not free, even without stalls in every repeat.
    judged[1] = ch.Judged("thread", _advice("thread", stall=80, share=0.05, lag=64, stalled=False), _kept())
    assert not judged[1].loop_free and ch.choose(judged).strategy == "process"


def test_weak_evidence_or_a_lost_connection_is_not_recommended() -> None:
    weak = ch.Judged("thread", _advice("thread", stall=0, share=0, lag=2, stalled=False,
                                       weak=("1 measured repeat per cell, fewer than 3",)), _kept())
    lost = ch.Judged("process", _advice("process", stall=0, share=0, lag=2, stalled=False),
                     ch.Keep("lost", ch.MEASURED, iv.wilson(6, 6)))
    choice = ch.choose([weak, lost])
    assert choice.strategy is None and choice.closest == "thread"
    assert choice.reasons[0] == "no strategy keeps every connection and the loop free on strong evidence"
    assert any(r.startswith("thread's evidence is weak: 1 measured repeat") for r in choice.reasons)
    assert any(r.startswith("process loses connections (measured at your settings: 6 of 6") for r in choice.reasons)


# --- one real run, direct: a short keepalive, short windows --------------------

@pytest.mark.e2e
def test_advise_measures_a_workload_and_writes_a_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("advise", "blocking_io", "--work-ms", "20", "--ping-interval", "0.5", "--ping-timeout", "0.5",
                   "--repeats", "1", "--strategy", "thread", "--out", str(out), "--quiet", timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "connections kept: measured in windows sized to observe a timeout" in text
    row = next(line for line in text.splitlines() if line.startswith("thread "))
    assert " of " in row and row.split()[-2] in ("yes", "no")
    # One repeat is too weak for a recommendation, and the output says why thread was not chosen.
    assert "recommendation: none (closest: thread)" in text
    reasons = text.split("recommendation: none (closest: thread)\n", 1)[1]
    assert reasons.startswith("  - no strategy keeps every connection and the loop free on strong evidence\n  - thread")
    assert (out / "manifest.json").is_file() and len(list((out / "cells").glob("*.json"))) == 1
    assert (out / "report" / "report.md").is_file()
    assert f"records: {out / 'cells'}" in text
    # The function's behaviour comes first, the predictions state their horizon and checked range.
    assert text.splitlines()[2].startswith("one call takes p50 ")
    # blocking_io releases the GIL: a stall beside its thread (a busy machine) is never read as a GIL hold.
    assert "no call held the GIL for more than 50 ms at once" in text or "although the function releases the GIL" \
        in text
    assert "one call holds the GIL" not in text
    assert "horizon: 3,600 s (one hour)" in text and "these settings are inside it" in text
    assert "concurrency: no strategy qualifies with 1 call at once (--concurrency 1); for the closest, thread:" \
        in text
    # The answer is kept: advice.json, advice.md, the report opens with it, and the directory reprints it.
    advice = json.loads((out / "advice.json").read_text())
    assert advice["printed"] == text and advice["inputs"]["concurrency"] == 1
    assert advice["recommendation"]["closest"] == "thread" and advice["strategies"][0]["strategy"] == "thread"
    report = (out / "report" / "report.md").read_text()
    assert report.split("\n## ", 1)[1].startswith("Recommendation: none (closest: thread)")
    page = (out / "report" / "report.html").read_text()
    assert page.split("<h2>", 1)[1].startswith("Recommendation: none (closest: thread)</h2>")
    again = run_cli("advise", str(out), timeout=60)
    assert again.returncode == 0 and again.stdout == text, again.stderr


def test_varying_repeats_are_judged_by_the_upper_end_of_the_loop_interval() -> None:
    unstable = ("unstable repeats in w-process",)
    steady = _advice("process", stall=0, share=0, lag=4, stalled=False, weak=unstable)
    assert ch.Judged("process", steady, _kept()).eligible  # 3 to 5 ms: free whatever the spread
    spread = replace(steady, lag_p99=rec.Quantity(20, 4, 70, 3))
    assert not ch.Judged("process", spread, _kept()).loop_free  # one repeat at 70 ms: not shown free


def test_a_loop_busy_running_steps_is_not_free_even_when_responsive() -> None:
    # blocking_io in chunks: every wake-up waits for a step, but no gap reaches 50 ms.
    steps = _advice("chunked", stall=0, share=0, lag=29.7, stalled=False)
    chunked = ch.Judged("chunked", steps, _kept(), lag_p50=rec.Quantity(26.7, 26.0, 27.5, 3))
    thread = ch.Judged("thread", _advice("thread", stall=0, share=0, lag=1.0, stalled=False), _kept(),
                       lag_p50=rec.Quantity(0.11, 0.10, 0.12, 3))
    assert chunked.responsive and not chunked.idle and not chunked.loop_free
    choice = ch.choose([chunked, thread])
    assert choice.strategy == "thread"
    assert choice.reasons[1].startswith("chunked does not keep the loop free: the loop ran the steps itself")
