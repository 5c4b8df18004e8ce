"""The axes of a cell, declared once, and the one ``cell_id``.

An *axis* is a cell parameter a matrix multiplies out (workload, work size,
strategy, the keepalive settings). An :class:`Axis` says how it is spelled in
a matrix file and on the command line, its default, how it is parsed, how it
prints and how it enters a cell's id. The matrix (``wsblock.matrix.spec``),
the tidy table, the report, the asv suite and the asv results adapter read
this list. Every other cell parameter is a *setting*: shared by the cells of
a matrix and named in an id only when it differs from its default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping

from wsblock.errors import UsageError

REQUIRED = object()
"""Default of an axis that has none: a matrix and ``wsblock run`` must name it."""


def is_none(value: Any) -> bool:
    """True for ``None`` and NaN: a setting of "none", or no value at all."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def number_text(value: Any) -> str:
    """The shortest text of a number that reads back as the same number.

    ``300`` for 300.0, ``0.5``, ``300.0000001`` (never rounded, so two
    different values never print alike).
    """
    number = float(value)
    short = f"{number:g}"
    return short if float(short) == number else repr(number)


def seconds_text(value: Any) -> str:
    """``0.5`` or ``none``."""
    return "none" if is_none(value) else number_text(value)


def seconds_label(value: Any) -> str:
    """``0.5 s``, ``2 s`` or ``none``."""
    return "none" if is_none(value) else f"{float(value):g} s"


def handler_label(value: Any) -> str:
    """``5 s``, ``none`` or ``unset`` for a handler-assigned ping_timeout."""
    if value is None:
        return "unset"
    return value if isinstance(value, str) else seconds_label(value)


# Parsers: a value from a matrix file (or a tidy row) to the cell's value.
# Each raises UsageError naming the key.

def _name_in(catalogue: Callable[[], list[str]], what: str) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        names = catalogue()
        if value not in names:
            raise UsageError(f"{key}: unknown {what} {value!r} (choose from {', '.join(names)})")
        return value
    return parse


