"""The model against simple rules: proper scores, out of sample, per repeat."""

from __future__ import annotations

import math
import signal

import pytest

from tests.helpers import ROOT
from wsblock.boundary import score as bs
from wsblock.cli import main

REFERENCE = ROOT / "results" / "reference"


def test_a_perfect_forecast_scores_brier_0_and_a_constant_half_scores_a_quarter() -> None:
    outcomes = [1, 0, 1, 1, 0, 0]
    assert bs.brier([float(y) for y in outcomes], outcomes) == 0.0
    assert bs.brier([0.5] * 6, outcomes) == pytest.approx(0.25)
    assert bs.log_loss([0.5] * 6, outcomes) == pytest.approx(math.log(2))
    # a confident forecast is clipped: right costs ln(1 / 0.99), wrong ln(1 / 0.01)
    assert bs.log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log(1 - bs.EPS))
    assert bs.log_loss([0.0], [1]) == pytest.approx(-math.log(bs.EPS))
    assert bs.brier([0.0], [1]) == 1.0
    with pytest.raises(ValueError):
        bs.brier([], [])


def test_the_fitted_threshold_separates_the_outcomes_when_they_can_be_separated() -> None:
    pairs = [(0.2, 0), (0.4, 0), (0.7, 0), (1.3, 1), (1.6, 1), (3.0, 1)]
    c, below, above = bs.fit_threshold(pairs)
    assert 0.7 < c < 1.3
    assert below == pytest.approx(0.5 / 4) and above == pytest.approx(3.5 / 4)
    # overlapping outcomes: no threshold is perfect, the sides' frequencies say so
    c, below, above = bs.fit_threshold([(0.5, 0), (1.0, 1), (1.5, 0), (2.0, 1)])
    assert 0.0 < below < 1.0 and 0.0 < above < 1.0


def _trial(group: str, lost: int, *, stall: float, jobs: float = 0.0, model: float = 0.5,
           band: bool = False) -> bs.Trial:
    return bs.Trial(group, lost, stall_ratio=stall, jobs_ratio=jobs, model_p=model, in_band=band)


def test_a_fitted_rule_is_scored_on_a_group_it_never_saw() -> None:
    # Group a lost every repeat, b none: a base rate fitted on the other
    # group forecasts each one badly, which in-sample fitting would hide.
    trials = [_trial("a", 1, stall=2.0)] * 3 + [_trial("b", 0, stall=0.1)] * 3
    forecasts = bs.leave_one_group_out(trials, bs.FORECASTS[bs.BASE_RATE])
    assert forecasts[:3] == [pytest.approx(0.5 / 4)] * 3 and forecasts[3:] == [pytest.approx(3.5 / 4)] * 3


def _groups(model_of: callable) -> list[bs.Trial]:
    # Three groups; the stall ratio decides at 1.0 except near it, where
    # the outcome follows something only a good model sees.
    trials = []
    for g in "abc":
        for stall, lost in ((0.3, 0), (0.5, 0), (0.9, 1), (0.95, 0), (1.05, 1), (1.1, 0), (2.0, 1), (3.0, 1)):
            trials.append(_trial(g, lost, stall=stall, jobs=stall, model=model_of(lost), band=0.8 < stall < 1.2))
    return trials


def test_a_model_that_sees_what_the_rules_cannot_beats_them_and_a_coin_does_not() -> None:
    good = bs.score(_groups(lambda lost: 0.9 if lost else 0.1))
    assert good.out_of_sample and good.repeats == 24 and good.lost == 12
    assert good.model_beats_baselines
    assert good.row(bs.MODEL).brier == pytest.approx(0.01)
    coin = bs.score(_groups(lambda lost: 0.5))
    assert coin.row(bs.MODEL).brier == pytest.approx(0.25)
    assert not coin.model_beats_baselines
    band = bs.score(_groups(lambda lost: 0.9 if lost else 0.1), band_only=True)
    assert band.repeats == 12 and band.model_beats_baselines


def test_one_group_alone_is_never_out_of_sample_so_the_model_is_not_said_to_beat_anything() -> None:
    trials = [t for t in _groups(lambda lost: float(lost)) if t.group == "a"]
    result = bs.score(trials)
    assert not result.out_of_sample and not result.model_beats_baselines


def _record(verdict: str, *, server: str = "asyncio", strategy: str = "inline") -> dict:
    return {"status": "ok", "survival": {"verdict": verdict},
            "params": {"workload": "pure_python", "work_ms": 600.0, "strategy": strategy, "ping_interval": 1.0,
                       "ping_timeout": 1.0, "client_pings": True, "handler_ping_timeout": None,
                       "job_connections": 2, "server": server},
            "stalls": {"count": 3, "max_ms": 1500.0, "max_whole_ms": 1500.0, "total_ms": 3000.0},
            "job_ms": {"completed_p50": 600.0}, "window": {"duration_s": 8.0}}


def test_a_repeat_is_one_trial_read_from_its_record() -> None:
    t = bs.trial_of(_record("lost"), "g", phases=20)
    assert t is not None and t.lost == 1
    assert t.stall_ratio == pytest.approx(1.5 / 2.0) and t.jobs_ratio == pytest.approx(2 * 0.6 / 1.0)
    assert t.in_band and 0.0 <= t.model_p <= 1.0
    assert bs.trial_of(_record("kept", strategy="thread"), "g", phases=20).jobs_ratio == 0.0
    for left_out in (_record("inconclusive"), _record("not_applicable"), _record("lost", server="threaded"),
                     {**_record("lost"), "status": "failed"}):
        assert bs.trial_of(left_out, "g", phases=20) is None


def test_without_records_the_flag_fails_closed(tmp_path) -> None:
    assert bs.model_beats_baselines(tmp_path / "missing") is False
    assert bs.model_beats_baselines(tmp_path) is False


@pytest.mark.skipif(not (REFERENCE / "boundary" / "jc1-pt1").is_dir(), reason="no reference records")
def test_the_command_scores_committed_searches(capsys) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["boundary", "score", str(REFERENCE / "boundary" / "jc1-pt1"),
                     str(REFERENCE / "boundary" / "jc2-pt2"), "--phases", "20"])
        missing = main(["boundary", "score", str(REFERENCE / "no-such-run")])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out, err = capsys.readouterr()
    assert code == 0 and "| model |" in out and "34 repeats" in out and "2 groups" in out
    assert bs.STALL_RULE in out and bs.JOBS_RULE in out and "model beats every baseline" in out
    assert missing == 2 and err.startswith("error: ") and err.count("\n") == 1
