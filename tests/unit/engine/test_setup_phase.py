"""The harness's set-up stays out of the window; results travel back as in a real server."""

from __future__ import annotations

import asyncio
import copy
import pickle

import pytest

from tests.helpers import fixture_records
from workloads import Job, execute
from wsblock.engine import carry, checks, setup_phase, strategies
from wsblock.engine.probe import Stall, summarize_stalls
from wsblock.engine.window import Window

WINDOW = Window(100.0, 110.0)
READY = 97.0


def _stalls() -> list[Stall]:
    return [
        Stall(90.0, 92.5, "examples/slow_import.py:21 _build"),  # set-up, well before the window
        Stall(98.0, 98.2, "engine/strategies.py:120 run"),       # warm-up, before the window
        Stall(104.0, 104.3, None),                                # in the window
    ]


def test_stalls_before_the_window_are_recorded_by_phase_with_their_sites() -> None:
    before = setup_phase.before_window(_stalls(), WINDOW, ready_at=READY, setup_ms={"import_ms": 2500.0})
    assert before["count"] == 2 and before["longest_ms"] == pytest.approx(2500.0)
    assert before["setup"]["count"] == 1 and before["setup"]["sites"] == {"examples/slow_import.py:21 _build": 1}
    assert before["warmup"]["count"] == 1 and before["warmup"]["longest_ms"] == pytest.approx(200.0)
    assert before["at_window_start"] is None
    assert before["setup_steps_ms"] == {"import_ms": 2500.0}


def test_a_setup_stall_reaching_into_the_window_is_never_charged_and_is_warned_of() -> None:
    # Yes: a set-up stall still going when the window opened.
    stalls = [Stall(96.0, 101.5, "examples/slow_import.py:21 _build"), Stall(104.0, 104.3, None)]
    charged = setup_phase.strategy_stalls(stalls, READY)
    window = summarize_stalls(charged, WINDOW)
    assert window["count"] == 1 and window["max_ms"] == pytest.approx(300.0)
    assert "examples/slow_import.py:21 _build" not in window["sites"]
    before = setup_phase.before_window(stalls, WINDOW, ready_at=READY)
    at = before["at_window_start"]
    assert at["phase"] == "setup" and at["ms_into_window"] == pytest.approx(1500.0)
    assert at["began_ms_before"] == pytest.approx(4000.0)
    rec = _record(window, before)
    codes = [w for w in checks.warnings_for(rec) if w["code"] == "stalled_at_window_start"]
    assert len(codes) == 1 and "set-up" in codes[0]["message"] and "slow_import.py" in codes[0]["message"]


def test_a_warmup_stall_reaching_into_the_window_counts_there() -> None:
    # No: a stall of the cell's own work (after ready) is the strategy's.
    stalls = [Stall(99.0, 101.0, "engine/strategies.py:120 run")]
    window = summarize_stalls(setup_phase.strategy_stalls(stalls, READY), WINDOW)
    assert window["count"] == 1 and window["max_ms"] == pytest.approx(1000.0)
    before = setup_phase.before_window(stalls, WINDOW, ready_at=READY)
    assert before["at_window_start"]["phase"] == "warmup"
    rec = _record(window, before)
    codes = {w["code"] for w in checks.warnings_for(rec)}
    # The cell's own work is no condition of the measurement: a note that moves no verdict.
    assert "stalled_at_window_start" not in codes and "busy_at_window_start" in codes
    [warning] = [w for w in checks.warnings_for(rec) if w["code"] == "busy_at_window_start"]
    assert "warm-up" in warning["message"] and "engine/strategies.py:120" in warning["message"]
    from wsblock.schema import caveats
    assert caveats.direction("busy_at_window_start") == caveats.NEUTRAL
    assert caveats.direction("stalled_at_window_start") == caveats.HARSHER
    # And none when no stall crossed the window's start.
    quiet = _record(window, setup_phase.before_window(_stalls(), WINDOW, ready_at=READY))
    assert not {"stalled_at_window_start", "busy_at_window_start"} & {w["code"] for w in checks.warnings_for(quiet)}


def test_a_version_4_record_names_a_warmup_stall_as_the_cells_own_work() -> None:
    from wsblock.schema import record

    def v4(phase: str) -> dict:
        stalls = [Stall(96.0 if phase == "setup" else 99.0, 101.0, "x.py:1 f")]
        before = setup_phase.before_window(stalls, WINDOW, ready_at=READY)
        assert before["at_window_start"]["phase"] == phase
        rec = _record(summarize_stalls(setup_phase.strategy_stalls(stalls, READY), WINDOW), before)
        rec["schema_version"] = 4
        rec["warnings"] = [{"code": "stalled_at_window_start", "message": "v4"}, {"code": "oversubscribed",
                                                                                  "message": "m"}]
        return record.upgrade(rec)

    # Yes: a warm-up stall becomes the note; no: a set-up stall stays a harsher condition.
    assert [w["code"] for w in v4("warmup")["warnings"]] == ["busy_at_window_start", "oversubscribed"]
    setup = v4("setup")["warnings"]
    assert [w["code"] for w in setup] == ["stalled_at_window_start", "oversubscribed"]
    assert "set-up" in setup[0]["message"]


def _record(stalls: dict, before: dict) -> dict:
    _, rec = fixture_records()[0]
    rec = copy.deepcopy(rec)
    rec["stalls"] = {**stalls, "before_window": before}
    return rec


