"""The axes of a cell, declared once, and the one ``cell_id``.

An *axis* is a cell parameter a matrix multiplies out (workload, work size,
strategy, the keepalive settings ...). Each is declared once, here, as an
:class:`~wsblock.schema.axis.Axis`: its name, type and default, how it is
spelled in a matrix file and on the command line, how it is parsed, checked
and printed and how it enters a cell's id.
:class:`wsblock.engine.config.CellConfig` makes one field of each
(:func:`field_of`); the matrix (``wsblock.matrix.spec``), the command line,
the tidy table, the report, the asv suite and the asv results adapter read
:data:`AXES`. Every other cell parameter is a *setting*
(:mod:`wsblock.schema.settings`): shared by the cells of a matrix and named
in an id only when it differs from its default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import workloads
from workloads.functions import slug
from wsblock.errors import UsageError
from wsblock.schema import settings
from wsblock.schema.axis import (AXIS_KEY, REQUIRED, Axis, as_float, as_handler, as_name, as_pings, boolean,
                                 handler_label, handler_seconds, is_none, name_in, number_text, one_of, positive,
                                 positive_or_unset, positive_seconds, seconds_label, seconds_or_none,
                                 seconds_or_none_text, seconds_or_none_word, seconds_text, true_or_false, within)

MAX_WORK_MS = 600_000.0
"""Longest job a cell may ask for (10 minutes); workloads also cap their units."""

MAX_KEEPALIVE_S = 3600.0
"""Longest keepalive interval or timeout."""

STRATEGIES = ("inline", "chunked", "thread", "process")
"""The strategies, in catalogue order: one class each in :mod:`wsblock.engine.strategies`
(a test checks that the two agree)."""

LOOPS = ("asyncio", "uvloop")
"""Event loops the server can run on."""

SERVERS = ("asyncio", "threaded")
"""websockets servers a cell can run: ``websockets.asyncio.server`` and
``websockets.sync.server`` (threads; no event loop)."""


class _WorkloadName:
    """Parser and check of the workload axis: a catalogue name or a user's function.

    A function (``package.module:function``, or a name an installed package
    registers) is imported here, so a bad one is refused with its cause
    before anything runs.
    """

    def parse(self, key: str, value: Any) -> Any:
        try:
            self(key, value)
        except UsageError as exc:
            raise UsageError(f"{key}: {exc}") from None
        return value

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise UsageError(f"unknown workload {value!r} (choose from {', '.join(workloads.names())}, "
                             f"or name a function as package.module:function)")
        try:
            workloads.lookup(value)
        except workloads.WorkloadError as exc:
            raise UsageError(str(exc)) from None

    def __str__(self) -> str:
        return ", ".join(workloads.names()) + ", or a function as package.module:function"


_WORKLOAD = _WorkloadName()


def _work_ms_label(value: Any) -> str:
    return "once per job" if value is None else f"{float(value):g} ms"


class LoopName:
    """Check of the loop axis: a known loop whose package is installed."""

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or value not in LOOPS:
            raise UsageError(f"unknown loop {value!r} (choose from {', '.join(LOOPS)})")
        if value == "uvloop":
            import importlib.util

            if importlib.util.find_spec("uvloop") is None:
                raise UsageError("loop uvloop needs the uvloop package, which is not installed "
                                 "(pip install 'wsblock[uvloop]'; it exists for Linux and macOS)")

    def __str__(self) -> str:
        return ", ".join(LOOPS)


def _strategies() -> list[str]:
    return list(STRATEGIES)


def _option(name: str, kind: Any, default: Any) -> str:
    flag = name.replace("_", "-")
    return f"--no-{flag}" if kind is bool and default is True else f"--{flag}"


def _declare(name: str, kind: Any, default: Any, declared: Axis) -> Axis:
    # The matrix key and the option follow the name unless the axis says otherwise.
    return dataclasses.replace(declared, name=name, default=default, kind=kind,
                               toml_key=declared.toml_key or name,
                               cli_option=declared.cli_option or _option(name, kind, default))


# Axes enter a cell id in this order (the order of the CellConfig fields).
MAX_BLAS_THREADS = 64
"""Most threads a BLAS pool of the server may be given."""


def threads_or_unset(key: str, value: Any) -> Any:
    """Parser: a whole number of threads from 1 to :data:`MAX_BLAS_THREADS`, or ``"unset"``."""
    if value is None or value == "unset":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BLAS_THREADS:
        raise UsageError(f'{key}: expected whole numbers from 1 to {MAX_BLAS_THREADS} or "unset", got {value!r}')
    return value


AXES: tuple[Axis, ...] = (
    _declare("workload", str, REQUIRED, Axis(
        description="the work the server does (see wsblock list), or a function as package.module:function",
        parse=_WORKLOAD.parse, normal=as_name, check=_WORKLOAD,
        id_part=slug, label=str, asv="always", toml_key="workloads",
        examples=("pure_python", "blocking_io"))),
    _declare("work_ms", float | None, REQUIRED, Axis(
        description="target length of one job on an idle machine, in ms "
                    "(not for a function without a units parameter, which runs once per job)",
        parse=positive, normal=as_float, check=within(0.0, MAX_WORK_MS, allow=(None,)),
        id_part=lambda v: None if v is None else f"{number_text(v)}ms", label=_work_ms_label,
        asv="always", metavar="MS", examples=(200, 2500))),
    _declare("strategy", str, REQUIRED, Axis(
        description="how the server runs a job",
        parse=name_in(_strategies, "strategy"), normal=as_name, check=one_of(_strategies, "strategy"),
        id_part=str, label=str, asv="always", toml_key="strategies",
        examples=("inline", "thread"))),
    _declare("ping_interval", float | None, 20.0, Axis(
        description="keepalive ping interval of server and client, seconds or none",
        parse=seconds_or_none, normal=as_float, check=within(0.0, MAX_KEEPALIVE_S, allow=(None,)),
        id_part=lambda v: f"pi{seconds_text(v)}", label=seconds_label, asv="always",
        metavar="S|none", from_text=seconds_or_none_text, none_text="none", examples=(1, "none"))),
    _declare("ping_timeout", float | None, 20.0, Axis(
        description="keepalive pong timeout of server and client, seconds or none",
        parse=seconds_or_none, normal=as_float, check=within(0.0, MAX_KEEPALIVE_S, allow=(None,)),
        id_part=lambda v: f"pt{seconds_text(v)}", label=seconds_label, asv="always",
        metavar="S|none", from_text=seconds_or_none_text, none_text="none", examples=(0.5, "none"))),
    # The keepalive variants.
    _declare("client_pings", bool, True, Axis(
        description="whether the load sends keepalive pings of its own",
        parse=boolean, normal=as_pings, check=true_or_false,
        id_part=lambda v: None if v else "noclientpings",
        label=lambda v: "client pings" if v else "no client pings", asv="varied",
        examples=(True, False))),
    _declare("handler_ping_timeout", float | str | None, None, Axis(
        description="what the server's handler assigns to connection.ping_timeout",
        parse=handler_seconds, normal=as_handler,
        check=within(0.0, MAX_KEEPALIVE_S, allow=(None, "none")),
        id_part=lambda v: None if v is None else f"hpt{v if isinstance(v, str) else number_text(v)}",
        label=handler_label, asv="varied", metavar="S|none", from_text=seconds_or_none_word,
        none_text="unset", examples=("unset", 5))),
    _declare("switch_interval_ms", float | None, None, Axis(
        description="the server's sys.setswitchinterval, in ms; unset leaves the interpreter's (5 ms)",
        parse=positive_or_unset, normal=as_float, check=within(0.01, 1000.0, allow=(None,)),
        id_part=lambda v: None if v is None else f"swi{number_text(v)}",
        label=lambda v: "unset" if v is None else f"{float(v):g} ms", asv="varied",
        metavar="MS", none_text="unset", examples=("unset", 1))),
    _declare("loop", str, "asyncio", Axis(
        description="the server's event loop: asyncio's own, or uvloop (timers of 1 ms resolution)",
        parse=name_in(lambda: list(LOOPS), "loop"), normal=lambda v: "asyncio" if is_none(v) else str(v),
        check=LoopName(), id_part=lambda v: None if v == "asyncio" else str(v), label=str, asv="varied",
        metavar="NAME", examples=("asyncio", "uvloop"))),
    _declare("server", str, "asyncio", Axis(
        description="the websockets server: asyncio's, or the threaded one (websockets.sync.server, "
                    "a thread per connection; inline blocks that thread)",
        parse=name_in(lambda: list(SERVERS), "server"), normal=lambda v: "asyncio" if is_none(v) else str(v),
        check=one_of(lambda: list(SERVERS), "server"), id_part=lambda v: None if v == "asyncio" else str(v),
        label=str, asv="varied", metavar="NAME", examples=("asyncio", "threaded"))),
    _declare("blas_threads", int | None, None, Axis(
        description="threads of each BLAS/OpenMP pool in the server process (threadpoolctl); unset pins one, "
                    "so NumPy in a thread or inline does not take every core; pool workers keep one",
        parse=threads_or_unset, normal=lambda v: None if is_none(v) else int(v),
        check=within(1, MAX_BLAS_THREADS, allow=(None,)), id_part=lambda v: None if v is None else f"blas{int(v)}",
        label=lambda v: "1 (unset)" if v is None else f"{int(v)}", asv="varied", metavar="N|unset",
        from_text=lambda text: None if text == "unset" else int(text), none_text="unset", examples=("unset", 2))),
)
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


def field_of(name: str) -> Any:
    """The ``CellConfig`` field of the axis ``name``: its default and its declaration."""
    declared = BY_NAME[name]
    metadata = {AXIS_KEY: declared}
    if declared.default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=declared.default, metadata=metadata)


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
    defaults = {s.name: s.default_value() for s in settings.SETTINGS if s.name not in NOT_IN_ID}
    # "One worker per job connection" is the default pool size.
    defaults["workers"] = params.get("job_connections", defaults["job_connections"])
    return defaults


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


__all__ = ["AXES", "Axis", "KEEPALIVE", "LOOPS", "NAMES", "REQUIRED", "SERVERS", "STRATEGIES", "cell_id",
           "field_of", "get", "is_none", "keepalive_budget",
           "normal", "number_text", "positive_seconds", "seconds_label", "seconds_text", "handler_label"]
