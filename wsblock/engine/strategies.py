"""How the server runs a job: one interface, four strategies.

* ``inline``: call the work in the handler; the event loop stops meanwhile.
* ``chunked``: run the work's steps in the handler and ``await
  asyncio.sleep(0)`` between them (cooperative yielding).
* ``thread``: ``loop.run_in_executor`` on a ``ThreadPoolExecutor``
  (``asyncio.to_thread`` is the same mechanism).
* ``process``: ``loop.run_in_executor`` on a ``ProcessPoolExecutor`` with an
  explicit start method, warmed up before the window, shut down explicitly.

On the threaded server (no event loop) a handler thread calls
:meth:`Strategy.run_blocking`: ``inline`` runs the job in that thread,
``thread`` and ``process`` submit it to the same pools and wait for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import signal
import threading
import time
from typing import Any, ClassVar

import psutil

import workloads
from wsblock.engine import carry, cutoff
from wsblock.engine.carry import Returned
from workloads import Job, JobTiming, Workload, execute

WARM_TIMEOUT_S = 300.0
"""How long the set-up call of every pool worker may take, all together."""


class Strategy:
    """Base class: runs jobs for the server.

    Args:
        workers: Pool size, for strategies with a pool.
        start_method: ``multiprocessing`` start method, for ``process``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    chunks: ClassVar[bool] = False
    """Runs a job as a workload's steps (``Job.chunk_units`` matters)."""
    uses_pool: ClassVar[bool] = False
    """Hands jobs to a pool of ``workers`` (the pool size matters)."""
    out_of_process: ClassVar[bool] = False
    """Runs jobs in other processes (the start method matters)."""

    def __init__(self, *, workers: int = 1, start_method: str = "spawn") -> None:
        self.workers = workers
        self.start_method = start_method
        self.not_after: float | None = None
        self.alarm: cutoff.InlineAlarm | None = None

    def cut_off_at(self, not_after: float) -> None:
        """Begin no job after ``not_after`` (monotonic seconds), where this strategy can.

        See :mod:`wsblock.engine.cutoff`: a pool does not begin a job after
        it; a job not begun raises :class:`cutoff.Cut` from :meth:`run`.
        """
        self.not_after = not_after

    def interrupt_with(self, alarm: cutoff.InlineAlarm) -> None:
        """Let ``alarm`` interrupt the jobs this strategy runs on the calling thread.

        Only ``inline`` has such jobs (a built-in workload's; see
        :mod:`wsblock.engine.cutoff`); an interrupted one raises
        :class:`cutoff.Cut` from :meth:`run`.
        """
        self.alarm = alarm

    @classmethod
    def unsupported_reason(cls, workload: Workload) -> str | None:
        """Say why this strategy cannot run ``workload``, or ``None`` if it can."""
        return None

    async def start(self, warm: Job) -> Returned:
        """Create pools and call the work once where it will run, before the window.

        ``inline`` and ``chunked`` call it on the loop's thread; ``thread``
        and ``process`` once in each pool worker (every worker exists and
        has imported the work before the window).

        Args:
            warm: A small job of the cell's workload.

        Returns:
            What the (last) set-up call handed back.
        """
        timing = await self.run(warm)
        return carry.in_process(timing.result)

    async def run(self, job: Job) -> JobTiming:
        """Run one job; return how long the work took where it ran.

        Its ``result`` is what the handler gets back, a
        :class:`~wsblock.engine.carry.Returned`.
        """
        raise NotImplementedError

    def run_blocking(self, job: Job) -> JobTiming:
        """Run one job from a thread without an event loop, which waits for it.

        The threaded server's handler threads call this. Strategies that
        yield to an event loop between steps cannot (the cell is refused).
        A pool does not begin a job after the cut-off, as in :meth:`run`.
        """
        raise NotImplementedError(f"{self.name} needs an event loop")

    async def close(self) -> None:
        """Release pools; safe to call more than once."""

    def worker_pids(self) -> list[int]:
        """Process ids of pool workers (empty for in-process strategies)."""
        return []


class Inline(Strategy):
    name = "inline"
    description = "call the work in the handler; blocks the event loop"

    async def run(self, job: Job) -> JobTiming:
        # A user's function is not interrupted: its clean-up is its own.
        interruptible = not isinstance(workloads.get(job.workload), workloads.FunctionWorkload)
        return _returned(cutoff.run_inline(job, self.alarm if interruptible else None))

    def run_blocking(self, job: Job) -> JobTiming:
        return _returned(execute(job))


class Chunked(Strategy):
    name = "chunked"
    description = "run the work in steps, await asyncio.sleep(0) between steps"
    chunks = True

    @classmethod
    def unsupported_reason(cls, workload: Workload) -> str | None:
        if not workload.chunkable:
            hint = "; a generator function runs chunked, one step per yield" if isinstance(
                workload, workloads.FunctionWorkload) else ""
            return f"{workload.name} is a single call that cannot be split into steps{hint}"
        return None

    async def run(self, job: Job) -> JobTiming:
        wall = cpu = 0.0
        count = 0
        steps = workloads.get(job.workload).steps(job)
        result = None
        while True:
            wall0 = time.perf_counter()
            cpu0 = time.thread_time()
            try:
                next(steps)
                done = False
            except StopIteration as stop:
                result, done = stop.value, True
            wall += time.perf_counter() - wall0
            cpu += time.thread_time() - cpu0
            if done:
                break
            count += 1
            await asyncio.sleep(0)
        return JobTiming(wall_ms=wall * 1000.0, cpu_ms=cpu * 1000.0, steps=count,
                         result=carry.in_process(result))


