"""``wsblock advise --fast``: the prediction as the rule's evidence, the confirmation, one real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli
from wsblock.advise import choose as ch
from wsblock.advise import fast
from wsblock.advise import saved
from wsblock.advise import stallpred as sp
from wsblock.advise import target as tg
from wsblock.advise.fast_advice import Confirmation, labelled, reject_window_s
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.analysis import rules
from wsblock.cli import main

THRESHOLD = 50.0
STRATEGIES = ["inline", "thread", "process"]


def _predicted(call: sp.Call, *, hold_share: float, strategies: list[str] = STRATEGIES,
               releases: bool = False) -> list[ch.Judged]:
    predicted = sp.predict_all(call, strategies, concurrency=1, threshold_ms=THRESHOLD, ping_interval=1.0,
                               ping_timeout=1.0, checked=None)
    shape = fast.Shape(hold_share, call.step_max, 5.0, releases)
    return fast.predicted_judged(predicted, shape, name="w", concurrency=1, stall_ms=THRESHOLD, ping_timeout=1.0)


def _call(p50: float, *, hold: float, over_share: float, unpickle: float = 0.01) -> sp.Call:
    return sp.Call(p50=p50, max=p50 * 1.1, step_max=p50 * 1.1, hold_max=hold, over_share=over_share,
                   over_per_call=1.0 if over_share else 0.0, unpickle_p50=unpickle, unpickle_max=unpickle)


HOLDS = _call(300.0, hold=290.0, over_share=0.95)          # one C call that holds the GIL
RELEASES = _call(300.0, hold=2.0, over_share=0.0)          # hashing, BLAS, a blocking read
SLICES = _call(100.0, hold=15.0, over_share=0.0)           # pure Python: holds in switch-interval slices


def _measured(strategy: str, *, stall: float, share: float, p50: float, p99: float, stalled: int = 0,
              repeats: int = 1, lost: int = 0) -> ch.Judged:
    """A strategy as confirming cells would show it (``repeats`` repeats, ``stalled`` of them with a stall)."""
    figures = rules.LoopFigures(repeats, (p50, p50), (p99, p99), False, "", (stall, stall), (share, share), stalled,
                                1.0)
    cond = rec.Condition(f"w-{strategy}", 300, 1.0, 1.0, repeats)
    few = (f"{repeats} measured repeat{'' if repeats == 1 else 's'} per cell, fewer than {rec.MIN_REPEATS}",) \
        if repeats < rec.MIN_REPEATS else ()
    advice = rec.Advice("w", strategy, rec.DROPS if lost else rec.SAFE, cells=1, kept=() if lost else (cond,),
                        lost=(cond,) if lost else (), connections=iv.wilson(lost, 5), reference=cond,
                        stall=rec.Quantity(stall, stall, stall, repeats),
                        stalled_share=rec.Quantity(share, share, share, repeats),
                        lag_p99=rec.Quantity(p99, p99, p99, repeats), repeats=(repeats, repeats), weak=few,
                        loop=rules.loop_check(figures), figures=figures, blockers=few,
                        lag_p50=rec.Quantity(p50, p50, p50, repeats))
    keep = ch.Keep("lost" if lost else "kept", ch.MEASURED, iv.wilson(lost, 5))
    return fast.excused(ch.Judged(strategy, advice, keep))


# --- the prediction, read by the same rule ------------------------------------

def test_the_rule_picks_process_for_a_call_that_holds_the_gil_and_thread_for_one_that_releases_it() -> None:
    held = ch.choose(_predicted(HOLDS, hold_share=0.99))
    assert held.strategy == "process"
    assert held.reasons[2].startswith("thread does not keep the loop free")
    released = ch.choose(_predicted(RELEASES, hold_share=0.02))
    assert released.strategy == "thread"
    assert released.reasons[1].startswith("inline does not keep the loop free")


def test_a_thread_beside_pure_python_is_predicted_busy_by_the_switch_interval() -> None:
    judged = {j.strategy: j for j in _predicted(SLICES, hold_share=0.85)}
    thread = judged["thread"]
    # No stall over the threshold, but the loop waits one switch interval on most wake-ups.
    assert thread.advice.stall.value == 0.0 and thread.lag_p50.value == 5.0
    assert not thread.idle and not thread.loop_free
    assert ch.choose(list(judged.values())).strategy == "process"
    # A workload that says it releases the GIL is not predicted to keep the loop waiting.
    assert math.isnan(fast.lag_p50_ms("thread", fast.Shape(0.85, 100.0, 5.0, True), concurrency=1))


def test_chunked_is_predicted_busy_by_its_steps() -> None:
    assert fast.lag_p50_ms("chunked", fast.Shape(1.0, 10.0, 5.0), concurrency=1) == 10.0
    assert fast.lag_p50_ms("chunked", fast.Shape(1.0, 10.0, 5.0), concurrency=3) == 30.0


@pytest.mark.parametrize(("picked", "strategies", "below"), [
    ("process", ["inline", "thread", "process"], "thread"),
    ("thread", ["inline", "chunked", "thread", "process"], "chunked"),
    ("thread", ["inline", "thread"], "inline"),
    ("inline", ["inline", "thread"], None),
])
def test_the_rejected_strategy_confirmed_is_the_one_just_cheaper(picked: str, strategies: list[str],
                                                                 below: str | None) -> None:
    assert fast.rejected(ch.Choice(picked), strategies) == below
    assert fast.rejected(ch.Choice(None, closest=picked), strategies) == below


def test_the_window_confirming_a_rejection_lets_the_probe_read_a_busy_loop() -> None:
    target = tg.resolve("blocking_io", work_ms=100, params=[], ping_interval=1.0, ping_timeout=1.0,
                        job_connections=1, repeats=1)
    assert reject_window_s(target, 100.0) == fast.REJECT_MIN_S
    # A loop busy with 30 ms steps wakes the probe about 33 times a second: 100 samples, with a margin, need 5 s.
    assert reject_window_s(target, 100.0, lag_ms=15.0) == 5.0


# --- the confirmation ----------------------------------------------------------

def test_a_confirmation_that_agrees_keeps_the_predicted_answer_and_reports_no_difference() -> None:
    guessed = _predicted(HOLDS, hold_share=0.99)
    measured = {"process": _measured("process", stall=0.0, share=0.0, p50=0.1, p99=4.0),
                "thread": _measured("thread", stall=330.0, share=0.9, p50=12.0, p99=330.0, stalled=1)}
    # One repeat is what --fast runs: excused, so the evidence is strong.
    assert measured["process"].strong and measured["process"].eligible
    choice = ch.choose(fast.mix(guessed, measured))
    assert choice.strategy == "process"
    by_name = {j.strategy: j for j in guessed}
    assert fast.contradiction(by_name["process"], measured["process"]) == ""
    assert fast.differences(by_name["process"], measured["process"], stall_ms=THRESHOLD, sized=True) == []
    assert fast.differences(by_name["thread"], measured["thread"], stall_ms=THRESHOLD, sized=False) == []


def test_a_confirmation_that_contradicts_the_prediction_says_so_and_the_rule_moves_on() -> None:
    guessed = _predicted(RELEASES, hold_share=0.02)
    assert ch.choose(guessed).strategy == "thread"
    measured = {"thread": _measured("thread", stall=0.0, share=0.0, p50=0.1, p99=4.0, lost=2),
                "inline": _measured("inline", stall=330.0, share=1.0, p50=math.nan, p99=math.nan, stalled=1)}
    by_name = {j.strategy: j for j in guessed}
    said = fast.contradiction(by_name["thread"], measured["thread"])
    assert said.startswith("thread lost connections in its cells (2 of 5 connections lost)")
    diffs = fast.differences(by_name["thread"], measured["thread"], stall_ms=THRESHOLD, sized=True)
    assert [d.what for d in diffs] == ["connections", "eligible by the rule"]
    assert diffs[0].text() == "thread, connections: predicted kept, measured lost"
    # The rule, on the mix, turns to process: predicted only, so --fast confirms it before answering.
    mixed = ch.choose(fast.mix(guessed, measured))
    assert mixed.strategy == "process"
    answer = labelled(mixed, Confirmation(measured=measured, sized={"thread"}))
    assert answer.reasons[0].startswith("(predicted, not confirmed) process: keeps every connection")
    assert answer.reasons[2].startswith("thread loses connections")


def test_a_stalled_loop_contradicts_the_prediction_in_plain_words() -> None:
    guessed = {j.strategy: j for j in _predicted(RELEASES, hold_share=0.02)}
    busy = _measured("thread", stall=120.0, share=0.3, p50=6.0, p99=120.0, stalled=1)
    said = fast.contradiction(guessed["thread"], busy)
    assert said.startswith("thread stalled the loop in its cells (")
    assert "loop-lag p50 6 ms in the worst repeat" in said


def test_one_stall_in_one_repeat_asks_for_another_repeat_not_for_a_verdict() -> None:
    once = _measured("process", stall=79.0, share=0.01, p50=0.1, p99=4.0, stalled=1)
    assert not once.loop_free and fast.another_repeat_decides(once)
    twice = _measured("process", stall=79.0, share=0.01, p50=0.1, p99=4.0, stalled=1, repeats=2)
    assert twice.loop_free and not fast.another_repeat_decides(twice)
    # A busy loop is not the machine: more repeats cannot make it free; nor lost connections.
    busy = _measured("thread", stall=79.0, share=0.01, p50=6.0, p99=22.0, stalled=1)
    assert not fast.another_repeat_decides(busy)
    lost = _measured("process", stall=79.0, share=0.01, p50=0.1, p99=4.0, stalled=1, lost=1)
    assert not fast.another_repeat_decides(lost)


def test_only_the_few_repeats_are_excused() -> None:
    j = _measured("process", stall=0.0, share=0.0, p50=0.1, p99=4.0)
    failed = ch.Judged("process", j.advice.__class__(**{**j.advice.__dict__, "blockers": (
        "1 measured repeat per cell, fewer than 3", "no measurement in w-process-r1")}), j.keep)
    assert fast.excused(failed).advice.blockers == ("no measurement in w-process-r1",)
    assert not fast.excused(failed).strong


def test_advice_md_marks_the_answer_as_fast() -> None:
    text = saved.markdown({"target": "w", "recommendation": {"strategy": "process"}, "printed": "x\n",
                           "fast": {"confirmed_cells": 2}})
    assert text.startswith("## Recommendation: process (`--fast`: a prediction + 2 confirmed cells)\n")
    assert "`wsblock advise w --fast` printed" in text


def test_fast_on_a_run_directory_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    run_a = FIXTURES / "run_a"
    assert main(["advise", str(run_a), "--fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --fast applies to a workload, not to a run directory") and err.count("\n") == 1


def test_a_bad_target_with_fast_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["advise", "nosuch", "--fast", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: unknown workload 'nosuch'") and captured.err.count("\n") == 1
    assert captured.out == "" and not out.exists()


# --- one real run ----------------------------------------------------------------

@pytest.mark.e2e
def test_fast_confirms_two_strategies_and_marks_the_answer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("advise", "blocking_io", "--work-ms", "100", "--ping-interval", "0.5", "--ping-timeout", "0.5",
                   "--strategy", "inline", "--strategy", "thread", "--fast", "--out", str(out), "--quiet",
                   timeout=150)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("advise blocking_io (--fast: a prediction from a profile + ")
    assert "not the full matrix" in text.splitlines()[0]
    # blocking_io releases the GIL: thread is predicted, inline (just cheaper) is the rejection confirmed.
    assert "predicted recommendation (the advise rule on the prediction): thread" in text
    assert "round 1: thread (the predicted recommendation)" in text
    assert "round 1: inline (the strategy just cheaper, rejected by the prediction), 1 repeat in a" in text
    assert "prediction against confirmation:" in text and "disagreements: " in text
    head = next(line for line in text.splitlines() if line.startswith("recommendation: "))
    assert "(--fast: a prediction from a profile + " in head
    advice = json.loads((out / "advice.json").read_text())
    assert advice["printed"] == text and advice["inputs"]["mode"] == "fast"
    assert advice["fast"]["confirmed"] == ["inline", "thread"] and advice["fast"]["confirmed_cells"] >= 2
    assert advice["fast"]["predicted_recommendation"]["strategy"] == "thread"
    assert {s["strategy"]: s["basis"] for s in advice["strategies"]} == {"inline": "confirmed", "thread": "confirmed"}
    assert (out / "rejected" / "cells").is_dir() and list((out / "cells").glob("*-thread-*.json"))
    report = (out / "report" / "report.md").read_text()
    assert "(`--fast`: a prediction + " in report.split("\n## ", 1)[1].splitlines()[0]
    assert (out / "advice.md").read_text().startswith("## Recommendation: ")
    assert run_cli("advise", str(out), timeout=60).stdout == text
