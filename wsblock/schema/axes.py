"""The axes of a cell, read from their one declaration, and the one ``cell_id``.

An *axis* is a cell parameter a matrix multiplies out (workload, work size,
strategy, the keepalive settings ...). Each is declared once, as a field of
:class:`wsblock.engine.config.CellConfig` made with
:func:`wsblock.schema.axis.axis`: its type and default are the field's, the
:class:`~wsblock.schema.axis.Axis` says how it is spelled in a matrix file
and on the command line, how it is parsed, checked and printed and how it
enters a cell's id. The matrix (``wsblock.matrix.spec``), the command line,
the tidy table, the report, the asv suite and the asv results adapter read
:data:`AXES`. Every other cell parameter is a *setting*: shared by the cells
of a matrix and named in an id only when it differs from its default.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable, Mapping

from wsblock.engine.config import CellConfig
from wsblock.schema.axis import (AXIS_KEY, REQUIRED, Axis, handler_label, is_none, number_text,
                                 positive_seconds, seconds_label, seconds_text)


def _option(name: str, kind: Any, default: Any) -> str:
    flag = name.replace("_", "-")
    return f"--no-{flag}" if kind is bool and default is True else f"--{flag}"


def _read_axes() -> tuple[Axis, ...]:
    hints = typing.get_type_hints(CellConfig)
    found = []
    for f in dataclasses.fields(CellConfig):
        declared = f.metadata.get(AXIS_KEY)
        if declared is None:
            continue
        default = REQUIRED if f.default is dataclasses.MISSING else f.default
        kind = hints[f.name]
        found.append(dataclasses.replace(
            declared, name=f.name, default=default, kind=kind,
            toml_key=declared.toml_key or f.name,
            cli_option=declared.cli_option or _option(f.name, kind, default)))
    return tuple(found)


AXES: tuple[Axis, ...] = _read_axes()
"""Every axis, in the order of a cell id (the order of the ``CellConfig`` fields)."""

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
    defaults = CellConfig("", 1.0, "").to_dict()
    # "One worker per job connection" is the default pool size.
    defaults["workers"] = params.get("job_connections", defaults["job_connections"])
    return {k: v for k, v in defaults.items() if k not in BY_NAME and k not in NOT_IN_ID}


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return number_text(value)


def cell_id(params: Mapping[str, Any], *, repeat: int | None = None, settings: bool = True,
            ignore: Iterable[str] = ()) -> str:
    """The identifier of a cell: one per distinct set of parameters.

    Args:
        params: A record's ``params``, a ``CellConfig.to_dict()`` or a tidy
            row (axes missing from old records take their defaults).
        repeat: Appended as ``-r<repeat>`` (a matrix's file names).
        settings: Name every setting that differs from its default, as
            ``-<name>=<value>``. A matrix passes ``False``: its settings are
            shared by all its cells and kept in its manifest.
        ignore: Settings left out even when ``settings`` is true (one that
            does not change what a cell measures, such as ``max_window``,
            whose window length each record gives).

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
        left_out = set(ignore)
        for key, default in _setting_defaults(params).items():
            if key not in left_out and key in params and not is_none(params[key]) and _differs(params[key], default):
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


__all__ = ["AXES", "Axis", "KEEPALIVE", "NAMES", "REQUIRED", "cell_id", "get", "is_none", "keepalive_budget",
           "normal", "number_text", "positive_seconds", "seconds_label", "seconds_text", "handler_label"]
