"""Windows sized to the question a cell asks.

When a cell gives no ``duration``, the window is made long enough for two
things, within the cell's ``max_window`` (default :data:`MAX_WINDOW_S`,
10 minutes; at most :data:`LONGEST_MAX_WINDOW_S`):

* **a keepalive verdict**: every original connection at risk for
  ``min_cycles`` complete keepalive cycles (see :mod:`wsblock.engine.exposure`).
  Connections open at the start of the warm-up, plus a margin for the
  handshake (a loop blocked by a job delays it by up to one job), and are at
  risk from their first ping, ``ping_interval`` later;
* **a throughput and job-time sample**: at least :data:`JOBS_PER_CONNECTION`
  jobs per job connection, plus one for the job already running when the
  window opens. A connection's jobs come one after another, and jobs of
  different connections share what can run them: the event loop (``inline``,
  ``chunked``: one job at a time), the GIL (``thread``: one at a time for
  work that holds it), or the cores (``process``, and threads whose work
  releases the GIL). Contention makes jobs slower than the calibration says,
  so the period is stretched by :data:`CONTENTION_FACTOR`.

An explicit ``duration`` is obeyed; the plan then says which of the two the
window is too short for, and the record says so too.

The keepalive part grows with the keepalive cycle: at websockets' defaults
(``ping_interval`` 20 s, ``ping_timeout`` 20 s) three cycles take two
minutes and more, so the default maximum is set well above that; a cell
that needs more is cut to its maximum, says ``bounded``, and cannot say
``kept`` (see :func:`describe` for the line shown before a run starts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from wsblock.durations import format_duration
from wsblock.schema.settings import LONGEST_MAX_WINDOW_S, MAX_WINDOW_S, MIN_WINDOW_S

JOBS_PER_CONNECTION = 5
"""Completed jobs each job connection should get inside an automatic window."""

CONTENTION_FACTOR = {"on_loop": 1.25, "otherwise": 1.5}
"""Slack on the calibrated job length: 1.25 for a job run whole on the loop, 1.5 where steps, threads or workers share the loop, the GIL or the cores; generous, since jobs that
share the GIL or the cores take longer than on an idle machine."""

HANDSHAKE_MARGIN_S = 0.5
"""Time allowed for the load's connections to open."""


@dataclass(frozen=True)
class WindowPlan:
    """The chosen window and what it can observe.

    Attributes:
        duration_s: The window length used.
        requested_s: The cell's ``duration``, or ``None`` when sized here.
        keepalive_s: Window needed for a keepalive verdict (``None`` if no
            keepalive can fail).
        jobs_s: Window needed for the job sample (``None`` without job
            connections).
        needed_s: The larger of the two (and :data:`MIN_WINDOW_S`).
        bounded: Whether ``max_s`` cut an automatic window short.
        keepalive_observable: Whether ``duration_s`` covers ``keepalive_s``.
        jobs_observable: Whether ``duration_s`` covers ``jobs_s``.
        job_period_s: Expected time between a job connection's replies.
        max_s: The longest window this plan could size (the cell's
            ``max_window``).
    """

    duration_s: float
    requested_s: float | None
    keepalive_s: float | None
    jobs_s: float | None
    needed_s: float
    bounded: bool
    keepalive_observable: bool
    jobs_observable: bool
    job_period_s: float | None
    max_s: float = MAX_WINDOW_S

    def to_dict(self) -> dict[str, Any]:
        """The record's ``window`` section."""
        out = asdict(self)
        out["sized"] = self.requested_s is None
        return out


def job_period_s(*, strategy: str, job_s: float, job_connections: int, workers: int,
                 cpus: int, releases_gil: bool) -> float:
    """Expected seconds between two replies on one job connection.

    Args:
        strategy: Strategy name.
        job_s: One job's calibrated length.
        job_connections: Connections that each keep one job in flight.
        workers: Pool size.
        cpus: Cores of the machine.
        releases_gil: Whether the work runs without the GIL (threads of it
            can run at once).
    """
    from wsblock.engine import strategies  # when first asked: the config imports this module

    if not strategies.has(strategy, "uses_pool"):
        parallel = 1  # every job runs on the loop
    elif not strategies.has(strategy, "out_of_process"):
        parallel = min(workers, cpus) if releases_gil else 1  # threads share the GIL
    else:
        parallel = min(workers, cpus)
    parallel = max(1, min(parallel, job_connections))
    rounds = math.ceil(job_connections / parallel)
    # A job run whole on the loop (inline) competes with nothing of its own;
    # steps, threads and workers share the loop, the GIL or the cores.
    whole_on_loop = not strategies.has(strategy, "uses_pool") and not strategies.has(strategy, "chunks")
    return job_s * rounds * CONTENTION_FACTOR["on_loop" if whole_on_loop else "otherwise"]


