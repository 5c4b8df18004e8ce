"""The window's end as a cut-off (``wsblock.engine.cutoff``), in this process.

The pool check and the inline alarm are exercised directly: a job is refused
after its deadline, run before it, and an inline job is interrupted by the
alarm (and only while it runs), with the previous ``SIGALRM`` handler back
afterwards.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from workloads import Job
from wsblock.engine import cutoff

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")


def _sleep_job(ms: int, chunk_ms: int = 10) -> Job:
    # blocking_io: each unit is one millisecond of time.sleep, in chunks.
    return Job("blocking_io", ms, chunk_ms)


def test_a_pool_job_past_its_deadline_is_not_started() -> None:
    deadline = time.monotonic() - 0.001
    with pytest.raises(cutoff.NotStarted) as raised:
        cutoff.execute_before(_sleep_job(1), deadline)
    assert raised.value.at >= deadline


def test_a_pool_job_before_its_deadline_runs_to_its_end() -> None:
    timing = cutoff.execute_before(_sleep_job(20), time.monotonic() + 60.0)
    assert timing.steps == 2 and timing.wall_ms >= 15.0


def test_without_an_installed_alarm_an_inline_job_is_not_interrupted() -> None:
    alarm = cutoff.InlineAlarm()
    alarm.arm(time.monotonic())  # does nothing: not installed
    assert not alarm.installed
    assert cutoff.run_inline(_sleep_job(30), alarm).steps == 3
    assert cutoff.run_inline(_sleep_job(10), None).steps == 1


def test_the_alarm_cuts_an_inline_job_at_the_window_end_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGALRM)
    alarm = cutoff.InlineAlarm()
    assert alarm.install() and alarm.installed
    try:
        started = time.monotonic()
        alarm.arm(started + 0.05)
        with pytest.raises(cutoff.Cut) as raised:
            cutoff.run_inline(_sleep_job(20_000, chunk_ms=20_000), alarm)  # 20 s, one sleep
        cut = raised.value
        assert cut.worked
        # Cut within seconds, not after the 20 s of work (wide margin: a noisy machine).
        assert started + 0.04 <= cut.at < started + 10.0
    finally:
        alarm.uninstall()
    assert not alarm.installed
    assert signal.getsignal(signal.SIGALRM) == before


def test_an_alarm_between_jobs_does_nothing() -> None:
    alarm = cutoff.InlineAlarm()
    assert alarm.install()
    try:
        alarm.arm(time.monotonic())  # fires at once, while no job runs
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # let the signal arrive and be handled
            time.sleep(0.01)
            if signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0):
                break
        time.sleep(0.01)
        # The next job runs whole: the handler raised nothing outside running().
        assert cutoff.run_inline(_sleep_job(20), alarm).steps == 2
    finally:
        alarm.uninstall()


def test_the_alarm_installs_only_on_the_main_thread() -> None:
    alarm = cutoff.InlineAlarm()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(alarm.install()))
    thread.start()
    thread.join(timeout=10)
    assert result == [False] and not alarm.installed
