"""The workload catalogue: fixed work, parameters, and what each does to the GIL."""

from __future__ import annotations

import threading
import time

import pytest

import workloads
from workloads import Job, execute


def test_catalogue_lists_the_five_workloads() -> None:
    assert workloads.names() == ["pure_python", "numpy", "blocking_io", "pandas", "c_holds_gil"]
    for w in workloads.all_workloads():
        assert w.description and w.unit and w.gil and w.max_units > 0


def test_unknown_workload_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        workloads.get("nope")


@pytest.mark.parametrize("units,chunk,steps", [(10, 3, 4), (9, 3, 3), (5, 100, 1)])
def test_work_is_split_into_steps_without_changing_its_size(units: int, chunk: int, steps: int) -> None:
    timing = execute(Job("pure_python", units, chunk_units=chunk))
    assert timing.steps == steps


def test_c_holds_gil_is_a_single_step() -> None:
    assert execute(Job("c_holds_gil", 1000, chunk_units=10)).steps == 1
    assert not workloads.get("c_holds_gil").chunkable


def test_pandas_reads_in_chunks_of_chunksize(tmp_path) -> None:
    w = workloads.get("pandas")
    params = w.resolve_params({"chunksize": 1000})
    w.prepare(5000, params, str(tmp_path))
    timing = execute(Job("pandas", 5000, chunk_units=1, params=params, data_dir=str(tmp_path)))
    assert timing.steps == 5


def test_params_are_validated() -> None:
    w = workloads.get("pandas")
    assert w.resolve_params({}) == {"chunksize": 10_000}
    with pytest.raises(ValueError, match="unknown parameter"):
        w.resolve_params({"rows": 3})
    with pytest.raises(ValueError, match="between"):
        w.resolve_params({"chunksize": 0})
    with pytest.raises(ValueError, match="integer"):
        w.resolve_params({"chunksize": "10"})


def _longest_gap_while(job: Job) -> tuple[float, float]:
    """Run ``job`` in a thread; return (job wall s, longest gap of this thread)."""
    result: dict[str, float] = {}
    worker = threading.Thread(target=lambda: result.update(ms=execute(job).wall_ms))
    last = time.perf_counter()
    gap = 0.0
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
    worker.join()
    return result["ms"] / 1000.0, gap


def _units_for(name: str, seconds: float) -> int:
    from wsblock.engine import calibration

    cal = calibration.get(name, workloads.get(name).resolve_params({}))
    return cal.units_for(seconds * 1000)


def test_c_holds_gil_stops_every_other_thread_for_its_whole_call() -> None:
    units = _units_for("c_holds_gil", 0.3)
    wall, gap = _longest_gap_while(Job("c_holds_gil", units, chunk_units=units))
    # The main thread cannot run at all during the call.
    assert gap > 0.5 * wall, (wall, gap)


@pytest.mark.parametrize("name", ["pure_python", "numpy", "blocking_io"])
def test_other_workloads_let_other_threads_run(name: str) -> None:
    units = _units_for(name, 0.3)
    wall, gap = _longest_gap_while(Job(name, units, chunk_units=units))
    # pure_python is forced to switch every 5 ms; the others release the GIL.
    assert gap < 0.25 * wall, (wall, gap)
