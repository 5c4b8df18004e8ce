"""Windows that can decide at any keepalive: the sized window's maximum, its option and its plan."""

from __future__ import annotations

import signal
from dataclasses import replace

import pytest

from wsblock.advise import target as tg
from wsblock.boundary import plan as search_plan
from wsblock.cli import main
from wsblock.engine import sizing
from wsblock.engine.config import CellConfig
from wsblock.engine.runner import plan_window
from wsblock.errors import UsageError
from wsblock.matrix import reuse as matrix_reuse
from wsblock.matrix import spec as matrix_spec


def _defaults_cell(**change) -> CellConfig:
    # websockets' defaults, a 12 s inline job, one job connection.
    return CellConfig("pure_python", 12000.0, "inline", ping_interval=20.0, ping_timeout=20.0,
                      job_connections=1, **change).validate()


def test_a_12_s_inline_job_at_websockets_defaults_gets_a_window_that_can_decide() -> None:
    plan = plan_window(_defaults_cell(), None)
    # first ping 20 s after a handshake held up by one job, 3 cycles of 40 s, a quarter cycle
    assert plan.keepalive_s == pytest.approx(0.5 + 12 + 20 - 2 + 3 * 40 + 10)
    assert plan.duration_s == 161 and not plan.bounded and plan.keepalive_observable
    assert plan.max_s == sizing.MAX_WINDOW_S >= 600
    assert plan.to_dict()["max_s"] == sizing.MAX_WINDOW_S


def test_a_lower_max_window_cuts_it_and_the_plan_says_it_cannot_say_kept() -> None:
    plan = plan_window(_defaults_cell(max_window=120.0), None)
    assert plan.duration_s == 120 and plan.bounded and not plan.keepalive_observable
    line = sizing.describe(plan, warmup_s=2.0)
    assert "cut to the maximum of 120 s" in line and "cannot say kept" in line and "161" in line


def test_the_plan_line_says_the_window_why_and_the_time() -> None:
    line = sizing.describe(plan_window(_defaults_cell(), None), warmup_s=2.0)
    assert line.startswith("window sized to 161 s (at most 600 s)")
    assert "keepalive verdict needs 160.5 s" in line and "2 min 43 s" in line
    given = sizing.describe(plan_window(_defaults_cell(duration=30.0), None), warmup_s=2.0)
    assert "as given" in given and "at best inconclusive" in given


@pytest.mark.parametrize("value", [2.0, 3601.0, 0.0])
def test_max_window_is_refused_outside_its_range_with_one_message_everywhere(value, capsys) -> None:
    expected = f"max_window must be from 3 to 3600, got {value!r}" if value else "max_window must be a positive number"
    with pytest.raises(UsageError) as cell_error:
        _defaults_cell(max_window=value)
    with pytest.raises(UsageError) as matrix_error:
        matrix_spec.expand({"workloads": ["pure_python"], "work_ms": [100], "strategies": ["inline"],
                            "max_window": value}, source="t")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["run", "--workload", "pure_python", "--work-ms", "100", "--strategy", "inline",
                     "--max-window", str(value)])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert expected in str(cell_error.value) and expected in str(matrix_error.value)


def test_a_matrix_declares_max_window_for_its_cells() -> None:
    m = matrix_spec.expand({"workloads": ["pure_python"], "work_ms": [100], "strategies": ["inline"],
                            "max_window": 900}, source="t")
    assert {p.cell.max_window for p in m.cells} == {900.0}
    plain = matrix_spec.expand({"workloads": ["pure_python"], "work_ms": [100], "strategies": ["inline"]},
                               source="t")
    assert {p.cell.max_window for p in plain.cells} == {sizing.MAX_WINDOW_S}


def _record(planned: matrix_spec.PlannedCell, *, bounded: bool, duration_s: float) -> dict:
    params = matrix_reuse.expected_params(planned)
    del params["max_window"]  # made before the setting existed
    return {"params": params, "window": {"bounded": bounded, "duration_s": duration_s, "max_s": 120.0}}


def test_a_record_made_under_the_old_maximum_is_reused_only_when_its_window_was_not_cut() -> None:
    planned = matrix_spec.PlannedCell(CellConfig("pure_python", 100.0, "inline").validate(), 0)
    kept = _record(planned, bounded=False, duration_s=80.0)
    assert matrix_reuse.params_difference(kept["params"], planned, kept["window"]) is None
    cut = _record(planned, bounded=True, duration_s=120.0)
    assert "max_window is 120.0" in matrix_reuse.params_difference(cut["params"], planned, cut["window"])
    # a failed attempt measured no window: it is run again, not refused
    assert matrix_reuse.params_difference(cut["params"], planned, None) is None
    # a cell that gives its duration has no use for the maximum
    given = matrix_spec.PlannedCell(CellConfig("pure_python", 100.0, "inline", duration=5.0).validate(), 0)
    old = _record(given, bounded=False, duration_s=5.0)
    assert matrix_reuse.params_difference(old["params"], given, {**old["window"], "bounded": True}) is None


def test_advise_confirms_at_websockets_defaults_with_three_keepalive_cycles() -> None:
    target = tg.resolve("pure_python", work_ms=1000.0, params=[], ping_interval=20.0, ping_timeout=20.0,
                        job_connections=1, repeats=3)
    confirm = tg.confirm_definition(target, ["inline"])
    assert confirm is not None and confirm["min_cycles"] == 3
    # under the former two-minute maximum three cycles do not fit: no confirmation (the prediction stays
    # inconclusive), never one with fewer cycles than a verdict of kept needs
    short = replace(target, definition={**target.definition, "max_window": 120})
    assert tg.confirm_definition(short, ["inline"]) is None


def test_a_search_whose_window_exceeds_max_window_is_refused() -> None:
    template = CellConfig("pure_python", 1.0, "inline", ping_interval=20.0, ping_timeout=60.0,
                          job_connections=1).validate()
    assert search_plan.fixed_window(template).duration > 120
    with pytest.raises(UsageError, match="more than --max-window 120"):
        search_plan.fixed_window(replace(template, max_window=120.0))


def test_a_search_states_its_windows_and_its_time_bound_before_it_starts() -> None:
    template = search_plan.fixed_window(_defaults_cell())
    assert template.duration == 188.5  # a 40 s job's verdict window at 20 s / 20 s
    line = search_plan.plan_line([template], 10)
    assert line.startswith("1 search, 188.5 s windows after 2 s warm-ups")
    bound = line.split("at most 10 cells each: up to about ")[1]
    assert bound.endswith("min")  # ten cells of more than three minutes each