def plan(
    *,
    requested_s: float | None,
    warmup_s: float,
    strategy: str,
    job_s: float,
    job_connections: int,
    workers: int,
    cpus: int,
    releases_gil: bool,
    cycle_s: float | None,
    ping_interval: float | None,
    min_cycles: int,
    max_s: float = MAX_WINDOW_S,
) -> WindowPlan:
    """Choose the window (or check a given one).

    Args:
        requested_s: The cell's ``duration``; ``None`` to size it here.
        warmup_s: Warm-up before the window.
        strategy: Strategy name.
        job_s: Calibrated job length, seconds.
        job_connections: Job connections.
        workers: Pool size.
        cpus: Machine cores.
        releases_gil: Whether the work runs without the GIL.
        cycle_s: Keepalive cycle, or ``None`` if no keepalive can fail.
        ping_interval: Seconds to the first ping.
        min_cycles: Complete cycles needed for a verdict.
        max_s: Longest window sized here (the cell's ``max_window``); an
            explicit ``requested_s`` is obeyed whatever it is.
    """
    from wsblock.engine import strategies

    keepalive_s = None
    if cycle_s is not None and ping_interval is not None:
        blocks_loop = not strategies.has(strategy, "uses_pool")
        opened = HANDSHAKE_MARGIN_S + (job_s if blocks_loop else 0.0)
        lead = max(0.0, opened + ping_interval - warmup_s)
        keepalive_s = round(lead + min_cycles * cycle_s + 0.25 * cycle_s, 3)
    period = None
    jobs_s = None
    if job_connections > 0:
        period = job_period_s(strategy=strategy, job_s=job_s, job_connections=job_connections,
                              workers=workers, cpus=cpus, releases_gil=releases_gil)
        jobs_s = round((JOBS_PER_CONNECTION + 1) * period, 3)
    needed = max(MIN_WINDOW_S, keepalive_s or 0.0, jobs_s or 0.0)
    if requested_s is None:
        duration = min(max_s, math.ceil(needed))
        bounded = needed > max_s
    else:
        duration, bounded = float(requested_s), False
    return WindowPlan(
        duration_s=float(duration),
        requested_s=requested_s,
        keepalive_s=keepalive_s,
        jobs_s=jobs_s,
        needed_s=round(needed, 3),
        bounded=bounded,
        keepalive_observable=keepalive_s is None or duration >= keepalive_s,
        jobs_observable=jobs_s is None or duration >= jobs_s,
        job_period_s=None if period is None else round(period, 3),
        max_s=float(max_s),
    )


def describe(window: WindowPlan, *, warmup_s: float) -> str:
    """One line for people, shown before a cell runs: its window, why, and its time.

    Names what the window was sized for, the maximum that cut it (and that
    ``kept`` is then out of reach), and the warm-up plus window in minutes.

    Args:
        window: The cell's plan.
        warmup_s: The cell's warm-up.
    """
    needs = []
    if window.keepalive_s is not None:
        needs.append(f"a keepalive verdict needs {window.keepalive_s:g} s")
    if window.jobs_s is not None:
        needs.append(f"{JOBS_PER_CONNECTION} jobs per job connection {window.jobs_s:g} s")
    why = "; ".join(needs)
    if window.requested_s is not None:
        head = f"window {window.duration_s:g} s as given"
        if not window.keepalive_observable:
            why += "; too short for a keepalive verdict, so at best inconclusive"
    elif window.bounded:
        head = f"window cut to the maximum of {window.max_s:g} s"
        short = "it cannot say kept" if not window.keepalive_observable else "its job sample is short"
        why += (f"; {short}: --max-window (max_window in a matrix) {math.ceil(window.needed_s):g} "
                f"would cover it")
    else:
        head = f"window sized to {window.duration_s:g} s (at most {window.max_s:g} s)"
    total = format_duration(warmup_s + window.duration_s)
    return f"{head}{f': {why}' if why else ''}; with the {warmup_s:g} s warm-up about {total} of measurement"