class _PoolStrategy(Strategy):
    """A strategy that hands jobs to an executor with ``run_in_executor``."""

    uses_pool = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._pool: concurrent.futures.Executor | None = None
        self._barrier: threading.Barrier | None = None
        self.setup_results: list[Returned] = []
        """What each worker's set-up call handed back."""

    def _create_pool(self) -> concurrent.futures.Executor:
        raise NotImplementedError

    async def start(self, warm: Job) -> Returned:
        self._pool = self._create_pool()
        # One set-up call per worker, all at once: pools start a worker for
        # each task submitted while none is idle, and each call waits at a
        # barrier until all have begun, so no worker takes two and every
        # worker has imported the work and called it before the window.
        loop = asyncio.get_running_loop()
        timings = await asyncio.gather(*(
            loop.run_in_executor(self._pool, _call_after_barrier, warm, self._barrier)
            for _ in range(self.workers)))
        self.setup_results = [_returned(t).result for t in timings]
        return self.setup_results[-1]  # type: ignore[no-any-return]

    async def run(self, job: Job) -> JobTiming:
        assert self._pool is not None, "start() first"
        loop = asyncio.get_running_loop()
        if self.not_after is None:
            return _returned(await loop.run_in_executor(self._pool, _call, job, None))
        try:
            return _returned(await loop.run_in_executor(self._pool, _call, job, self.not_after))
        except cutoff.NotStarted as exc:
            raise cutoff.Cut(exc.at, worked=False) from None

    def run_blocking(self, job: Job) -> JobTiming:
        assert self._pool is not None, "start() first"
        if self.not_after is None:
            return _returned(self._pool.submit(_call, job, None).result())
        try:
            return _returned(self._pool.submit(_call, job, self.not_after).result())
        except cutoff.NotStarted as exc:
            raise cutoff.Cut(exc.at, worked=False) from None


class Thread(_PoolStrategy):
    name = "thread"
    description = "loop.run_in_executor(ThreadPoolExecutor(workers), work)"

    def _create_pool(self) -> concurrent.futures.Executor:
        self._barrier = threading.Barrier(self.workers, timeout=WARM_TIMEOUT_S)
        return concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="wsblock-worker")

    async def close(self) -> None:
        if self._pool is not None:
            # Threads cannot be killed; a running job finishes (its size is
            # bounded) and queued ones are dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _returned(timing: JobTiming) -> JobTiming:
    # The result as the handler receives it: a worker process's arrives
    # already unpickled (carry._delivered); any other is the object itself.
    return dataclasses.replace(timing, result=carry.in_process(timing.result))


_worker_barrier: Any = None
"""A process worker's set-up barrier (set by its initializer)."""

_in_worker_process = False
"""Whether this process is a pool worker (set by its initializer)."""


def _call(job: Job, not_after: float | None) -> JobTiming:
    # What a pool worker runs (module level, so that it pickles). In a
    # worker process the result is wrapped so that its pickling is measured.
    timing = execute(job) if not_after is None else cutoff.execute_before(job, not_after)
    if _in_worker_process:
        timing = dataclasses.replace(timing, result=carry.Carried(timing.result))
    return timing


def _call_after_barrier(job: Job, barrier: threading.Barrier | None) -> JobTiming:
    # The set-up call of one pool worker: wait until every worker has one.
    barrier = barrier if barrier is not None else _worker_barrier
    if barrier is not None:
        barrier.wait()
    return _call(job, None)


def _worker_init(barrier: Any = None) -> None:
    global _worker_barrier, _in_worker_process
    _worker_barrier = barrier
    _in_worker_process = True
    # Workers belong to the server's process group; the server, not the
    # terminal, decides when they end. They die with their parent (the
    # server, or the forkserver that dies with the server), even mid-job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from wsblock.engine.proc import die_with_parent

    die_with_parent(signal.SIGKILL)
    from wsblock.engine.blas import pin_blas_threads

    pin_blas_threads(1)


class Process(_PoolStrategy):
    name = "process"
    description = "loop.run_in_executor(ProcessPoolExecutor(workers), work)"
    out_of_process = True

    def _create_pool(self) -> concurrent.futures.Executor:
        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(["wsblock.engine.tether"])  # dies with the server
        # Inherited by each worker when it starts (a lock cannot be pickled
        # with a task): the set-up calls wait at it.
        barrier = context.Barrier(self.workers, timeout=WARM_TIMEOUT_S)
        return concurrent.futures.ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(barrier,),
        )

    def worker_pids(self) -> list[int]:
        if self._pool is None:
            return []
        processes = getattr(self._pool, "_processes", None) or {}
        return list(processes)

    async def close(self) -> None:
        if self._pool is None:
            return
        pids = self.worker_pids()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        # A worker may be in the middle of a long job; end it by pid rather
        # than wait for it.
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = await asyncio.to_thread(psutil.wait_procs, procs, 3.0)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Inline, Chunked, Thread, Process)
}


def names() -> list[str]:
    """Return the strategy names, in catalogue order."""
    return list(_STRATEGIES)


def has(name: str, trait: str) -> bool:
    """Whether the strategy ``name`` has ``trait`` (``False`` for an unknown name).

    Args:
        name: Strategy name, as a record or tidy row holds it.
        trait: ``chunks``, ``uses_pool`` or ``out_of_process``.
    """
    cls = _STRATEGIES.get(name) if isinstance(name, str) else None
    return bool(getattr(cls, trait)) if cls is not None else False


def get(name: str) -> type[Strategy]:
    """Look a strategy class up by name.

    Raises:
        KeyError: If no strategy has that name.
    """
    return _STRATEGIES[name]


def create(name: str, *, workers: int, start_method: str) -> Strategy:
    """Instantiate a strategy by name.

    Args:
        name: Strategy name.
        workers: Pool size.
        start_method: Process start method.
    """
    return _STRATEGIES[name](workers=workers, start_method=start_method)
