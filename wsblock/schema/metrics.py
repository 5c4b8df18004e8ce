"""Every metric of a cell, declared once.

A :class:`Metric` says where a number lives in the record, what it is called
in the tidy table, its unit and labels, which way is better, how repeats of a
cell are summarised, and where it is shown. The tidy table, the report's
tables, ``wsblock compare``, the asv suite (``benchmarks/``), the asv results
adapter and the notebook all read this list; none keeps a list of its own.
Adding a metric is adding an entry here (see ``docs/extending.md``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping

from wsblock.schema import loopdelay

Direction = Literal["lower", "higher", "none"]
Aggregation = Literal["median", "max", "min"]


@dataclass(frozen=True)
class Metric:
    """One measured number of a cell.

    Attributes:
        column: Its name in the tidy table (snake_case, unit suffix).
        path: Keys leading to it in the record, e.g. ``("loop_lag_ms", "p99")``.
        unit: ``ms``, ``s``, ``share``, ``count``, ``per_s``, ``cores`` or ``MiB``.
        short: Column title in markdown tables (``lag p99 ms``).
        label: Axis label in figures and asv tables (``loop lag p99 (ms)``).
        description: One sentence on what it measures.
        better: ``lower`` or ``higher`` is better; ``none`` for descriptive
            numbers (sample counts, CPU use) that are neither.
        aggregate: How the measured repeats of a cell are summarised.
        missing: The value when a measured record lacks the key (``None``
            means NaN: nothing was recorded); counts that a record omits when
            zero use 0.
        asv: ``module.Class.track_method`` of the asv benchmark that tracks
            it (``benchmarks/<module>.py`` generates the method), or ``None``
            when asv does not.
        table: Column position in the report's per-workload tables (``None``:
            not shown).
        compare: Column position in ``wsblock compare`` (``None``: not shown).
        floor: The metric's resolution: values below it are equal, and a
            spread over repeats must exceed it to count as instability
            (``None``: the unit's, :data:`RESOLUTION`).
        min_ratio: The smallest ratio of medians that ``wsblock compare``
            reports as a change (``None``: the unit's, :data:`MIN_RATIO`).
        derive: For a metric computed from several record keys rather than
            read at one path: the function of the (upgraded) record that
            computes it; ``path`` then names the record section it reads.
    """

    column: str
    path: tuple[str, ...]
    unit: str
    short: str
    label: str
    description: str
    better: Direction = "lower"
    aggregate: Aggregation = "median"
    missing: float | None = None
    asv: str | None = None
    table: int | None = None
    compare: int | None = None
    floor: float | None = None
    min_ratio: float | None = None
    derive: Callable[[Mapping[str, Any]], float] | None = None

    @property
    def resolution(self) -> float:
        """Values below this are equal (see ``floor``)."""
        return self.floor if self.floor is not None else RESOLUTION.get(self.unit, 1e-3)

    @property
    def min_effect(self) -> float:
        """The smallest ratio of medians that is a change (see ``min_ratio``)."""
        return self.min_ratio if self.min_ratio is not None else MIN_RATIO.get(self.unit, 1.1)

    def read(self, record: Mapping[str, Any]) -> float:
        """The metric's value in a measured record, as a float (NaN: nothing recorded)."""
        if self.derive is not None:
            return number(self.derive(record))
        node: Any = record
        for key in self.path:
            if not isinstance(node, Mapping) or key not in node:
                return math.nan if self.missing is None else float(self.missing)
            node = node[key]
        return number(node)

    @property
    def asv_module(self) -> str | None:
        """The module of ``benchmarks/`` whose class tracks it."""
        return self.asv.split(".")[0] if self.asv else None

    @property
    def asv_class(self) -> str | None:
        """The asv benchmark class that tracks it."""
        return self.asv.split(".")[1] if self.asv else None

    @property
    def asv_method(self) -> str | None:
        """The asv ``track_`` method that reports it."""
        return self.asv.split(".")[2] if self.asv else None

    def summarise(self, values: Iterable[Any]) -> float:
        """Summarise the repeats of a cell (NaN values are left out)."""
        finite = [v for v in (number(x) for x in values) if not math.isnan(v)]
        if not finite:
            return math.nan
        if self.aggregate == "max":
            return max(finite)
        if self.aggregate == "min":
            return min(finite)
        return float(statistics.median(finite))


RESOLUTION: dict[str, float] = {"ms": 1.0, "s": 0.1, "share": 0.01, "ratio": 0.01, "count": 1.0, "per_s": 0.1,
                                "cores": 0.01, "MiB": 1.0}
"""Default resolution by unit."""

# Tail latencies of a few-second window move by tens of percent between
# identical runs on a shared machine: below x1.2 a change is not worth a
# reviewer's attention. Throughput, job times and memory are steadier.
MIN_RATIO: dict[str, float] = {"ms": 1.2, "s": 1.2, "share": 1.2, "ratio": 1.1, "count": 1.2, "per_s": 1.1,
                               "cores": 1.1, "MiB": 1.1}
"""Default minimum effect by unit."""


def number(value: Any) -> float:
    """A measurement as a float; NaN for null, booleans and non-numbers."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _m(column: str, path: str, unit: str, short: str, label: str, description: str, **kw: Any) -> Metric:
    return Metric(column, tuple(path.split(".")), unit, short, label, description, **kw)


METRICS: tuple[Metric, ...] = (
    # Survival. The per-code family ``disconnects_<code>`` follows
    # ``first_disconnect_s`` in the tidy table; its members depend on the data.
    _m("disconnects_total", "disconnects.total", "count", "lost", "connections lost",
       "connections that ended abnormally inside the window"),
    _m("disconnect_share", "disconnects.share", "share", "lost", "disconnect share",
       "original connections lost / original connections (0: none lost, 1: all lost)",
       asv="bench_keepalive.Keepalive.track_disconnect_share", compare=1),
    _m("first_disconnect_s", "disconnects.first_s", "s", "first loss s", "first disconnect (s)",
       "seconds from the window start to the first disconnect", better="higher"),
    _m("disconnects_by_client", "disconnects.by_initiator.client", "count", "by client",
       "disconnects started by the client", "disconnects where the client failed the connection first",
       missing=0),
    _m("disconnects_by_server", "disconnects.by_initiator.server", "count", "by server",
       "disconnects started by the server", "disconnects where the server failed the connection first",
       missing=0),
    _m("disconnects_by_none", "disconnects.by_initiator.none", "count", "by neither",
       "disconnects with no initiator", "disconnects where neither side sent a close frame first",
       missing=0),
    _m("connections_opened", "connections.opened_total", "count", "opened", "connections opened",
       "connections open at some time inside the window", better="none"),
    _m("original_connections", "disconnects.original.connections", "count", "originals",
       "original connections", "the first connection of each load slot open inside the window",
       better="none"),
    _m("original_lost", "disconnects.original.lost", "count", "originals lost", "original connections lost",
       "original connections that ended abnormally inside the window"),
    _m("reconnects_opened", "disconnects.reconnects.opened", "count", "reconnects", "reconnects",
       "connections opened to replace lost ones", better="none"),
    _m("cycles_observed", "survival.cycles_observed", "count", "cycles", "keepalive cycles at risk",
       "fewest complete ping_interval + ping_timeout cycles any original connection was at risk for",
       better="none"),
    # Responsiveness. The loop figure first: the one every report, asv and the
    # notebook draw (wsblock/schema/loopdelay.py says why it is not the probe's p99).
    _m("loop_delay_ms", "stalls", "ms", "loop delay ms", "loop delay (ms)",
       "how long the loop kept a waiting task waiting: the longest stall where the watchdog saw one, the "
       "probe's p99 only where the loop never stalled (withheld under 100 probe samples)",
       asv="bench_responsiveness.Responsiveness.track_loop_delay", table=1, floor=0.1,
       derive=loopdelay.read),
    _m("lag_p50_ms", "loop_lag_ms.p50", "ms", "lag p50 ms", "loop lag p50 (ms)",
       "median lateness of a 1 ms sleep in the server's loop", floor=0.1),
    _m("lag_p90_ms", "loop_lag_ms.p90", "ms", "lag p90 ms", "loop lag p90 (ms)",
       "90th percentile of the loop-lag probe", floor=0.1),
    _m("lag_p99_ms", "loop_lag_ms.p99", "ms", "lag p99 ms", "loop lag p99 (ms)",
       "99th percentile of the loop-lag probe", asv="bench_responsiveness.Responsiveness.track_loop_lag_p99",
       table=2, compare=2, floor=0.1),
    _m("lag_p999_ms", "loop_lag_ms.p999", "ms", "lag p99.9 ms", "loop lag p99.9 (ms)",
       "99.9th percentile of the loop-lag probe", floor=0.1),
    _m("lag_max_ms", "loop_lag_ms.max", "ms", "lag max ms", "loop lag max (ms)",
       "largest lateness of the loop-lag probe", floor=0.1),
    _m("lag_samples", "loop_lag_ms.samples", "count", "lag samples", "loop-lag samples",
       "wake-ups of the loop-lag probe inside the window", better="none"),
    _m("ticker_lag_p99_ms", "ticker_lag_ms.p99", "ms", "ticker p99 ms", "100 ms ticker lag p99 (ms)",
       "99th percentile of how late a 100 ms periodic task ran"),
    _m("ticker_lag_max_ms", "ticker_lag_ms.max", "ms", "ticker max ms", "100 ms ticker lag max (ms)",
       "largest lateness of the 100 ms periodic task"),
    _m("ticker_late_ticks", "ticker_lag_ms.late_ticks", "count", "late ticks", "late ticks",
       "ticks of the 100 ms periodic task later than stall_ms"),
    _m("stalls_count", "stalls.count", "count", "stalls", "stalls",
       "loop gaps longer than stall_ms that overlap the window"),
    _m("stall_max_ms", "stalls.max_ms", "ms", "stall max ms", "longest stall (ms)",
       "the longest loop gap, clipped to the window", asv="bench_responsiveness.Responsiveness.track_stall_max"),
    _m("stall_total_ms", "stalls.total_ms", "ms", "stalled ms", "time stalled (ms)",
       "time inside the window spent stalled"),
    _m("stalled_share", "stalls.stalled_share", "share", "stalled", "share of the window stalled",
       "time stalled / window length", asv="bench_responsiveness.Responsiveness.track_stalled_share"),
    _m("stalls_sampled", "stalls.sampled", "count", "stalls sampled", "stalls sampled",
       "stalls the watchdog caught while they lasted", better="none"),
    _m("stalls_per_s", "stalls.per_s", "per_s", "stalls/s", "stalls per second",
       "stalls per second of window"),
    _m("stall_max_whole_ms", "stalls.max_whole_ms", "ms", "stall whole ms", "longest stall, whole (ms)",
       "the longest loop gap, including its parts outside the window"),
    _m("setup_stall_max_ms", "stalls.before_window.setup.longest_ms", "ms", "set-up stall ms",
       "longest set-up stall before the window (ms)",
       "the longest loop gap of the harness's set-up (imports, pools, first calls), before the window "
       "and never charged to the strategy", better="none"),
    _m("io_lag_p50_ms", "io_lag_ms.p50", "ms", "io lag p50 ms", "I/O lag p50 (ms)",
       "median time an echo waited between its send and its handler running"),
    _m("io_lag_p99_ms", "io_lag_ms.p99", "ms", "io lag p99 ms", "I/O lag p99 (ms)",
       "99th percentile of the I/O-side loop lag (null under 100 samples)"),
    _m("io_lag_max_ms", "io_lag_ms.max", "ms", "io lag max ms", "I/O lag max (ms)",
       "largest I/O-side loop lag"),
    _m("io_lag_samples", "io_lag_ms.samples", "count", "io lag samples", "I/O lag samples",
       "echoes timed by the I/O-side lag", better="none"),
    # Service.
    _m("jobs_per_s", "throughput.jobs_per_s", "per_s", "jobs/s", "jobs per second",
       "jobs' worth of work done inside the window (partial jobs in part), per second", better="higher",
       table=5, compare=4),
    _m("echo_per_s", "throughput.echo_per_s", "per_s", "echo/s", "echo replies per second",
       "echo replies received inside the window, per second", better="higher"),
    _m("echo_p50_ms", "echo_latency_ms.p50", "ms", "echo p50 ms", "echo p50 (ms)",
       "median observer echo latency from the scheduled send time"),
    _m("echo_p99_ms", "echo_latency_ms.p99", "ms", "echo p99 ms", "echo p99 (ms)",
       "99th percentile of observer echo latency from the scheduled send time",
       asv="bench_responsiveness.Responsiveness.track_echo_p99", table=4, compare=3),
    _m("echo_max_ms", "echo_latency_ms.max", "ms", "echo max ms", "echo max (ms)",
       "largest observer echo latency"),
    _m("echo_lost", "echo_latency_ms.lost", "count", "echo lost", "echoes lost",
       "echoes on connections that died before the reply"),
    _m("echo_scheduled", "echo_latency_ms.scheduled", "count", "echo scheduled", "echoes scheduled",
       "echoes due inside the window: answered + lost + censored + missed", better="none"),
    _m("echo_censored", "echo_latency_ms.censored", "count", "echo censored", "echoes censored",
       "echoes unanswered at the window end"),
    _m("echo_missed", "echo_latency_ms.missed", "count", "echo missed", "echoes missed",
       "echoes scheduled while the observer was reconnecting"),
    _m("echo_samples", "echo_latency_ms.samples", "count", "echo samples", "echo samples",
       "echoes behind the echo latency percentiles", better="none"),
    _m("job_ms_p50", "job_ms.p50", "ms", "job ms p50", "job time p50 (ms)",
       "median wall time of one job, measured where it ran", asv="bench_work.JobTime.track_job_ms", table=6,
       min_ratio=1.1),
    _m("job_ms_max", "job_ms.max", "ms", "job ms max", "job time max (ms)",
       "largest wall time of one job", min_ratio=1.1),
    _m("job_ms_samples", "job_ms.samples", "count", "job samples", "jobs timed",
       "jobs behind the job time statistics, censored ones included", better="none"),
    _m("job_ms_censored", "job_ms.n_censored", "count", "jobs censored", "jobs censored",
       "jobs still running at the stop, timed for as long as they had run", better="none"),
    _m("jobs_in_window", "throughput.jobs_in_window", "count", "jobs in window", "jobs' worth of work",
       "jobs' worth of work done inside the window, partial jobs counted in part", better="higher"),
    _m("work_ratio_to_target", "work.ratio_to_target", "ratio", "job/target", "job time / target",
       "measured job time over the calibrated target, where the job ran alone", better="none"),
    _m("job_cpu_ms_p50", "job_cpu_ms.p50", "ms", "job cpu ms p50", "job CPU time p50 (ms)",
       "median CPU time of the thread that ran a job", better="none"),
    _m("job_latency_p50_ms", "job_latency_ms.p50", "ms", "job rtt p50 ms", "job round trip p50 (ms)",
       "median client round trip per job, queueing included"),
    _m("job_latency_p99_ms", "job_latency_ms.p99", "ms", "job rtt p99 ms", "job round trip p99 (ms)",
       "99th percentile of the client round trip per job"),
    _m("result_transfer_p50_ms", "result.transfer_ms.p50", "ms", "result unpickle p50 ms",
       "result unpickling in the server p50 (ms)",
       "median time the server spent unpickling a job's result from a worker process, holding the GIL "
       "(null when results stay in the server)", floor=0.1),
    _m("result_transfer_max_ms", "result.transfer_ms.max", "ms", "result unpickle max ms",
       "result unpickling in the server max (ms)",
       "longest time the server spent unpickling a job's result from a worker process", floor=0.1),
    _m("result_pickled_bytes_max", "result.pickled_bytes_max", "count", "result bytes",
       "largest pickled result (bytes)",
       "pickled size of the largest result a worker process sent back", better="none"),
    # Resources.
    _m("server_cpu_util", "resources.server.cpu_util", "cores", "server cores", "server CPU (cores)",
       "CPU used by the server process over the window", better="none"),
    _m("workers_cpu_util", "resources.server.workers_cpu_util", "cores", "worker cores",
       "pool workers CPU (cores)", "CPU used by the server's child processes (pool workers)",
       better="none"),
    _m("load_cpu_util", "resources.load_cpu_util", "cores", "load cores", "load CPU (cores)",
       "CPU used by the load process over the window", better="none"),
    _m("machine_busy_cores", "resources.machine.busy_cores", "cores", "busy cores", "busy cores",
       "cores busy machine-wide over the window (close to the CPU count: oversubscribed)",
       better="none"),
    _m("machine_niced_cores", "resources.machine.niced_cores", "cores", "niced cores", "lower-priority cores",
       "part of the busy cores spent in lower-priority (niced) processes, which yield to the cell",
       better="none"),
    _m("window_s", "window.duration_s", "s", "window s", "window (s)",
       "length of the measurement window (sized or given)", better="none"),
    _m("load_offered_per_s", "load.sending.offered_per_s", "per_s", "offered/s", "echoes offered per second",
       "echoes the load was due to send inside the window, per second", better="none"),
    _m("load_achieved_per_s", "load.sending.achieved_per_s", "per_s", "sent/s", "echoes sent per second",
       "echoes the load did send inside the window, per second", better="higher"),
    _m("foreign_connections", "server.foreign.connections", "count", "foreign", "foreign connections",
       "connections without the load's token (kept out of every measurement)", missing=0),
    _m("handler_errors", "server.handler_errors.total", "count", "handler errors", "handler errors",
       "messages the handler could not serve: exceptions and malformed input", missing=0),
    _m("server_peak_rss_mib", "resources.server.peak_rss_mib", "MiB", "server MiB", "server peak RSS (MiB)",
       "largest resident memory of the server process seen over the window", aggregate="max",
       asv="bench_work.Memory.track_server_peak_rss", table=7),
)
"""Every metric, in the order of the tidy table's columns."""



@dataclass(frozen=True)
class Label:
    """A word or flag of a cell that qualifies its numbers (not a number itself).

    Attributes:
        column: Its name in the tidy table.
        path: Keys leading to it in the record.
        description: One sentence on what it says.
    """

    column: str
    path: tuple[str, ...]
    description: str

    def read(self, record: Mapping[str, Any]) -> Any:
        """The value in a record; ``None`` when absent. A list of warnings
        becomes its codes joined by commas (empty: no warning)."""
        node: Any = record
        for key in self.path:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        if isinstance(node, list):
            return ",".join(str(w.get("code")) for w in node if isinstance(w, Mapping))
        return node


LABELS: tuple[Label, ...] = (
    Label("verdict", ("survival", "verdict"),
          "lost, kept, inconclusive (the window could not show it) or not_applicable (no keepalive)"),
    Label("warnings", ("warnings",), "codes of the record's warnings, comma-separated"),
    Label("echo_lower_bound", ("echo_latency_ms", "lower_bound"),
          "true when echoes were lost, censored or missed: echo percentiles are lower bounds"),
    Label("job_ms_lower_bound", ("job_ms", "lower_bound"),
          "true when jobs were still running at the stop: job time percentiles are lower bounds"),
    Label("stalls_primary", ("stalls", "primary"),
          "true when the stall figures, not the probe's percentiles, are the loop measure to read"),
    Label("share_basis", ("disconnects", "share_basis"),
          "what disconnect_share counts: original_connections, or all_connections in older records"),
)
"""Qualifiers of a cell's numbers, in the order of the tidy table's columns."""

LABEL_COLUMNS: tuple[str, ...] = tuple(label.column for label in LABELS)


def read_labels(record: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared label of a record, by column."""
    return {label.column: label.read(record) for label in LABELS}


BY_COLUMN: dict[str, Metric] = {m.column: m for m in METRICS}

COLUMNS: tuple[str, ...] = tuple(m.column for m in METRICS)

CODES_AFTER = "first_disconnect_s"
"""The ``disconnects_<code>`` columns follow this one in the tidy table."""


def get(column: str) -> Metric:
    """The metric named ``column``.

    Raises:
        KeyError: If no metric has that column.
    """
    return BY_COLUMN[column]


def asv_tracked() -> tuple[Metric, ...]:
    """The metrics the asv suite tracks, in declaration order."""
    return tuple(m for m in METRICS if m.asv)


def in_table() -> tuple[Metric, ...]:
    """The metrics of the report's per-workload tables, in column order."""
    return tuple(sorted((m for m in METRICS if m.table), key=lambda m: m.table or 0))


def in_compare() -> tuple[Metric, ...]:
    """The metrics ``wsblock compare`` shows, in column order."""
    return tuple(sorted((m for m in METRICS if m.compare), key=lambda m: m.compare or 0))


def read_all(record: Mapping[str, Any]) -> dict[str, float]:
    """Every declared metric of a measured record, by column."""
    return {m.column: m.read(record) for m in METRICS}
