"""The verdict rules (wsblock.analysis.rules): each with a case that must say yes and one that must say no."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers import ROOT
from wsblock.advise import choose as ch
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.analysis import rules
from wsblock.schema import caveats as cv


def _row(**columns: Any) -> dict[str, Any]:
    """One aggregated cell of 3 repeats that kept every connection with a free loop."""
    base: dict[str, Any] = {
        "workload": "w", "variant": "w", "strategy": "thread", "work_ms": 100.0, "ping_interval": 1.0,
        "ping_timeout": 2.0, "cell": "w-100ms-thread-pi1-pt2", "ok_repeats": 3, "verdict": "kept",
        "lost_k": 0, "lost_n": 18, "repeats_lost_any": 0, "loss_repeats": 3, "unstable": False,
        "unstable_reasons": "", "warnings": "", "machine_cpus": 2,
        "cycles_observed": 4, "cycles_observed_n": 3, "cycles_observed_min": 4,
        "lag_samples": 5000, "lag_samples_n": 3, "lag_samples_min": 4800,
        "lag_p50_ms": 0.1, "lag_p50_ms_n": 3, "lag_p50_ms_min": 0.09, "lag_p50_ms_max": 0.12,
        "lag_p99_ms": 1.5, "lag_p99_ms_n": 3, "lag_p99_ms_min": 1.2, "lag_p99_ms_max": 1.9,
        "stall_max_ms": 0.0, "stall_max_ms_n": 3, "stall_max_ms_min": 0.0, "stall_max_ms_max": 0.0,
        "stalled_share": 0.0, "stalled_share_n": 3, "stalled_share_min": 0.0, "stalled_share_max": 0.0,
        "stalls_count": 0.0, "stalls_count_n": 3, "repeats_stalled": 0, "jobs_per_s": 19.0,
    }
    return {**base, **columns}


def _advise(*rows: dict[str, Any], strategy: str = "thread") -> rec.Advice:
    return rec.advise("w", strategy, list(rows))


# --- caveats know their direction -------------------------------------------------

def test_every_code_the_harness_emits_is_declared_and_the_schema_imports_no_engine() -> None:
    from wsblock.engine import checks

    assert set(checks.CODES) | {"cpu_unmeasured"} <= set(cv.BY_CODE)
    code = "import sys, wsblock.schema.caveats; print(any(m.startswith('wsblock.engine') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    # An unknown code fails closed.
    assert cv.direction("never_heard_of_it") == cv.SAFER
    assert cv.caveat("never_heard_of_it").moves() == ("safe",)
    # Each direction names the verdicts it could have produced falsely.
    assert cv.caveat("oversubscribed").moves() == ("drops connections", "slow loop")
    assert cv.caveat("load_saturated").moves() == ("safe",)
    assert cv.caveat("calibration_drift").moves(1.4) == ("drops connections", "slow loop")
    assert cv.caveat("calibration_drift").moves(0.7) == ("safe",)


def test_oversubscription_alone_does_not_block_safe_and_says_it_is_harsher() -> None:
    a = _advise(_row(warnings="oversubscribed"))
    assert a.verdict == rec.SAFE and not a.weak
    assert a.harsher == "measured with both cores busy, which can only make it harsher"
    # The same cell with a saturated load (fewer pings sent than planned): that could flatter it.
    b = _advise(_row(warnings="oversubscribed,load_saturated"))
    assert b.verdict == rec.CANNOT_TELL
    assert any(w.startswith("load_saturated in 1 cell") and "look safer" in w for w in b.weak)


def test_jobs_short_of_their_target_block_safe_and_long_ones_do_not() -> None:
    short = _advise(_row(warnings="calibration_drift", work_ratio_to_target=0.7, work_ratio_to_target_min=0.7,
                         work_ratio_to_target_max=0.7))
    assert short.verdict == rec.CANNOT_TELL
    assert any("calibration_drift" in w and "shorter than their target" in w and "(0.70 x)" in w
               and "could have made it look safer" in w for w in short.weak)
    long = _advise(_row(warnings="calibration_drift", work_ratio_to_target=1.3, work_ratio_to_target_min=1.25,
                        work_ratio_to_target_max=1.3))
    assert long.verdict == rec.SAFE
    assert "jobs longer than their target (1.30 x)" in long.harsher
    # One repeat short among long ones: the short one could flatter the cell.
    mixed = _advise(_row(warnings="calibration_drift", work_ratio_to_target=1.3, work_ratio_to_target_min=0.8,
                         work_ratio_to_target_max=1.4))
    assert mixed.verdict == rec.CANNOT_TELL
    # A drift whose sign is unknown fails closed.
    assert cv.direction("calibration_drift", None) == cv.SAFER


def test_a_caveat_in_another_strategys_cells_does_not_block_this_one() -> None:
    import pandas as pd

    cells = pd.DataFrame([
        _row(),
        _row(strategy="inline", cell="w-100ms-inline-pi1-pt2", warnings="foreign_connections"),
    ])
    advice = {a.strategy: a for a in rec.recommend(cells).advice}
    assert advice["thread"].verdict == rec.SAFE and not advice["thread"].weak
    assert advice["inline"].verdict == rec.CANNOT_TELL
    assert any(w.startswith("foreign_connections in 1 cell (w-100ms-inline-pi1-pt2)") for w in advice["inline"].weak)


def test_an_unstable_figure_blocks_only_when_the_verdict_rests_on_it_across_its_threshold() -> None:
    # Throughput and echo latency varied: the verdict does not rest on them.
    a = _advise(_row(unstable=True, unstable_reasons="jobs_per_s varies 40% over repeats; echo_p99_ms varies 30% "
                                                     "over repeats"))
    assert a.verdict == rec.SAFE
    # The loop-lag p99 varied, but every repeat is far under the stall threshold.
    b = _advise(_row(unstable=True, unstable_reasons="lag_p99_ms varies 50% over repeats", lag_p99_ms_min=1.0,
                     lag_p99_ms_max=6.0))
    assert b.verdict == rec.SAFE
    # The loop-lag p99 varied across the threshold: the verdict cannot rest on it.
    c = _advise(_row(unstable=True, unstable_reasons="lag_p99_ms varies 80% over repeats", lag_p99_ms=20.0,
                     lag_p99_ms_min=10.0, lag_p99_ms_max=70.0))
    assert c.verdict == rec.CANNOT_TELL
    assert any(w.startswith("unstable: loop-lag p99 varies across the 50 ms threshold") for w in c.weak)
    # Not unstable, and the worst repeat over the threshold: the loop is not free.
    d = _advise(_row(lag_p99_ms=45.0, lag_p99_ms_min=40.0, lag_p99_ms_max=55.0))
    assert d.verdict == rec.SLOW_LOOP


# --- the loop-free rule fails closed ------------------------------------------------

def test_a_withheld_percentile_cannot_pass_loop_free() -> None:
    # p99 withheld in one repeat (2 of 3 have it), and no stall figures: not eligible, and the reason names it.
    withheld = _row(lag_p99_ms_n=2, stall_max_ms=math.nan, stall_max_ms_n=0, stall_max_ms_min=math.nan,
                    stall_max_ms_max=math.nan, stalled_share=math.nan, stalled_share_n=0)
    check = rules.loop_check(rules.figures(withheld))
    assert check.free is None
    assert any("loop-lag p99" in m and "stall figures" in m for m in check.missing)
    a = _advise(withheld)
    assert a.verdict == rec.CANNOT_TELL
    j = ch.Judged("thread", a, ch.Keep("kept", ch.MEASURED, iv.wilson(0, 18)))
    assert not j.loop_free and not j.eligible
    choice = ch.choose([j])
    assert choice.strategy is None and any("cannot be shown to keep the loop free" in r and "loop-lag p99" in r
                                           for r in choice.reasons)
    # A thin probe: the watchdog's stall figures stand in, and a loop the watchdog saw stalled is not free.
    thin = _row(lag_samples_min=12, lag_p99_ms=math.nan, lag_p99_ms_n=0, stall_max_ms=400.0,
                stall_max_ms_min=300.0, stall_max_ms_max=450.0, stalled_share=0.3, stalled_share_max=0.35,
                stalled_share_min=0.25, repeats_stalled=2, stalls_count=3.0)
    check = rules.loop_check(rules.figures(thin))
    assert check.free is False and check.basis == rules.WATCHDOG
    # ... and one the watchdog saw free (no stall at all) passes on the watchdog's word.
    quiet = _row(lag_samples_min=40, lag_p99_ms=math.nan, lag_p99_ms_n=0)
    check = rules.loop_check(rules.figures(quiet))
    assert check.free is True and check.basis == rules.WATCHDOG


def test_a_hand_made_advice_without_percentiles_is_judged_by_the_same_rule() -> None:
    cond = rec.Condition("w-thread", 1000, 1.0, 2.0, 3)
    a = rec.Advice("w", "thread", rec.SAFE, cells=1, kept=(cond,), reference=cond, repeats=(3, 3),
                   lag_p99=rec.Quantity(math.nan, math.nan, math.nan, 0))
    j = ch.Judged("thread", a, ch.Keep("kept", ch.MEASURED, iv.wilson(0, 18)))
    assert j.check.free is None and not j.loop_free  # no percentile, no stall figure: never free


def test_slow_loop_when_the_loop_stalled_in_every_repeat() -> None:
    every = _advise(_row(stall_max_ms=80.0, stall_max_ms_min=70.0, stall_max_ms_max=90.0, stalled_share=0.005,
                         stalled_share_max=0.008, stalls_count=2.0, repeats_stalled=3))
    assert every.verdict == rec.SLOW_LOOP and every.loop is not None and every.loop.stalled
    assert "in every repeat (3 of 3)" in every.loop.failures[0]
    some = _advise(_row(stall_max_ms=80.0, stall_max_ms_min=0.0, stall_max_ms_max=90.0, stalled_share=0.005,
                        stalled_share_max=0.008, stalls_count=1.0, repeats_stalled=2))
    assert some.verdict == rec.SAFE


def test_the_worst_repeats_longest_stall_must_stay_under_half_the_ping_timeout() -> None:
    # ping_timeout 2 s: 1,000 ms is the limit. One repeat held the loop 1.2 s: not safe, even in 1 of 3 repeats.
    long = _advise(_row(stall_max_ms=0.0, stall_max_ms_min=0.0, stall_max_ms_max=1200.0, stalled_share_max=0.009,
                        repeats_stalled=1, stalls_count=0.0))
    assert long.verdict == rec.SLOW_LOOP
    assert any("1,200 ms" in f and "0.5 x ping_timeout (1,000 ms)" in f for f in long.loop.failures)
    short = _advise(_row(stall_max_ms=0.0, stall_max_ms_min=0.0, stall_max_ms_max=800.0, stalled_share_max=0.009,
                         repeats_stalled=1, stalls_count=0.0))
    assert short.verdict == rec.SAFE


def test_a_kept_cell_needs_the_required_keepalive_cycles() -> None:
    assert _advise(_row(cycles_observed_min=2, cycles_observed=2)).verdict == rec.INCONCLUSIVE
    assert _advise(_row(cycles_observed_min=rules.REQUIRED_CYCLES)).verdict == rec.SAFE


# --- survival per repeat --------------------------------------------------------

@pytest.mark.parametrize(("lost", "kind"), [(3, rules.REPRODUCIBLE), (2, rules.REPRODUCIBLE),
                                            (1, rules.INTERMITTENT)])
def test_loss_in_most_repeats_is_reproducible_and_in_some_intermittent(lost: int, kind: str) -> None:
    a = _advise(_row(verdict="lost", lost_k=3 * lost, repeats_lost_any=lost))
    assert a.verdict == rec.DROPS and a.loss_kind == kind
    assert a.repeat_loss is not None and (a.repeat_loss.lost.k, a.repeat_loss.repeats) == (lost, 3)
    assert a.repeat_loss.text().startswith(f"lost in {lost} of 3 repeats [")
    assert a.loss_repeats == (lost, 3)


def test_a_contrast_between_cells_is_tested_over_repeats() -> None:
    # 3 of 3 against 1 of 3 repeats: Fisher p = 0.4, not established, however many connections each lost.
    c = rules.contrast((3, 3), (1, 3))
    assert not c.established and math.isclose(c.p_value, 0.4, abs_tol=1e-9)
    assert c.text().startswith("3 of 3 against 1 of 3 repeats: not established")
    assert rules.contrast((6, 6), (0, 6)).established


# --- ranking when no strategy qualifies -----------------------------------------------

def _standing(strategy: str, repeats: tuple[int, int], connections: tuple[int, int],
              share: tuple[float, float], stall: tuple[float, float], p50: tuple[float, float]) -> rules.Standing:
    return rules.Standing(strategy, repeats, connections, (share, stall, p50), ch.cost_key(strategy)[0])


def test_ranking_never_puts_first_a_strategy_another_beats_by_the_evidence() -> None:
    # The field report: inline lost everything; thread kept every connection with its loop stalled 99 %;
    # process lost connections in 3 of 3 repeats with its loop free. 0 of 3 against 3 of 3 repeats is
    # not established (Fisher p = 0.1), while process beats thread on every loop figure in every repeat.
    inline = _standing("inline", (3, 3), (15, 15), (0.93, 0.96), (1900, 2084), (0.10, 0.106))
    thread = _standing("thread", (0, 3), (0, 15), (0.97, 0.99), (784, 884), (9.4, 120))
    process = _standing("process", (3, 3), (6, 15), (0.01, 0.02), (108, 168), (0.111, 0.114))
    ranked = rules.rank([inline, thread, process])
    assert ranked[0].strategy == "process"
    assert rules.dominated_by(thread, ranked) is process
    # With enough repeats to establish thread's advantage in connections, it ranks first: connections come first.
    thread6 = _standing("thread", (0, 6), (0, 30), (0.97, 0.99), (784, 884), (9.4, 120))
    process6 = _standing("process", (6, 6), (12, 30), (0.01, 0.02), (108, 168), (0.111, 0.114))
    assert rules.rank([thread6, process6])[0].strategy == "thread"


def test_a_strategy_worse_on_every_measured_figure_is_never_the_closest() -> None:
    better = _standing("process", (1, 3), (2, 18), (0.0, 0.01), (0, 60), (0.1, 0.2))
    worse = _standing("chunked", (1, 3), (3, 18), (0.5, 0.6), (70, 90), (20, 30))
    # chunked is cheaper, but it is worse on every figure: never first.
    assert rules.rank([worse, better])[0].strategy == "process"
    assert rules.dominated_by(worse, [better]) is better and rules.dominated_by(better, [worse]) is None


def test_choose_names_the_closest_by_evidence_and_why_it_falls_short() -> None:
    def advice(strategy: str, lost: int, stall: float, share: float, p50: float) -> rec.Advice:
        cond = rec.Condition(f"w-{strategy}", 850, 1.0, 1.0, 3)
        f = rules.LoopFigures(3, (p50 * 0.9, p50), (p50 * 2, p50 * 3), False, "", (stall * 0.9, stall),
                              (share * 0.9, share), 3 if share > 0.5 else 0, 1.0)
        loop = rules.loop_check(f)
        verdict = rec.DROPS if lost else (rec.SLOW_LOOP if loop.free is False else rec.SAFE)
        return rec.Advice("w", strategy, verdict, cells=1, kept=() if lost else (cond,), reference=cond,
                          repeats=(3, 3), loop=loop, figures=f, repeats_lost=(3 if lost else 0, 3),
                          connections=iv.wilson(lost, 15),
                          repeat_loss=rules.RepeatLoss(cond.cell, 3, iv.wilson(3, 3), (lost, 15)) if lost else None)

    judged = [
        ch.Judged("inline", advice("inline", 15, 2084, 0.95, 0.106), ch.Keep("lost", ch.MEASURED, iv.wilson(15, 15))),
        ch.Judged("thread", advice("thread", 0, 884, 0.99, 120), ch.Keep("kept", ch.MEASURED, iv.wilson(0, 15))),
        ch.Judged("process", advice("process", 6, 168, 0.02, 0.114), ch.Keep("lost", ch.MEASURED, iv.wilson(6, 15))),
    ]
    choice = ch.choose(judged)
    assert choice.strategy is None and choice.closest == "process"
    closest = next(r for r in choice.reasons if r.startswith("closest: process"))
    assert "it still falls short: process loses connections, reproducible: lost in 3 of 3 repeats" in closest
    assert any(r.startswith("thread is beaten by process on what was measured (stalled share, longest stall, "
                            "loop-lag p50") for r in choice.reasons)


# --- the reference study under these rules ------------------------------------------

def test_the_reference_study_reads_safe_where_its_evidence_supports_it() -> None:
    from pathlib import Path

    from wsblock.analysis import tidy
    from wsblock.analysis import cells as cellmod
    from wsblock.report.recommendation import recommendation

    run = ROOT / "results" / "reference" / "default"
    cells = cellmod.aggregate(tidy.frame(tidy.load_records(run / "cells").records))
    advice = {(a.workload, a.strategy): a for a in recommendation(cells).advice}
    # 0 of 72 connections lost, loop-lag p99 about 1 ms, no stall; its only caveat (background load) is harsher.
    thread = advice[("blocking_io", "thread")]
    assert thread.verdict == rec.SAFE and "which can only make it harsher" in thread.harsher
    # Busy cores did not stop the process pool; a loop that stalled in every repeat is slow.
    assert all(advice[(w, "process")].verdict == rec.SAFE for w, _ in advice if (w, "process") in advice)
    assert advice[("pure_python", "chunked")].verdict == rec.SLOW_LOOP
    # No verdict rests on a caveat of another strategy's cells.
    for (workload, strategy), a in advice.items():
        own = set(cells[(cells["variant"] == workload) & (cells["strategy"] == strategy)]["cell"])
        for finding in a.findings:
            assert set(finding.cells) <= own
