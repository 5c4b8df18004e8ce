"""What ``wsblock advise`` says and keeps: the function's behaviour, concurrency, horizon, ``advice.json``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import FIXTURES
from wsblock.advise import advice as full
from wsblock.advise import behaviour, predict, saved
from wsblock.advise import choose as ch
from wsblock.advise import concurrency as conc
from wsblock.advise import target as tg
from wsblock.analysis import intervals as iv
from wsblock.analysis import recommend as rec
from wsblock.analysis import tidy
from wsblock.cli import main

RUN_A = FIXTURES / "run_a"


def _records(strategy: str, work_ms: float, timeout: float) -> list[dict]:
    loaded = tidy.load_records(RUN_A).records
    return [r for _, r in loaded if r["params"]["strategy"] == strategy and r["params"]["workload"] == "blocking_io"
            and r["params"]["work_ms"] == work_ms and r["params"]["ping_timeout"] == timeout]


def _record(strategy: str, *, stall_ms: float = 0.0, job_p50: float = 100.0, job_max: float = 120.0,
            jobs: int = 10) -> dict:
    return {"status": "ok", "params": {"strategy": strategy},
            "stalls": {"max_ms": stall_ms, "count": 1 if stall_ms else 0},
            "job_ms": {"completed_p50": job_p50, "max": job_max, "completed": jobs}}


# --- the function's own behaviour ------------------------------------------------

def test_call_times_warn_when_the_longest_call_is_over_three_times_the_median() -> None:
    even = behaviour.from_calls([100, 110, 105, 120, 98, 101, 99, 103, 104, 130])
    assert even.n == 10 and even.p50 == pytest.approx(103.5) and even.max == 130 and not even.uneven
    assert 120 <= even.p95 <= 130
    rare = behaviour.from_calls([100] * 9 + [850])
    assert rare.uneven and rare.max == 850
    text = "\n".join(behaviour.lines(rare, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0, budget_ms=None,
                                     params=[]))
    assert "warning: the longest call is 8.5 x the median" in text
    assert "warning" not in "\n".join(behaviour.lines(even, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0,
                                                      budget_ms=None, params=[]))
    # A job in the cells far longer than every timed call counts too.
    jobs = behaviour.CallTimes("200 jobs measured in the inline cells", 200, 100.0, None, 400.0, timed=False)
    late = "\n".join(behaviour.lines(even, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0, budget_ms=None,
                                     params=[], other=jobs))
    assert "the cells measured a longer job: 400 ms" in late and "warning: the longest call is 3.9 x" in late
    # Fewer timed calls than CALLS: the jobs are shown, and a longer timed call still counts.
    slow = behaviour.from_calls([5000.0, 5200.0, 16000.0])
    shown = "\n".join(behaviour.lines(jobs, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0, budget_ms=None,
                                      params=[], other=slow))
    assert shown.startswith("one call takes p50 100 ms, max 400 ms (200 jobs measured in the inline cells)")
    assert "a call timed before the cells ran took longer: 16,000 ms" in shown


def test_the_gil_hold_is_the_longest_stall_of_the_thread_cells_in_plain_words() -> None:
    records = [_record("thread", stall_ms=850), _record("thread", stall_ms=600), _record("inline", stall_ms=2000),
               {**_record("thread", stall_ms=5000), "status": "error"}]
    hold = behaviour.gil_hold(records, 50.0)
    assert hold.ms == 850 and hold.repeats == 2 and hold.stalled_repeats == 2
    line = behaviour.lines(None, hold, ping_timeout=1.0, budget_ms=None, params=[])[1]
    assert line.startswith("one call holds the GIL for up to 850 ms") and "a thread pool cannot keep the loop free" \
        in line
    free = behaviour.gil_hold([_record("thread"), _record("thread")], 50.0)
    assert free.ms == 0
    assert "a thread pool can keep the loop free" in behaviour.lines(None, free, ping_timeout=1.0, budget_ms=None,
                                                                     params=[])[1]
    assert behaviour.gil_hold([_record("process")], 50.0).ms is None
    # A workload that releases the GIL: a stall beside its thread is something else.
    busy = behaviour.lines(None, hold, ping_timeout=1.0, budget_ms=None, params=[], releases_gil=True)[1]
    assert "although the function releases the GIL" in busy and "holds the GIL" not in busy


def test_a_call_time_budget_is_checked_against_the_longest_call() -> None:
    calls = behaviour.from_calls([200, 210, 900])
    over = behaviour.lines(calls, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0, budget_ms=500, params=[])
    assert any(line.startswith("call-time budget 500 ms: exceeded, the longest call took 900 ms") for line in over)
    within = behaviour.lines(calls, behaviour.GilHold(None, 0, 50.0), ping_timeout=1.0, budget_ms=2000,
                             params=[("rows", 10)])
    assert any("every call measured was within it" in line and "not measured" in line for line in within)
    assert within[-1] == "input: rows=10"


def test_calls_come_from_every_measured_job_when_none_were_timed() -> None:
    calls = behaviour.from_records([_record("inline", job_p50=100, job_max=400), _record("inline", job_p50=120),
                                    _record("thread", job_p50=900, job_max=5000)])
    assert calls is not None and calls.max == 400 and calls.p50 == 110 and calls.p95 is None and calls.n == 20
    assert behaviour.from_records([{"status": "ok", "params": {}}]) is None
    assert behaviour.calls_to_time(850) == 10 and behaviour.calls_to_time(5000) == 6
    assert behaviour.calls_to_time(60_000) == 2


# --- concurrency ------------------------------------------------------------------------------

def test_the_reach_in_concurrent_calls_follows_n_times_l_against_ping_timeout() -> None:
    blocked = conc.reach("process", [_record("process", stall_ms=100)], measured=1, ping_timeout=1.0, stall_ms=50)
    assert blocked.up_to == 3 and not blocked.lower_bound  # 1000 ms / (3 x 100 ms)
    text = "\n".join(conc.lines(blocked, 1))
    assert "process holds for 1 call at once (--concurrency 1, measured)" in text
    assert "N x L = ping_timeout" in text and "still hold up to about 3 calls at once" in text
    free = conc.reach("process", [_record("process")], measured=2, ping_timeout=2.0, stall_ms=50)
    assert free.block_ms is None and free.up_to == 13 and free.lower_bound
    said = "\n".join(conc.lines(free, 2, searched="1-2 calls at once, ping_timeout 0.5-2 s"))
    assert "up to at least 13 calls at once (an estimate for keepalive alone beyond 2, not measured; the boundary " \
        "was measured at 1-2 calls at once, ping_timeout 0.5-2 s)" in said
    # An inline call blocks the loop for all of its length.
    inline = conc.reach("inline", [_record("inline", job_max=400)], measured=4, ping_timeout=1.0, stall_ms=50)
    assert inline.block_ms == 400 and inline.up_to == 0
    assert "even 4 calls at once are too many" in "\n".join(conc.lines(inline, 4))
    edge = conc.reach("process", [_record("process", stall_ms=164)], measured=2, ping_timeout=1.0, stall_ms=50)
    assert edge.up_to == 2 and "2 calls at once is the most it would hold by that rule" in conc.lines(edge, 2)[1]
    unbounded = conc.reach("thread", [_record("thread")], measured=1, ping_timeout=None, stall_ms=50)
    assert unbounded.up_to is None and "whatever the concurrency" in conc.lines(unbounded, 1)[0]
    assert conc.lines(None, 3) == ["concurrency: no strategy qualifies with 3 calls at once (--concurrency 3)"]
    closest = "\n".join(conc.lines(blocked, 1, recommended=False))
    assert closest.startswith("concurrency: no strategy qualifies with 1 call at once (--concurrency 1); for the "
                              "closest, process:")
    assert "process's connections would still hold up to about 3 calls" in closest and "holds for" not in closest


def test_the_margin_compares_each_strategy_s_longest_block_with_ping_timeout() -> None:
    records = [_record("inline", stall_ms=600, job_max=500), _record("thread", stall_ms=300), _record("process")]
    line = conc.margin_line(records, ["inline", "thread", "process"], ping_timeout=20.0, stall_ms=50)
    assert line is not None and "longer than ping_timeout (20 s) at once" in line
    assert "inline 600 ms (3% of it), thread 300 ms (2% of it), process none over 50 ms" in line
    assert conc.margin_line(records, ["inline"], ping_timeout=None, stall_ms=50) is None


# --- predictions: horizon and checked range -------------------------------------------------

def test_the_checked_range_is_read_from_the_reference_records(tmp_path: Path) -> None:
    checked = predict.checked_range()
    assert checked is not None and checked.cells > 100
    assert checked.ping_interval == (0.25, 20.0) and checked.ping_timeout == (0.5, 20.0)
    # Two boxes: the fast-keepalive study and the searches at websockets' defaults; between them,
    # nothing was measured.
    assert checked.boxes == (((0.25, 4.0), (0.5, 2.0)), ((20.0, 20.0), (20.0, 20.0)))
    assert checked.inside(1, 1) and checked.inside(0.5, 2) and checked.inside(4, 1) and checked.inside(20, 20)
    assert not checked.inside(20, 60) and not checked.inside(1, 5) and not checked.inside(0.2, 1)
    assert not checked.inside(10, 5) and not checked.inside(4, 20)
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "cells.csv").write_text(
        "status,ping_interval,ping_timeout,job_connections\nok,2,3,4\nok,none,none,1\nerror,50,50,1\n")
    other = predict.checked_range(tmp_path)
    assert other is not None and other.ping_interval == (2, 2) and other.ping_timeout == (3, 3) and other.cells == 1
    assert predict.checked_range(tmp_path / "nothing") is None
    searches = predict.checked_range(runs=("boundary/*",))
    assert searches is not None and searches.job_connections == (1, 2) and searches.ping_interval == (0.25, 4)


def test_a_prediction_covers_one_hour_and_says_when_it_is_extrapolated() -> None:
    checked = predict.checked_range()
    inline = _records("inline", 2500, 0.5)
    inside = predict.forecast(inline, ping_interval=1, ping_timeout=1, checked=checked)
    outside = predict.forecast(inline, ping_interval=20, ping_timeout=60, checked=checked)
    unknown = predict.forecast(inline, ping_interval=1, ping_timeout=1, checked=None)
    assert inside is not None and outside is not None and unknown is not None
    assert inside.horizon_s == outside.horizon_s == 3600
    assert not inside.extrapolated and outside.extrapolated and unknown.extrapolated
    judged = [ch.Judged("inline", rec.Advice("w", "inline", rec.NO_DATA), ch.Keep("lost", ch.PREDICTED, None,
                                                                                  outside))]
    text = "\n".join(full.prediction_lines(judged, keepalive="ping_interval 20 s / ping_timeout 60 s",
                                              checked=checked, direct=False))
    assert "P(a connection is lost in one hour of this load) at ping_interval 20 s / ping_timeout 60 s" in text
    assert "inline  0.00 [0.00, 0.00]  extrapolated (outside the checked range)" in text
    assert "horizon: 3,600 s (one hour)" in text
    assert ("checked against measured cells at ping_interval 0.25-4 s, ping_timeout 0.5-2 s; "
            "ping_interval 20 s, ping_timeout 20 s") in text
    assert "these settings are outside it" in text
    judged = [ch.Judged("inline", rec.Advice("w", "inline", rec.NO_DATA), ch.Keep("lost", ch.PREDICTED, None,
                                                                                  inside))]
    text = "\n".join(full.prediction_lines(judged, keepalive="k", checked=checked, direct=True))
    assert "inside the checked range" in text and "these settings are inside it" in text
    assert "unknown" in "\n".join(full.prediction_lines(judged, keepalive="k", checked=None, direct=True))
    # Measured kept in short windows, predicted lost within the hour: the output says so; not when both agree.
    risky = predict.Forecast(0.3, 0.1, 0.6, 3, 3600, False, 120)
    kept = [ch.Judged("thread", rec.Advice("w", "thread", rec.SAFE), ch.Keep("kept", ch.MEASURED, None, risky))]
    said = "\n".join(full.prediction_lines(kept, keepalive="k", checked=checked, direct=True))
    assert "note: thread kept every connection in its windows, but the model predicts P(loss in one hour) 0.30" in said
    calm = [ch.Judged("thread", rec.Advice("w", "thread", rec.SAFE), ch.Keep("kept", ch.MEASURED, None,
                                                                                 replace(risky, p=0.01)))]
    assert "note:" not in "\n".join(full.prediction_lines(calm, keepalive="k", checked=checked, direct=True))


@pytest.mark.slow
def test_the_model_is_scored_out_of_sample_on_the_reference_records() -> None:
    scored = predict.skill()
    assert [k.scope for k in scored] == ["every repeat", "near the boundary"]
    assert all(k.repeats > 0 and k.groups >= 2 and 0 <= k.model_brier <= 1 for k in scored)


def test_the_model_s_out_of_sample_score_is_stated_or_said_to_be_missing(tmp_path: Path) -> None:
    assert predict.skill(tmp_path / "nothing") == ()
    f = predict.Forecast(0.0, 0.0, 0.0, 3, 3600, False, 120)
    judged = [ch.Judged("process", rec.Advice("w", "process", rec.NO_DATA), ch.Keep("kept", ch.PREDICTED, None, f))]
    beats = predict.Skill("every repeat", True, 0.099, "stall threshold, fitted", 0.124, 435, 13)
    loses = predict.Skill("near the boundary", False, 0.246, "base rate", 0.275, 78, 13)
    text = "\n".join(full.prediction_lines(judged, keepalive="k", checked=None, direct=False,
                                              skill=(beats, loses)))
    assert ("out of sample (leaving each of 13 reference runs out in turn): every repeat (435 repeats): Brier 0.099 "
            "against 0.124 for the best baseline (stall threshold, fitted); it beats every simple rule") in text
    assert "near the boundary (78 repeats): Brier 0.246 against 0.275 for the best baseline (base rate); it does " \
           "not beat" in text
    bare = "\n".join(full.prediction_lines(judged, keepalive="k", checked=None, direct=False))
    assert "out of sample: not scored" in bare


def test_a_longer_horizon_is_compounded_towards_loss() -> None:
    assert predict.compound(0.0, 120, 3600) == 0.0 and predict.compound(1.0, 120, 3600) == 1.0
    assert predict.compound(0.1, 120, 3600) > 0.95  # 5 % per stretch is most connections in an hour
    assert predict.compound(0.1, 3600, 3600) == 0.1
    assert predict.segment_s(0.5, 0.5, 3600) == predict.SEGMENT_S
    assert predict.segment_s(20, 20, 3600) == 140  # the first ping and three cycles


def test_confirmation_cells_observe_as_many_cycles_as_kept_needs_or_none() -> None:
    def target(interval: float) -> tg.Target:
        return tg.resolve("c_holds_gil", work_ms=200, params=[], ping_interval=interval, ping_timeout=interval,
                          job_connections=1, repeats=3)

    assert tg.CONFIRM_CYCLES == 3
    short = tg.confirm_definition(target(1), ["inline"])
    assert short is not None and short["min_cycles"] == 3
    default = tg.confirm_definition(target(20), ["inline"])  # 3 cycles of 40 s fit the default maximum window
    assert default is not None and default["min_cycles"] == 3
    assert tg.confirm_definition(target(100), ["inline"]) is None  # 3 cycles of 200 s do not


# --- the answer kept -------------------------------------------------------------------------

def _judged() -> list[ch.Judged]:
    cond = rec.Condition("w-process", 1000, 20, 20, 3)
    a = rec.Advice("w", "process", rec.SAFE, cells=1, kept=(cond,), connections=iv.wilson(0, 18), reference=cond,
                   stall=rec.Quantity(0, 0, 0, 3), stalled_share=rec.Quantity(0, 0, 0, 3),
                   lag_p99=rec.Quantity(math.nan, math.nan, math.nan, 0), jobs_per_s=rec.Quantity(1, 1, 1, 3),
                   repeats=(3, 3))
    f = predict.Forecast(0.0, 0.0, 0.0, 3, 3600, True, 140)
    return [ch.Judged("process", a, ch.Keep("kept", ch.PREDICTED, None, f), lag_p50=rec.Quantity(0.1, 0.1, 0.1, 3))]


def test_advice_json_round_trips_and_keeps_what_was_printed(tmp_path: Path) -> None:
    judged = _judged()
    choice = ch.choose(judged)
    printed = "advise w: ...\n\nrecommendation: process\n  - why\n"
    advice = {"target": "w", "summary": ["why"], "rule": {"text": "r", "thresholds": saved.thresholds(ch)},
              "inputs": {"ping_interval": 20.0, "ping_timeout": 20.0, "concurrency": 1},
              "strategies": [{"strategy": j.strategy, "judged": j} for j in judged],
              "predictions": {"horizon_s": 3600.0, "by_strategy": {"process": judged[0].keep.forecast}},
              "recommendation": choice, "printed": printed}
    path_json, path_md = saved.write(tmp_path, advice)
    data = json.loads(path_json.read_text())  # strict JSON: NaN was written as null
    assert data["kind"] == saved.KIND and data["printed"] == printed
    assert data["strategies"][0]["judged"]["advice"]["lag_p99"]["value"] is None
    assert data["predictions"]["by_strategy"]["process"]["extrapolated"] is True
    assert data["recommendation"]["strategy"] == choice.strategy
    assert data["rule"]["thresholds"]["wsblock.advise.choose.BUSY_LAG_MS"] == ch.BUSY_LAG_MS
    assert saved.read(tmp_path) == data
    md = path_md.read_text()
    assert md.startswith(f"## Recommendation: {choice.strategy or 'none'}") and printed.rstrip() in md
    assert saved.read(tmp_path / "elsewhere") is None


def test_advise_dir_reprints_exactly_what_the_run_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    printed = "advise w: 1 call at once\n\nrecommendation: process\n  - process: keeps every connection\n"
    saved.write(tmp_path, {"target": "w", "recommendation": ch.Choice("process"), "printed": printed})
    assert main(["advise", str(tmp_path)]) == 0
    assert capsys.readouterr().out == printed
    (tmp_path / saved.ADVICE_JSON).write_text("{")
    assert main(["advise", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read")


def test_a_prediction_near_the_boundary_that_no_window_can_confirm_is_inconclusive(tmp_path: Path) -> None:
    # Three cycles of 200 s do not fit in the longest window the engine sizes by default.
    target = tg.resolve("c_holds_gil", work_ms=200, params=[], ping_interval=100, ping_timeout=100,
                        job_connections=1, repeats=3)
    settings = full._Settings(target, tmp_path / "run", 100, 100, True)
    near = predict.Forecast(0.4, 0.1, 0.8, 3, 3600, True, 140)
    far = predict.Forecast(0.0, 0.0, 0.0, 3, 3600, True, 140)
    a = rec.Advice("c_holds_gil", "inline", rec.NO_DATA)
    judged = [ch.Judged("inline", a, ch.Keep(near.outcome, ch.PREDICTED, None, near)),
              ch.Judged("process", a, ch.Keep(far.outcome, ch.PREDICTED, None, far))]
    out, said = full._confirm(settings, judged)
    assert [j.keep.outcome for j in out] == ["unknown", "kept"]
    assert "inconclusive: no window the engine allows can observe 3 keepalive cycles" in said
    assert not (tmp_path / "run").exists()  # nothing ran
    assert "predicted P(loss) 0.40, inconclusive" in "\n".join(full.table(out, pd.DataFrame({"strategy": []})))
    unchanged, said = full._confirm(settings, judged[1:])
    assert unchanged == judged[1:] and said == "no prediction was near the boundary: no confirmation needed"


def test_a_window_too_short_for_survival_does_not_weaken_a_predicted_survival() -> None:
    # At long keepalive settings survival is predicted from the stalls: that
    # the window could not show a timeout is moot there, but it still weakens
    # a survival read from the window. Other caveats that could have made the
    # cell look safer weaken both.
    from wsblock.analysis import rules

    short = rules.Finding("inconclusive_window", "safer", ("c1",), "the window was too short to show a keepalive "
                          "timeout")
    saturated = rules.Finding("load_saturated", "safer", ("c1",), "the load sent fewer echoes and pings")
    free = rules.LoopCheck(True)

    def judged(basis: str, *found: rules.Finding) -> ch.Judged:
        a = rec.Advice("w", "process", rec.INCONCLUSIVE, loop=free, findings=found,
                       blockers=tuple(f.sentence() for f in found))
        return ch.Judged("process", a, ch.Keep("kept", basis))

    assert judged(ch.PREDICTED, short).weak == ()
    assert judged(ch.PREDICTED, short).strong
    assert judged(ch.MEASURED, short).weak == (short.sentence(),)
    assert judged(ch.PREDICTED, short, saturated).weak == (saturated.sentence(),)
