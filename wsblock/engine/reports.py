"""Typed reports that cross the process boundary back: server -> runner, load -> runner.

The mirror of :mod:`wsblock.engine.process_config`: the server writes its
measurements of the window as a JSON file, the load its results, and the
runner reads each back into a :class:`ServerReport` or a :class:`LoadReport`,
checking every field's type on the way (the same checks as the configs).
A file of the wrong shape (a stale module, a server that writes another
key) is then a harness error that names the field, not a ``KeyError`` in
the middle of assembling the record.

Sections the record carries as they are (a latency summary, the stalls, the
result's types) stay plain JSON objects here: their keys are the record's
(``docs/record.md``) and :mod:`wsblock.schema.record` checks them there.
Numbers are ``int | float`` where a counter or a rounded value may be
either, so reading a report never turns a ``0`` into a ``0.0`` in the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from wsblock.engine.process_config import ConfigError, build_checked
from wsblock.errors import HarnessError

R = TypeVar("R", bound="_Report")

Number = int | float


class _Report:
    """Shared JSON round trip with type checks for the dataclasses below."""

    @classmethod
    def from_dict(cls: type[R], data: Any, *, source: str) -> R:
        """Build the report from parsed JSON, checking every field.

        Args:
            data: The parsed file.
            source: Who wrote it, for the error (``"the server"``).

        Raises:
            HarnessError: Naming the first missing, unknown or mistyped field.
        """
        try:
            return build_checked(cls, data)  # type: ignore[no-any-return]
        except ConfigError as exc:
            raise HarnessError(f"{source} wrote measurements of the wrong shape: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, keys in the order of the fields."""
        return asdict(self)  # type: ignore[call-overload,no-any-return]


# --- the server ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerWork(_Report):
    """The load's jobs as the server counted them inside the window (``throughput``)."""

    jobs_in_window: Number
    completed_in_window: int
    partial_jobs: int
    running_at_end: int
    estimated_jobs: Number


@dataclass(frozen=True)
class Tally(_Report):
    """A count and its breakdown (``server.handler_errors.bad_input``)."""

    total: int
    by_kind: dict[str, int]


@dataclass(frozen=True)
class Exceptions(_Report):
    """Handler exceptions, by type (``server.handler_errors.exceptions``)."""

    total: int
    by_type: dict[str, int]


@dataclass(frozen=True)
class ServerReport(_Report):
    """The server's measurements of the window: its stats file.

    Both servers write it through ``CellServer.measurements``; the runner
    adds the CPU it read from outside to ``resources`` before checking it.
    Each section is named after the record key it fills
    (:func:`wsblock.engine.assemble.build`).
    """

    connections_opened: int
    disconnects: list[dict[str, Any]]
    jobs_done: int
    work: ServerWork
    job_ms: dict[str, Any]
    job_cpu_ms: dict[str, Any]
    echoes: int
    io_lag_ms: dict[str, Any]
    request_errors: int
    protocol_closes: int
    bad_input: Tally
    handler_errors: Exceptions
    foreign: dict[str, int]
    loop_lag_ms: dict[str, Any]
    stalls: dict[str, Any]
    resources: dict[str, Any]
    blas: Any
    switch_interval_s: float
    start_method: str | None
    # Not written by every server the runner can start (the self-test's).
    result: dict[str, Any] | None = None
    setup: dict[str, Any] | None = None
    ticker_lag_ms: dict[str, Any] | None = None
    event_loop: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None


# --- the load ------------------------------------------------------------------


@dataclass(frozen=True)
class Connections(_Report):
    """The load's connections: opened and lost inside the window, by kind."""

    opened: dict[str, int]
    lost: dict[str, int]
    lost_before_window: int = 0


@dataclass(frozen=True)
class Echoes(_Report):
    """Every echo scheduled inside the window, and what became of it."""

    scheduled: int
    answered: int
    lost: int
    censored: int
    unsent: int
    missed: int


@dataclass(frozen=True)
class Sending(_Report):
    """How well the load kept its own schedule (the record's ``load.sending``)."""

    offered_per_s: Number
    achieved_per_s: Number
    lateness_ms: dict[str, Any]
    summarized_late_s: Number


@dataclass(frozen=True)
class LoadReport(_Report):
    """The load process's results of the window: its results file.

    Attributes:
        lifetimes: Each connection (``exposure.Lifetime`` as a dict).
        disconnects: Each abnormal close inside the window (``t``, ``kind``,
            ``code``, ``reason``, ``initiator``).
        job_errors: Error replies to the load's jobs (the server refused
            them); ``last_error`` the last one.
        stopped_early: The load was told to stop before the window's end.
    """

    connections: Connections
    lifetimes: list[dict[str, Any]]
    connect_failures: int
    disconnects: list[dict[str, Any]]
    jobs_done: int
    job_errors: int
    last_error: str | None
    job_latency_ms: dict[str, Any]
    echoes: int
    echo: Echoes
    echo_latency_ms: dict[str, Any]
    sending: Sending
    cpu_s: Number
    stopped_early: bool = False
