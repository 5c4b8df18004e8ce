"""A profile of one workload, measured in seconds in this process, without a server.

What decides how each strategy treats the server's loop is a property of the
call itself, measured here directly:

* **call time** (p50, p95, max over :data:`CALLS` calls where the budget
  allows), run in the calling thread as ``inline`` runs it, with the
  longest *step* of a workload that yields between steps (what ``chunked``
  runs at once);
* **GIL hold** (:mod:`wsblock.advise.holdprobe`): each call run in a worker
  thread as ``thread`` runs it, beside a probe thread that wants the GIL
  every millisecond; the probe's lateness is how long the call kept the GIL
  at once, and its summed lateness over the call time the share of the call
  spent holding it;
* **loop stall beside the call** (:mod:`wsblock.advise.loopprobe`): each
  call run in a thread pool again, beside a small event loop that does a
  server's system calls (a 1 ms timer, an echo over a socket pair); the
  timer's lateness is how long the loop stalls at once, which for pure
  Python is several of the hold probe's waits added up (run only where it
  can change the prediction, :func:`loop_probe_needed`);
* **dropping the result**: every strategy hands the result back to the
  handler, on the loop, which drops it when it has replied; freeing a
  large result (many objects) takes the loop's own time;
* **transfer** (for ``process``): the time to pickle the job (its arguments)
  and the result, and to unpickle the result in the calling process. A
  process pool's server unpickles every result in its own process, holding
  the GIL, so that time is a stall of the server's loop however free the
  worker leaves it.

The first call is made before any timing (it pays imports and caches, as the
server's set-up call does), and its time is kept apart.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import workloads
from workloads import Job
from wsblock.advise import behaviour, holdprobe, loopprobe
from wsblock.engine import user_workloads
from wsblock.errors import UsageError

CALLS = behaviour.CALLS
"""Calls timed for the call-time figures when the budget allows."""

CALLS_BUDGET_S = 6.0
"""Longest time spent on timed calls; a slower function gets fewer (at least 2)."""

HOLD_CALLS = 10
"""Calls run beside the probe when the budget allows."""

HOLD_BUDGET_S = 3.0
"""Longest time spent on calls beside the probe; a slower function gets fewer (at least :data:`HOLD_MIN_CALLS`)."""

HOLD_MIN_CALLS = 3
"""Fewest calls run beside the probe."""

LOOP_CALLS = 6
"""Calls run beside the loop probe when the budget allows."""

LOOP_BUDGET_S = 2.0
"""Longest time spent on calls beside the loop probe; a slower function gets fewer (at least :data:`HOLD_MIN_CALLS`)."""

BUSY_LOAD = 1.5
"""Load average per core from which the profile notes a busy machine (see :func:`busy_note`)."""

LOOP_SHARE = 0.5
"""Share of the call holding the GIL from which the loop probe runs (see :func:`loop_probe_needed`)."""

STEP_QUANTILE = 0.99
"""Quantile of the steps' lengths taken as a step's length (see :attr:`Profile.step_p99_ms`)."""

TRANSFER_RESULTS = 3
"""Results whose pickling and unpickling are timed (the first ones of the timed calls)."""


@dataclass(frozen=True)
class Transfer:
    """What ``process`` carries between the server and a worker, timed in this process.

    Attributes:
        job_bytes: Pickled size of the job (the function's name and arguments).
        job_pickle_ms: Time to pickle it (the server does, holding the GIL).
        result_type: Qualified name of the result's type.
        result_bytes: Largest pickled size of a result.
        result_pickle_ms: Longest time to pickle a result (the worker does).
        unpickle_p50_ms: Median time to unpickle a result (the server does, holding the GIL).
        unpickle_max_ms: Longest time to unpickle a result.
        results: Results timed.
    """

    job_bytes: int
    job_pickle_ms: float
    result_type: str
    result_bytes: int
    result_pickle_ms: float
    unpickle_p50_ms: float
    unpickle_max_ms: float
    results: int


@dataclass(frozen=True)
class Profile:
    """Everything measured about one workload.

    Attributes:
        target: The workload name or ``package.module:function``.
        job: What one call is: ``units``, ``chunk_units`` and the parameters.
        first_call_ms: The untimed first call (imports, caches).
        calls: Call-time figures of the timed calls (in the calling thread).
        calls_ms: Each timed call's wall time.
        step_max_ms: Longest step of any timed call (the whole call when it does not yield).
        step_p99_ms: The :data:`STEP_QUANTILE` quantile of every step of the timed calls
            (one step preempted by the machine does not count as the workload's step).
        free_max_ms: Longest time to drop a result (free it) in the calling thread.
        steps: Steps of one call (the times it yields, as :func:`workloads.execute` counts them).
        holds: Each probed call's GIL holds.
        slack_ms: The probe's own lateness, taken off each of its samples.
        threshold_ms: Holds longer than this are counted apart (the stall threshold).
        transfer: What ``process`` carries (``None`` when no process pool can run it).
        switch_interval_s: ``sys.getswitchinterval()`` after the calls (a function may set it).
        gil_enabled: Whether this interpreter has a GIL at all.
        took_s: Seconds the measurements took.
        notes: What the reader should know about the measurement.
        loop_stalls: Each call's stalls of an event loop beside it (run in a thread pool).
        loop_slack_ms: The loop timer's own lateness, taken off each of its samples.
        loop_skipped: Why the loop probe did not run (empty when it ran).
    """

    target: str
    job: dict[str, Any]
    first_call_ms: float
    calls: behaviour.CallTimes
    calls_ms: list[float]
    step_max_ms: float
    step_p99_ms: float
    free_max_ms: float
    steps: int
    holds: list[holdprobe.Hold]
    slack_ms: float
    threshold_ms: float
    transfer: Transfer | None
    switch_interval_s: float
    gil_enabled: bool
    took_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    loop_stalls: list[holdprobe.Hold] = field(default_factory=list)
    loop_slack_ms: float = 0.0
    loop_skipped: str = ""

    @property
    def hold_max_ms(self) -> float:
        """The longest the GIL was held at once in any probed call."""
        return max((h.longest_ms for h in self.holds), default=0.0)

    @property
    def hold_ms(self) -> float:
        """The longest hold seen in at least two probed calls (the second longest of the calls' longest holds).

        One late wake-up of the probe may be the machine (the probe's
        thread not scheduled), not the call; a hold that the call makes
        shows in more than one call. With a single probed call, its longest hold.
        """
        return _second_longest([h.longest_ms for h in self.holds])

    @property
    def loop_stall_ms(self) -> float:
        """The event loop's longest stall beside the call in a thread, seen in at least two calls (as :attr:`hold_ms`)."""
        return _second_longest([s.longest_ms for s in self.loop_stalls])

    @property
    def loop_stall_max_ms(self) -> float:
        """The event loop's single longest stall beside any call in a thread."""
        return max((s.longest_ms for s in self.loop_stalls), default=0.0)

    @property
    def loop_over_share(self) -> float:
        """The share of the calls' time the loop beside them spent in stalls longer than :attr:`threshold_ms`."""
        total = sum(s.call_ms for s in self.loop_stalls)
        return min(1.0, sum(s.over_ms for s in self.loop_stalls) / total) if total > 0 else 0.0

    @property
    def loop_over_per_call(self) -> float:
        """The loop's stalls longer than :attr:`threshold_ms` per call."""
        return sum(s.over_count for s in self.loop_stalls) / len(self.loop_stalls) if self.loop_stalls else 0.0

    @property
    def hold_share(self) -> float:
        """The share of the probed calls' time spent holding the GIL (summed lateness over summed call time)."""
        return _share(self.holds)

    @property
    def over_share(self) -> float:
        """The share of the probed calls' time spent in holds longer than :attr:`threshold_ms`."""
        total = sum(h.call_ms for h in self.holds)
        return min(1.0, sum(h.over_ms for h in self.holds) / total) if total > 0 else 0.0

    @property
    def probed_max_ms(self) -> float:
        """Longest wall time of a probed call (run in a worker thread)."""
        return max((h.call_ms for h in self.holds), default=0.0)

    @property
    def over_per_call(self) -> float:
        """Holds longer than :attr:`threshold_ms` per probed call."""
        return sum(h.over_count for h in self.holds) / len(self.holds) if self.holds else 0.0

    @property
    def probed_call_p50_ms(self) -> float:
        """Median wall time of the probed calls (run in a worker thread)."""
        return behaviour.percentile([h.call_ms for h in self.holds], 0.5)


def loop_probe_needed(hold_ms: float, share: float, threshold_ms: float) -> str:
    """Whether the loop probe can change the prediction for ``thread``: ``""`` if so, else why not.

    The loop waits after its system calls only for a call that holds the
    GIL most of the time (at least :data:`LOOP_SHARE`) and hands it over in
    slices: then the hold probe's single wake-up sees one slice, and the
    loop's waits may add up past the stall threshold. A call that holds the
    GIL longer than the threshold at once already predicts a stall of the
    hold (the loop probe measured about the hold for such calls); a call
    that releases the GIL most of the time leaves the loop the GIL whenever
    it asks. Skipping those two keeps the profile short where the probe
    cannot move the answer.

    Args:
        hold_ms: The longest GIL hold at once, seen in at least two calls.
        share: The share of the call spent holding the GIL.
        threshold_ms: The stall threshold.
    """
    if hold_ms > threshold_ms:
        return f"the call holds the GIL for {hold_ms:,.0f} ms at once, over the stall threshold: the hold decides"
    if share < LOOP_SHARE:
        return (f"the call holds the GIL for {share * 100:.0f} % of its time (under {LOOP_SHARE * 100:.0f} %): "
                f"the loop gets it when it asks")
    return ""


def _load() -> float | None:
    """The machine's 1-minute load average (``None`` where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def busy_note(load: float | None, cpus: int) -> str:
    """A note when the machine was busy while profiling (``""`` when not, or unknown).

    With more runnable tasks than cores, the kernel preempts the thread that
    holds the GIL and the loop waits for it to run again: a server's loop,
    which competes with its own load and workers as well, then stalls longer
    than the probes here show beside pure Python (``docs/advise.md``: thread
    cells past the stall threshold where the loop probe stayed under it, at
    a load average twice the cores).

    Args:
        load: The 1-minute load average after the measurements.
        cpus: Cores of the machine.
    """
    if load is None or load < BUSY_LOAD * cpus:
        return ""
    return (f"the machine was busy while profiling (load average {load:.1f} on {cpus} cores): the kernel preempts "
            f"the thread holding the GIL, so a real server's loop may stall longer than predicted here beside a "
            f"call that holds the GIL in slices; profile again on a quieter machine, or confirm with cells")


def _share(holds: list[holdprobe.Hold]) -> float:
    """The share of the calls' time spent holding the GIL (summed lateness over summed call time)."""
    total = sum(h.call_ms for h in holds)
    return min(1.0, sum(h.total_ms for h in holds) / total) if total > 0 else 0.0


def _second_longest(values: list[float]) -> float:
    """The second largest of ``values`` (a figure seen at least twice); the only one, or 0."""
    ordered = sorted(values, reverse=True)
    return ordered[1] if len(ordered) >= 2 else (ordered[0] if ordered else 0.0)


def _run_steps(workload: workloads.Workload, job: Job) -> tuple[float, list[float], Any]:
    """Run a job step by step: ``(wall ms, each resumption's ms, result)``.

    Mirrors :func:`workloads.execute`, with each step timed: ``chunked``
    returns to the loop between steps, so its longest step is what it
    blocks the loop for at once.
    """
    clock = time.perf_counter
    steps = workload.steps(job)
    began = last = clock()
    each: list[float] = []
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            result = stop.value
            break
        finally:
            now = clock()
            each.append((now - last) * 1000.0)
            last = now
    return (last - began) * 1000.0, each, result


def _time(action: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = action()
    return (time.perf_counter() - began) * 1000.0, value


def _drop(holder: list[Any]) -> float:
    """Free the one object ``holder`` keeps the last reference to; return the ms it took."""
    began = time.perf_counter()
    holder.clear()
    return (time.perf_counter() - began) * 1000.0


def transfer_of(job: Job, results: list[Any]) -> Transfer:
    """Time pickling ``job`` and pickling and unpickling each result, as a process pool would.

    Raises:
        UsageError: A result that cannot be pickled (a process pool could not hand it back).
    """
    job_ms, job_blob = _time(lambda: pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    sizes, dumps, loads = [], [], []
    kind = "builtins.NoneType"
    for value in results:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        try:
            ms, blob = _time(lambda: pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - any object may refuse to pickle
            raise UsageError(f"{job.workload} returns {type(value).__qualname__}, which cannot be pickled, so a "
                             f"process pool cannot hand it back to the server ({type(exc).__name__}: {exc})") from None
        sizes.append(len(blob))
        dumps.append(ms)
        loads.append(_time(lambda: pickle.loads(blob))[0])
        del blob
    return Transfer(len(job_blob), job_ms, kind, max(sizes, default=0), max(dumps, default=0.0),
                    behaviour.percentile(loads, 0.5) if loads else 0.0, max(loads, default=0.0), len(results))


def measure(name: str, job: Job, *, threshold_ms: float, out_of_process: bool,
            progress: Callable[[str], None]) -> Profile:
    """Profile one workload's job: call times, GIL holds and (``out_of_process``) transfer.

    Args:
        name: The target as given.
        job: One call's job (sized: ``units`` from the calibration, or 1).
        threshold_ms: The stall threshold: holds longer than this are counted apart.
        out_of_process: Whether a process pool can run it (then its transfer is timed).
        progress: Receives progress lines.

    Raises:
        UsageError: A call raised, or a result cannot be pickled for ``process``.
    """
    workload = workloads.get(job.workload)
    began = time.monotonic()

    def call(when: str) -> tuple[float, list[float], Any]:
        try:
            return _run_steps(workload, job)
        except Exception as exc:  # noqa: BLE001 - the user's function may raise anything
            raise UsageError(user_workloads.failure(name, exc, when)) from None

    first_ms, _, _ = call("on the first profiled call")
    count = behaviour.calls_to_time(first_ms, calls=CALLS, budget_s=CALLS_BUDGET_S)
    progress(f"timing {count} calls of {name} (first call {first_ms:,.0f} ms)")
    times, steps, kept, free = [], [], [], 0.0
    for _ in range(count):
        wall, each, result = call("on a timed call")
        times.append(wall)
        steps.append(each)
        if out_of_process and len(kept) < TRANSFER_RESULTS:
            kept.append(result)
            continue
        # The last reference goes: the result is freed here, as the handler frees it on the loop.
        holder = [result]
        del result
        free = max(free, _drop(holder))
    transfer = transfer_of(job, kept) if out_of_process else None
    while kept:
        free = max(free, _drop([kept.pop()]))
    calls = behaviour.from_calls(times)
    calls = behaviour.CallTimes(f"{calls.n} calls timed in this process", calls.n, calls.p50, calls.p95, calls.max)

    probed = max(HOLD_MIN_CALLS, behaviour.calls_to_time(calls.p50, calls=HOLD_CALLS, budget_s=HOLD_BUDGET_S))
    progress(f"running {probed} calls of {name} in a thread beside a probe that wants the GIL every "
             f"{holdprobe.PERIOD_S * 1000:g} ms")

    def probed_call() -> None:
        workloads.execute(job)

    try:
        holds, slack = holdprobe.measure(probed_call, probed, threshold_ms=threshold_ms)
    except Exception as exc:  # noqa: BLE001 - the user's function may raise anything
        raise UsageError(user_workloads.failure(name, exc, "on a call beside the GIL probe")) from None
    skipped = loop_probe_needed(_second_longest([h.longest_ms for h in holds]), _share(holds), threshold_ms)
    loop_stalls: list[holdprobe.Hold] = []
    loop_slack = 0.0
    if not skipped:
        looped = max(HOLD_MIN_CALLS, behaviour.calls_to_time(calls.p50, calls=LOOP_CALLS, budget_s=LOOP_BUDGET_S))
        progress(f"running {looped} calls of {name} in a thread pool beside an event loop (a "
                 f"{loopprobe.PERIOD_S * 1000:g} ms timer, an echo over a socket pair every "
                 f"{loopprobe.ECHO_EVERY_S * 1000:g} ms)")
        try:
            loop_stalls, loop_slack = loopprobe.measure(probed_call, looped, threshold_ms=threshold_ms)
        except Exception as exc:  # noqa: BLE001 - the user's function may raise anything
            raise UsageError(user_workloads.failure(name, exc, "on a call beside the loop probe")) from None
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    notes = [] if gil else ["this interpreter runs without a GIL: no call can hold it, the holds are scheduling"]
    busy = busy_note(_load(), os.cpu_count() or 1)
    notes += [busy] if busy else []
    return Profile(name, {"units": job.units, "chunk_units": job.chunk_units, "params": dict(job.params)},
                   first_ms, calls, times, max(max(e) for e in steps),
                   behaviour.percentile([x for e in steps for x in e], STEP_QUANTILE), free,
                   round(sum(len(e) - 1 for e in steps) / len(steps)), holds, slack, threshold_ms, transfer,
                   sys.getswitchinterval(), gil, time.monotonic() - began, notes, loop_stalls, loop_slack,
                   skipped)


__all__ = ["BUSY_LOAD", "CALLS", "CALLS_BUDGET_S", "HOLD_BUDGET_S", "HOLD_CALLS", "HOLD_MIN_CALLS", "LOOP_BUDGET_S", "LOOP_CALLS",
           "LOOP_SHARE",
           "Profile",
           "TRANSFER_RESULTS", "Transfer", "busy_note", "loop_probe_needed", "measure", "transfer_of"]