def positive_seconds(key: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A positive number, or ``None`` for ``"none"`` when allowed."""
    if allow_none and isinstance(value, str) and value.lower() == "none":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        hint = ' or "none"' if allow_none else ""
        raise UsageError(f"{key}: expected positive numbers{hint}, got {value!r}")
    return float(value)


def _positive(key: str, value: Any) -> Any:
    return positive_seconds(key, value)


def _seconds_or_none(key: str, value: Any) -> Any:
    return positive_seconds(key, value, allow_none=True)


def _boolean(key: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise UsageError(f"{key}: expected true or false, got {value!r}")
    return value


def _handler(key: str, value: Any) -> Any:
    if value is None or value == "unset":
        return None
    if isinstance(value, str) and value.lower() == "none":
        return "none"
    return positive_seconds(key, value)


def _workloads() -> list[str]:
    import workloads

    return workloads.names()


def _strategies() -> list[str]:
    from wsblock.engine import strategies

    return strategies.names()


# Normalisers: a value as a tidy row or a record holds it (None, NaN,
# numpy scalars, old records without the key) to the cell's value.

def _as_float(value: Any) -> Any:
    return None if is_none(value) else float(value)


def _as_name(value: Any) -> Any:
    return None if is_none(value) else str(value)


def _as_pings(value: Any) -> Any:
    return True if is_none(value) else bool(value)


def _as_handler(value: Any) -> Any:
    return None if is_none(value) else (value if isinstance(value, str) else float(value))


@dataclass(frozen=True)
class Axis:
    """One axis of the experiment.

    Attributes:
        name: The cell parameter (``CellConfig`` field, record ``params``
            key, tidy column, asv parameter name).
        toml_key: Its key in a matrix file.
        cli_option: Its option of ``wsblock run``.
        default: The value when not given (:data:`REQUIRED`: none).
        parse: Checks one value from a matrix file: ``(key, value) -> value``.
        normal: Brings a value as a record or tidy row holds it (``None``,
            NaN, a number of any type, absent in old records) to one form.
        id_part: The value's part of a cell id; ``None`` leaves it out (a
            keepalive variant at its default).
        label: How a value prints in reports.
        asv: ``always`` an asv parameter, or ``varied``: one only in a
            profile that varies it.
        description: What it is.
        examples: Two different values as a matrix file writes them (for
            the documentation and the tests).
        none_text: How ``None`` prints in the tidy CSV, for an axis where
            ``None`` is a value (``none``: no keepalive; ``unset``); ``None``
            for axes that never hold it.
    """

    name: str
    toml_key: str
    cli_option: str
    default: Any
    parse: Callable[[str, Any], Any]
    normal: Callable[[Any], Any]
    id_part: Callable[[Any], str | None]
    label: Callable[[Any], str]
    asv: Literal["always", "varied"]
    description: str
    examples: tuple[Any, Any]
    none_text: str | None = None


AXES: tuple[Axis, ...] = (
    Axis("workload", "workloads", "--workload", REQUIRED, _name_in(_workloads, "workload"), _as_name,
         lambda v: str(v), str, "always", "the work the server does (see wsblock list)", ("pure_python", "blocking_io")),
    Axis("work_ms", "work_ms", "--work-ms", REQUIRED, _positive, _as_float,
         lambda v: f"{number_text(v)}ms", lambda v: f"{float(v):g} ms", "always",
         "target length of one job on an idle machine, in ms", (200, 2500)),
    Axis("strategy", "strategies", "--strategy", REQUIRED, _name_in(_strategies, "strategy"), _as_name,
         lambda v: str(v), str, "always", "how the server runs a job", ("inline", "thread")),
    Axis("ping_interval", "ping_interval", "--ping-interval", 20.0, _seconds_or_none, _as_float,
         lambda v: f"pi{seconds_text(v)}", seconds_label, "always",
         "keepalive ping interval of server and client, seconds or none", (1, "none"), "none"),
    Axis("ping_timeout", "ping_timeout", "--ping-timeout", 20.0, _seconds_or_none, _as_float,
         lambda v: f"pt{seconds_text(v)}", seconds_label, "always",
         "keepalive pong timeout of server and client, seconds or none", (0.5, "none"), "none"),
    Axis("client_pings", "client_pings", "--no-client-pings", True, _boolean, _as_pings,
         lambda v: None if v else "noclientpings", lambda v: "client pings" if v else "no client pings",
         "varied", "whether the load sends keepalive pings of its own", (True, False)),
    Axis("handler_ping_timeout", "handler_ping_timeout", "--handler-ping-timeout", None, _handler,
         _as_handler, lambda v: None if v is None else f"hpt{v if isinstance(v, str) else number_text(v)}",
         handler_label, "varied", "what the server's handler assigns to connection.ping_timeout",
         ("unset", 5), "unset"),
)
"""Every axis, in the order of a cell id."""

BY_NAME: dict[str, Axis] = {a.name: a for a in AXES}
NAMES: tuple[str, ...] = tuple(a.name for a in AXES)
KEEPALIVE: tuple[str, ...] = ("ping_interval", "ping_timeout", "client_pings", "handler_ping_timeout")
"""The axes that make up a keepalive setting."""

PARAMS_AFTER = "ping_timeout"
"""Workload parameters enter an id after this axis (ids keep the form they
had before the keepalive variants were axes)."""

NOT_IN_ID = ("host", "port", "workload_params")
"""Cell parameters that never enter an id: where the server binds does not
change the experiment, and workload parameters have their own part."""


def get(name: str) -> Axis:
    """The axis called ``name``.

    Raises:
        KeyError: If there is none.
    """
    return BY_NAME[name]


def normal(params: Mapping[str, Any]) -> dict[str, Any]:
    """The axis values of a record's params or a tidy row, one form each.

    Missing axes take their default (records older than an axis ran with it).
    """
    out = {}
    for axis in AXES:
        if axis.name in params:
            out[axis.name] = axis.normal(params[axis.name])
        else:
            out[axis.name] = axis.normal(None if axis.default is REQUIRED else axis.default)
    return out


def keepalive_budget(ping_interval: Any, ping_timeout: Any) -> float | None:
    """``ping_interval + ping_timeout`` in seconds, or ``None`` when either is none.

    A blocked loop answers no ping: the connection is failed about this long
    after the loop stops.
    """
    if is_none(ping_interval) or is_none(ping_timeout):
        return None
    return float(ping_interval) + float(ping_timeout)


def _setting_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    from wsblock.engine.config import CellConfig

    defaults = CellConfig("", 1.0, "").to_dict()
    # "One worker per job connection" is the default pool size.
    defaults["workers"] = params.get("job_connections", defaults["job_connections"])
    return {k: v for k, v in defaults.items() if k not in BY_NAME and k not in NOT_IN_ID}


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return number_text(value)


def cell_id(params: Mapping[str, Any], *, repeat: int | None = None, settings: bool = True) -> str:
    """The identifier of a cell: one per distinct set of parameters.

    Args:
        params: A record's ``params``, a ``CellConfig.to_dict()`` or a tidy
            row (axes missing from old records take their defaults).
        repeat: Appended as ``-r<repeat>`` (a matrix's file names).
        settings: Name every setting that differs from its default, as
            ``-<name>=<value>``. A matrix passes ``False``: its settings are
            shared by all its cells and kept in its manifest.

    Returns:
        E.g. ``pure_python-200ms-inline-pi0.5-pt0.5`` then workload
        parameters (``-chunksize10000``), keepalive variants
        (``-noclientpings``, ``-hpt5``), settings and the repeat. Numbers
        print in their shortest exact form, so different values never share
        an id.
    """
    values = normal(params)
    workload_params = params.get("workload_params")
    if workload_params is None:
        # A tidy row: the row's own ``<workload>_<param>`` columns.
        prefix = f"{values['workload']}_"
        workload_params = {k[len(prefix):]: v for k, v in params.items()
                           if k.startswith(prefix) and not is_none(v)}
    parts = []
    for axis in AXES:
        part = axis.id_part(values[axis.name])
        if part is not None:
            parts.append(part)
        if axis.name == PARAMS_AFTER:
            parts += [f"{k}{_value_text(v)}" for k, v in sorted(workload_params.items())]
    tail = []
    if settings:
        for key, default in _setting_defaults(params).items():
            if key in params and not is_none(params[key]) and _differs(params[key], default):
                tail.append(f"{key}={_value_text(params[key])}")
    if repeat is not None:
        tail.append(f"r{repeat}")
    return "-".join([*parts, *tail])


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return float(value) != float(default)
    return value != default


def duplicates(axis: Axis, pairs: Iterable[tuple[Any, Any]]) -> list[str]:
    """Values of an axis list that mean the same cell.

    Args:
        axis: The axis.
        pairs: ``(as written, as parsed)`` for each value of the list.

    Returns:
        ``"300 and 300.0"`` texts, one per value that repeats an earlier one.
    """
    seen: dict[str, Any] = {}
    clashes = []
    for written, parsed in pairs:
        key = repr(axis.normal(parsed))
        if key in seen:
            clashes.append(f"{seen[key]!r} and {written!r}")
        else:
            seen[key] = written
    return clashes


__all__ = ["AXES", "Axis", "KEEPALIVE", "NAMES", "cell_id", "get", "is_none", "keepalive_budget",
           "normal", "number_text", "seconds_label", "handler_label"]
