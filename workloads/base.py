"""The interface every workload implements, and the job that runs one.

A workload is *fixed work*: a number of units (iterations, matrix products,
rows, milliseconds of blocking wait, elements) chosen before the run from a
per-machine calibration. It is never "spin until a deadline": under GIL
contention a deadline-based loop would do less work and hide the effect the
suite measures.

Work is expressed as a generator of steps. ``inline``, ``thread`` and
``process`` strategies exhaust the generator in one go; the ``chunked``
strategy yields to the event loop between steps. One generator therefore
serves every strategy and the work done is identical across them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping


@dataclass(frozen=True)
class ParamSpec:
    """A workload parameter that clients may set, with its bounds.

    Attributes:
        name: Key in the job's ``params`` mapping.
        default: Value used when the job does not set it.
        minimum: Smallest accepted value (inclusive).
        maximum: Largest accepted value (inclusive).
        help: One line for ``wsblock list``.
    """

    name: str
    default: int
    minimum: int
    maximum: int
    help: str


@dataclass(frozen=True)
class Job:
    """One unit of requested work, small and picklable for process pools.

    Attributes:
        workload: Registered workload name.
        units: Amount of fixed work, in the workload's unit.
        chunk_units: Units per step for workloads without a natural chunk.
        params: Workload parameters, already validated (integers for the
            built-in workloads; short scalars for a user's function).
        data_dir: Directory holding generated input data (never chosen by a
            client: the server sets it).
    """

    workload: str
    units: int
    chunk_units: int
    params: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str = ""


@dataclass(frozen=True)
class JobTiming:
    """How long a job's work took, measured where it ran.

    Attributes:
        wall_ms: Wall-clock time spent executing steps (time yielded to the
            event loop between chunks is excluded).
        cpu_ms: CPU time of the executing thread over the same steps.
        steps: Number of steps executed.
        result: What the work returned: a user's function's return value
            (a generator function's ``return`` value), ``None`` for the
            built-in workloads. It is handed back to the server's handler
            as a real server's result would be (see
            :mod:`wsblock.engine.carry`).
    """

    wall_ms: float
    cpu_ms: float
    steps: int
    result: Any = field(default=None, repr=False, compare=False)


class Workload:
    """Base class of workloads; subclasses set the class attributes.

    Attributes:
        name: Registry name, used on the command line and in records.
        description: One line for ``wsblock list``.
        gil: How the work treats the GIL, in words.
        unit: What one unit of work is.
        chunkable: Whether the work can be split into steps that return to
            the caller; ``False`` means a single call that cannot yield.
        uses_cpu: Whether a job keeps a core busy (``False`` for work that
            waits, which needs no core of its own when cells run side by side).
        max_units: Largest job a server accepts (guards against abuse).
        calibration_start: Units of the first calibration probe.
        version: Bumped when the work changes, which invalidates calibrations.
        params: Parameters clients may set.
        order: Place in the catalogue (listings, tables, figures): by
            ``order``, then by name.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    gil: ClassVar[str]
    unit: ClassVar[str]
    chunkable: ClassVar[bool] = True
    uses_cpu: ClassVar[bool] = True
    max_units: ClassVar[int]
    calibration_start: ClassVar[int]
    version: ClassVar[int] = 1
    params: ClassVar[tuple[ParamSpec, ...]] = ()
    order: ClassVar[int] = 1000

    def prepare(self, units: int, params: Mapping[str, int], data_dir: str) -> None:
        """Create any input data the job needs; run before the window.

        Args:
            units: Size of the jobs that will run.
            params: Validated workload parameters.
            data_dir: Directory for generated data.
        """

    def steps(self, job: Job) -> Iterator[None]:
        """Do the job's work, yielding between steps.

        Args:
            job: The job to execute.

        Yields:
            ``None`` after each step.

        Returns:
            The work's result (a user's function's return value), which
            :func:`execute` hands back; ``None`` for built-in workloads.
        """
        raise NotImplementedError

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, int]:
        """Validate client parameters and fill in defaults.

        Args:
            given: Parameters as received (untrusted).

        Returns:
            Every declared parameter with a validated integer value.

        Raises:
            ValueError: On an unknown key or an out-of-range value.
        """
        known = {spec.name: spec for spec in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter for {self.name}: {', '.join(unknown)}")
        resolved: dict[str, int] = {}
        for spec in self.params:
            value = given.get(spec.name, spec.default)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{spec.name} must be an integer")
            if not spec.minimum <= value <= spec.maximum:
                raise ValueError(
                    f"{spec.name} must be between {spec.minimum} and {spec.maximum}"
                )
            resolved[spec.name] = value
        return resolved


def execute(job: Job) -> JobTiming:
    """Run a job to completion in the calling thread.

    This is the function thread and process pools run; it is module level so
    that it pickles by reference.

    Args:
        job: The job to execute.

    Returns:
        Wall and CPU time of the work, and what it returned.
    """
    from workloads import get

    workload = get(job.workload)
    wall0 = time.perf_counter()
    cpu0 = time.thread_time()
    count = 0
    steps = workload.steps(job)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            result = stop.value
            break
        count += 1
    return JobTiming(
        wall_ms=(time.perf_counter() - wall0) * 1000.0,
        cpu_ms=(time.thread_time() - cpu0) * 1000.0,
        steps=count,
        result=result,
    )
