"""Every setting of a cell, and the rules between cell parameters, declared once.

A *setting* is a cell parameter that is not an axis (:mod:`wsblock.schema.axes`):
shared by the cells of a matrix and named in a cell id only when it differs
from its default. A :class:`Setting` gives its name, type, default, limits,
unit, a one-line help, its check, and how the command line and a matrix file
spell it. :class:`wsblock.engine.config.CellConfig` makes one field of each
(:func:`setting`) and validates it with its check; ``wsblock.matrix.spec``
reads the matrix keys from :data:`SETTINGS`; the command line builds its
options from them.

A :class:`Rule` refuses a combination of values that each check alone lets
through (``ping_timeout`` without pings). Cell validation runs every rule, so
a matrix file, a ``--cell`` file, ``advise`` and ``wsblock run`` refuse the
same input with the same message; each caller names the parameters as its
input does (``ping_timeout`` in a file, ``--ping-timeout`` on the command line).

This module imports nothing of the engine.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping

from wsblock.errors import UsageError
from wsblock.schema.axis import within

MAX_CONNECTIONS = 256
"""Most job connections, and most observers, of one cell."""

MAX_WORKERS = 64
"""Largest thread or process pool, given or derived from the job connections."""

MAX_WINDOW_S = 600.0
"""Longest window chosen automatically unless the cell's ``max_window`` says
otherwise, in seconds (10 minutes: three keepalive cycles at websockets'
defaults of 20 s / 20 s, and at 20 s / 60 s, fit with the first ping's lead)."""

LONGEST_MAX_WINDOW_S = 3600.0
"""Largest ``max_window`` a cell may set (one hour)."""

MIN_WINDOW_S = 3.0
"""Shortest window chosen automatically (enough probe and echo samples)."""


def default_start_method() -> str:
    """Return the process start method used when none is given.

    ``forkserver`` on Linux (forking a process that runs threads, as the
    server does, is unsafe), ``spawn`` elsewhere.
    """
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


# Checks: a value of a cell field, refused with a message that names it.
# Each prints, with str(), what it accepts (for the documentation).

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class FromZero:
    """A check: a number from 0 to ``high`` inclusive (``unit``: its word in the message)."""

    high: float
    unit: str

    def __call__(self, name: str, value: Any) -> None:
        if not _finite(value) or not 0 <= value <= self.high:
            raise UsageError(f"{name} must be from 0 to {self.high:g} {self.unit}, got {value!r}")

    def __str__(self) -> str:
        return f"0 to {self.high:g}"


@dataclass(frozen=True)
class Integer:
    """A check: an integer from ``low`` to ``high`` inclusive, or one of ``allow``."""

    low: int
    high: int
    allow: tuple[Any, ...] = ()

    def __call__(self, name: str, value: Any) -> None:
        if any(value is a for a in self.allow):
            return
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise UsageError(f"{name} must be an integer from {self.low} to {self.high}, got {value!r}")

    def __str__(self) -> str:
        return f"integer {self.low} to {self.high}"


class _Address:
    """A check: a non-empty address to bind."""

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{name} must be an address such as 127.0.0.1, got {value!r}")

    def __str__(self) -> str:
        return "an address"


class _StartMethod:
    """A check: a ``multiprocessing`` start method this platform has."""

    def __call__(self, name: str, value: Any) -> None:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        if not isinstance(value, str) or value not in methods:
            raise UsageError(f"unknown start method {value!r} (choose from {', '.join(methods)})")

    def __str__(self) -> str:
        return "fork, forkserver, spawn (as the platform has them)"


class _Table:
    """A check: a table (``dict``); what it holds is the workload's to check."""

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise UsageError(f"{name} must be an object, got {value!r}")

    def __str__(self) -> str:
        return "a table"


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting of a cell.

    Attributes:
        name: The cell parameter (``CellConfig`` field, record ``params``
            key, matrix key).
        kind: Its Python type, as the ``CellConfig`` field is annotated.
        default: The value when not given; for a value computed when asked
            (the platform's start method), ``default_factory`` instead.
        default_factory: Computes the default (``None``: ``default`` is it).
        unit: ``s``, ``ms``, ``count`` or ``""`` (not a quantity).
        help: What it is, one line (documentation and ``--help``).
        check: Refuses a bad value: ``(name, value)``, raising
            :class:`~wsblock.errors.UsageError`.
        low: Least value (for numbers; for a positive float, the least one
            accepted above zero), or ``None``.
        high: Greatest value (for numbers), or ``None``.
        default_note: What ``--help`` says of the default when the value
            alone does not say it (``sized to ...``); ``None``: ``default
            <value>``.
        matrix: Whether a matrix file may set it (a scalar key).
        cli_option: Its option of ``wsblock run`` (``""``: none).
        metavar: The option's value in ``--help`` (``None``: argparse's).
        backfill: A record without it ran at its default (it was added after
            records existed, with the default every cell had): reading a
            record fills it in, so such records stay the same cell.
    """

    name: str
    kind: Any
    default: Any = None
    default_factory: Callable[[], Any] | None = None
    unit: str
    help: str
    check: Callable[[str, Any], None]
    low: float | None = None
    high: float | None = None
    default_note: str | None = None
    matrix: bool = True
    cli_option: str = ""
    metavar: str | None = None
    backfill: bool = False

    def default_value(self) -> Any:
        """The default, computed when it has a factory."""
        return self.default_factory() if self.default_factory is not None else self.default

    @property
    def scalar(self) -> type:
        """The type of one value in a matrix file or on the command line (``float`` for ``float | None``)."""
        for kind in (bool, int, float, str, dict):
            if kind is self.kind or kind in getattr(self.kind, "__args__", ()):
                return kind
        raise TypeError(f"setting {self.name}: no scalar type in {self.kind!r}")

    @property
    def from_text(self) -> Callable[[str], Any] | None:
        """The option's text to a value (argparse ``type=``): ``float``, ``int``, or ``None`` for text."""
        return {float: float, int: int}.get(self.scalar)

    def cli_help(self) -> str:
        """The option's ``--help``: the help, then the default."""
        note = self.default_note if self.default_note is not None else f"default {_value_text(self.default_value())}"
        return f"{self.help} ({note})"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


SETTING_KEY = "wsblock.setting"
"""The key of a ``CellConfig`` field's metadata that holds its :class:`Setting`."""


def _positive(low: float, high: float, *, allow_none: bool = False) -> Callable[[str, Any], None]:
    return within(low, high, allow=(None,) if allow_none else ())


SETTINGS: tuple[Setting, ...] = (
    Setting(name="close_timeout", kind=float, default=10.0, unit="s", help="closing handshake timeout",
            check=_positive(0.0, 600.0), low=0.0, high=600.0, cli_option="--close-timeout", metavar="S"),
    Setting(name="duration", kind=float | None, default=None, unit="s", help="measurement window in seconds",
            check=_positive(0.0, 3600.0, allow_none=True), low=0.0, high=3600.0,
            default_note="default: sized to what the cell must observe, at most --max-window",
            cli_option="--duration", metavar="S"),
    Setting(name="max_window", kind=float, default=MAX_WINDOW_S, unit="s",
            help=f"longest window sized to what the cell must observe, {MIN_WINDOW_S:g} to "
                 f"{LONGEST_MAX_WINDOW_S:g} s; a cell that needs more is cut to it and cannot say kept",
            check=_positive(MIN_WINDOW_S, LONGEST_MAX_WINDOW_S), low=MIN_WINDOW_S, high=LONGEST_MAX_WINDOW_S,
            default_note=f"default {MAX_WINDOW_S:g}: 10 minutes", cli_option="--max-window", metavar="S"),
    Setting(name="warmup", kind=float, default=2.0, unit="s", help="load before the window opens, in seconds",
            check=FromZero(600.0, "seconds"), low=0.0, high=600.0, cli_option="--warmup", metavar="S"),
    Setting(name="job_connections", kind=int, default=2, unit="count",
            help="connections with one job in flight each", check=Integer(0, MAX_CONNECTIONS),
            low=0, high=MAX_CONNECTIONS, cli_option="--job-connections", metavar="N"),
    Setting(name="observers", kind=int, default=4, unit="count", help="echo connections on a fixed schedule",
            check=Integer(0, MAX_CONNECTIONS), low=0, high=MAX_CONNECTIONS, cli_option="--observers",
            metavar="M"),
    Setting(name="echo_interval_ms", kind=float, default=100.0, unit="ms", help="each observer's send period",
            check=_positive(1.0, 60_000.0), low=1.0, high=60_000.0, cli_option="--echo-interval-ms",
            metavar="MS"),
    Setting(name="workers", kind=int | None, default=None, unit="count", help="thread/process pool size",
            check=Integer(1, MAX_WORKERS, allow=(None,)), low=1, high=MAX_WORKERS,
            default_note="default: one per job connection", cli_option="--workers", metavar="N"),
    Setting(name="chunk_ms", kind=float, default=10.0, unit="ms", help="step length of the chunked strategy",
            check=_positive(0.1, 60_000.0), low=0.1, high=60_000.0, cli_option="--chunk-ms", metavar="MS"),
    Setting(name="start_method", kind=str, default_factory=default_start_method, unit="",
            help="process pool start method", check=_StartMethod(), cli_option="--start-method"),
    Setting(name="workload_params", kind=dict[str, bool | int | float | str], default_factory=dict, unit="",
            help="workload parameters, or keyword arguments of a user's function", check=_Table(),
            matrix=False),
    Setting(name="host", kind=str, default="127.0.0.1", unit="", help="server bind address", check=_Address(),
            matrix=False, cli_option="--host"),
    Setting(name="port", kind=int, default=0, unit="", help="server port", check=Integer(0, 65535),
            low=0, high=65535, default_note="default 0: any free port", matrix=False, cli_option="--port"),
    Setting(name="probe_interval_ms", kind=float, default=1.0, unit="ms", help="period of the in-loop lag probe",
            check=_positive(0.1, 1000.0), low=0.1, high=1000.0, matrix=False),
    Setting(name="stall_ms", kind=float, default=50.0, unit="ms", help="loop gap that counts as a stall",
            check=_positive(1.0, 60_000.0), low=1.0, high=60_000.0, cli_option="--stall-ms", metavar="MS"),
    Setting(name="min_cycles", kind=int, default=3, unit="count",
            help="keepalive cycles each connection must be at risk before a cell says it kept them",
            check=Integer(1, 100), low=1, high=100, cli_option="--min-cycles", metavar="N"),
    Setting(name="job_gap_ms", kind=float, default=0.0, unit="ms",
            help="pause of each job connection between a job's reply and its next job (0: back to back)",
            check=FromZero(60_000.0, "ms"), low=0.0, high=60_000.0, cli_option="--job-gap-ms", metavar="MS",
            backfill=True),
)
"""Every setting, in the order of the ``CellConfig`` fields (the order a
standalone record's id names them)."""

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
NAMES: tuple[str, ...] = tuple(BY_NAME)

LIMITS: dict[str, tuple[float, float]] = {s.name: (s.low, s.high) for s in SETTINGS
                                          if s.low is not None and s.high is not None}
"""Inclusive ``(low, high)`` of each number setting; a positive float (its
check a :class:`~wsblock.schema.axis.Within`) must also be above zero."""

MATRIX_KEYS: dict[str, type] = {s.name: s.scalar for s in SETTINGS if s.matrix}
"""The settings a matrix file may give, with the type of their value."""


def get(name: str) -> Setting:
    """The setting called ``name``.

    Raises:
        KeyError: If there is none.
    """
    return BY_NAME[name]


def setting(name: str) -> Any:
    """The ``CellConfig`` field of the setting ``name``: its default and its declaration."""
    declared = BY_NAME[name]
    metadata = {SETTING_KEY: declared}
    if declared.default_factory is not None:
        return field(default_factory=declared.default_factory, metadata=metadata)
    return field(default=declared.default, metadata=metadata)


def option(name: str) -> str:
    """How the command line names a cell parameter: ``--ping-timeout``."""
    return "--" + name.replace("_", "-")


# Rules between cell parameters.

@dataclass(frozen=True)
class Rule:
    """A combination of cell parameters refused, with one message.

    Attributes:
        refuses: ``(values, stated) -> bool``: whether the cell is refused.
            ``values`` holds every parameter (defaults filled in); ``stated``
            the names its input gave. A rule about a value *given* (a
            timeout given without pings) reads ``stated``; a cell alone
            (a record's params, a ``--cell`` file) cannot tell a default
            given from one left out, so it states what differs from its
            default.
        message: The refusal, with ``{name}`` for each parameter it names,
            filled in as the input spells it (see :meth:`refusal`).
        why: Why the combination is refused (documentation).
        notes: What the ``--help`` of a parameter says of the rule, by
            parameter name (``{name}`` spelled as :attr:`message`'s).
    """

    refuses: Callable[[Mapping[str, Any], Collection[str]], bool]
    message: str
    why: str
    notes: Mapping[str, str] = field(default_factory=dict)

    def refusal(self, values: Mapping[str, Any], stated: Collection[str],
                spell: Callable[[str], str] = str) -> str | None:
        """The message if ``values`` break the rule, else ``None``.

        Args:
            values: Every cell parameter.
            stated: The names the input gave.
            spell: How the input names a parameter (``str``: as the key;
                :func:`option`: as the option).
        """
        if not self.refuses(values, stated):
            return None
        return self.message.format_map(_Spelled(spell))


class _Spelled(dict[str, str]):
    def __init__(self, spell: Callable[[str], str]) -> None:
        super().__init__()
        self.spell = spell

    def __missing__(self, key: str) -> str:
        return self.spell(key)


PING_TIMEOUT_WITHOUT_PINGS = Rule(
    refuses=lambda v, stated: v["ping_interval"] is None and "ping_timeout" in stated and v["ping_timeout"] is not None,
    message="{ping_timeout} has no effect with {ping_interval} none (no pings are sent)",
    why="no pings are sent without a ping interval, so a timeout given has nothing to time out: a cell that "
        "states one says something it did not test (a cell file may hold the default, as a record of "
        "--ping-interval none does)",
    notes={"ping_timeout": "refused with {ping_interval} none, where it has no effect"})

RULES: tuple[Rule, ...] = (
    PING_TIMEOUT_WITHOUT_PINGS,
    Rule(refuses=lambda v, stated: v["job_connections"] + v["observers"] == 0,
         message="a cell needs at least one job connection or observer",
         why="a cell without connections measures nothing"),
)
"""Every rule, checked in this order after each parameter's own check."""


def notes(name: str, spell: Callable[[str], str] = option) -> list[str]:
    """What the ``--help`` of the parameter ``name`` says of the rules that name it.

    Args:
        name: A cell parameter (an axis or a setting).
        spell: How the help names the other parameters (:func:`option`).
    """
    return [rule.notes[name].format_map(_Spelled(spell)) for rule in RULES if name in rule.notes]


def refusal(values: Mapping[str, Any], stated: Collection[str], spell: Callable[[str], str] = str) -> str | None:
    """The message of the first rule ``values`` break, or ``None``.

    Args:
        values: Every cell parameter, defaults filled in (a
            ``CellConfig``'s fields).
        stated: The names the input gave (option given, matrix key
            present); for a whole cell, those that differ from the default.
        spell: How the input names a parameter (:func:`option` on the
            command line).
    """
    for rule in RULES:
        message = rule.refusal(values, stated, spell)
        if message is not None:
            return message
    return None


__all__ = ["LIMITS", "MATRIX_KEYS", "MAX_CONNECTIONS", "MAX_WORKERS", "PING_TIMEOUT_WITHOUT_PINGS", "RULES", "Rule", "SETTINGS", "Setting",
           "default_start_method", "get", "notes", "option", "refusal", "setting"]