def test_a_worker_result_is_pickled_once_and_its_unpickling_timed() -> None:
    value = [{"id": i, "name": f"row-{i}"} for i in range(20_000)]
    blob = pickle.dumps(carry.Carried(value))
    returned = pickle.loads(blob)
    assert isinstance(returned, carry.Returned)
    assert returned.value == value and returned.type == "builtins.list"
    assert returned.pickled_bytes == len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    assert returned.transfer_ms is not None and returned.transfer_ms > 0
    ledger = carry.ResultLedger()
    ledger.record(returned)
    summary = ledger.summary(pickled=True)
    assert summary["jobs"] == 1 and summary["pickled_bytes_max"] == returned.pickled_bytes
    assert summary["transfer_ms"]["samples"] == 1
    # In the server's own process nothing is pickled: no size, no transfer.
    ledger = carry.ResultLedger()
    ledger.record(carry.in_process(value))
    assert ledger.summary(pickled=False)["transfer_ms"] is None


def test_execute_hands_back_a_function_s_return_value(tmp_path, monkeypatch) -> None:
    (tmp_path / "returning_mod.py").write_text(
        "def plain(n=3):\n    return list(range(n))\n\n"
        "def gen(n=2):\n    for _ in range(n):\n        yield\n    return 'done'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert execute(Job("returning_mod:plain", 1, 1, {"n": 4})).result == [0, 1, 2, 3]
    timing = execute(Job("returning_mod:gen", 1, 1, {"n": 2}))
    assert timing.result == "done" and timing.steps == 2
    assert execute(Job("pure_python", 10, 10)).result is None


@pytest.mark.parametrize("name,who", [("thread", "whoami_mod:thread"), ("process", "whoami_mod:process")])
def test_each_pool_worker_makes_one_set_up_call(name: str, who: str, tmp_path, monkeypatch) -> None:
    # Functions of the standard library are refused as workloads: the same calls, in a module of the user's.
    (tmp_path / "whoami_mod.py").write_text(
        "import os\nimport threading\n\ndef thread():\n    return threading.get_ident()\n\n"
        "def process():\n    return os.getpid()\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    async def go() -> tuple[list[carry.Returned], list[int]]:
        strategy = strategies.create(name, workers=3, start_method="spawn")
        try:
            await strategy.start(Job(who, 1, 1))
            return strategy.setup_results, strategy.worker_pids()
        finally:
            await strategy.close()

    results, pids = asyncio.run(go())
    # Three calls, each in a worker of its own (a thread's id, a process's pid).
    assert len({r.value for r in results}) == 3
    if name == "process":
        assert sorted(r.value for r in results) == sorted(pids)
        assert all(r.pickled_bytes and r.transfer_ms is not None for r in results)
    else:
        assert all(r.pickled_bytes is None for r in results)


def test_a_result_that_cannot_be_pickled_is_refused_before_a_process_server_starts(tmp_path, monkeypatch) -> None:
    from wsblock.engine import user_workloads
    from wsblock.engine.config import CellConfig
    from wsblock.errors import UsageError

    (tmp_path / "unpicklable_mod.py").write_text(
        "import threading\n\ndef lock():\n    return threading.Lock()\n\ndef fine():\n    return {'a': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match="cannot be pickled"):
        user_workloads.trial(CellConfig("unpicklable_mod:lock", None, "process"), lambda _: None)
    # A thread keeps the result in the server: nothing to pickle.
    user_workloads.trial(CellConfig("unpicklable_mod:lock", None, "thread"), lambda _: None)
    user_workloads.trial(CellConfig("unpicklable_mod:fine", None, "process"), lambda _: None)


def test_a_version_3_record_reads_as_not_measured_before_the_window_and_for_results() -> None:
    from wsblock.schema import record

    _, rec = fixture_records()[0]
    old = copy.deepcopy(rec)
    old["schema_version"] = 3
    for key in ("result",):
        old.pop(key, None)
    old["stalls"].pop("before_window", None)
    (old.get("server") or {}).pop("setup", None)
    new = record.load(old)
    assert new["schema_version"] == record.SCHEMA_VERSION == 5
    assert new["result"] is None and new["stalls"]["before_window"] is None and new["server"]["setup"] is None
    # Read as not measured: no warning of a stall at the window's start is invented.
    assert "stalled_at_window_start" not in {w["code"] for w in checks.warnings_for(new)}


def test_wsblock_run_prints_the_set_up_and_the_result() -> None:
    from wsblock.engine.summary import summarize

    window = summarize_stalls(setup_phase.strategy_stalls(_stalls(), READY), WINDOW)
    before = setup_phase.before_window(_stalls(), WINDOW, ready_at=READY,
                                       setup_ms={"import_ms": 2500.0, "first_call_ms": 40.0})
    rec = _record(window, before)
    ledger = carry.ResultLedger()
    ledger.record(pickle.loads(pickle.dumps(carry.Carried(list(range(1000))))))
    rec["result"] = ledger.summary(pickled=True)
    text = summarize(rec)
    [line] = [line for line in text.splitlines() if line.startswith("before")]
    assert "2,500.0 ms of imports" in line and "set-up" in line and "slow_import.py:21 _build" in line
    assert "none reached the window" in line
    [line] = [line for line in text.splitlines() if line.startswith("result")]
    assert "builtins.list, pickled from the worker" in line and "over 1 job (" in line
    # A record from before the set-up was measured says nothing of it.
    rec["stalls"]["before_window"] = None
    rec["result"] = None
    assert not any(line.startswith(("before", "result")) for line in summarize(rec).splitlines())


def test_every_warning_code_a_record_can_carry_is_declared() -> None:
    # The server's CPU that could not be read is said, not a crash.
    window = summarize_stalls([], WINDOW)
    rec = _record(window, setup_phase.before_window([], WINDOW, ready_at=READY))
    rec["resources"]["server"] = {**(rec["resources"].get("server") or {}),
                                  "cpu_missing": "the server's CPU times could not be read"}
    codes = {w["code"] for w in checks.warnings_for(rec)}
    assert "cpu_unmeasured" in codes and codes <= set(checks.CODES)
