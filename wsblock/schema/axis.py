"""What an axis is: the :class:`Axis` declaration and its building blocks.

An axis is declared once, in :data:`wsblock.schema.axes.AXES`: its name,
Python type and default, and how a matrix file and the command line spell
it, how a value is parsed, checked, normalised and printed, and how it
enters a cell id. :class:`wsblock.engine.config.CellConfig` makes one field
of each.

This module imports nothing of the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

from wsblock.errors import UsageError

REQUIRED: Any = object()
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


# Parsers: one value from a matrix file (or a tidy row) to the cell's value.
# Each raises UsageError naming the key.

def name_in(catalogue: Callable[[], list[str]], what: str) -> Callable[[str, Any], Any]:
    """A parser that accepts the names of a catalogue (``what``: its noun)."""
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


def positive(key: str, value: Any) -> Any:
    """Parser: a positive number."""
    return positive_seconds(key, value)


def seconds_or_none(key: str, value: Any) -> Any:
    """Parser: a positive number or ``"none"`` (``None``)."""
    return positive_seconds(key, value, allow_none=True)


def boolean(key: str, value: Any) -> Any:
    """Parser: ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise UsageError(f"{key}: expected true or false, got {value!r}")
    return value


def handler_seconds(key: str, value: Any) -> Any:
    """Parser: a positive number, ``"none"``, or ``"unset"`` (``None``)."""
    if value is None or value == "unset":
        return None
    if isinstance(value, str) and value.lower() == "none":
        return "none"
    return positive_seconds(key, value)


def positive_or_unset(key: str, value: Any) -> Any:
    """Parser: a positive number, or ``"unset"`` (``None``: left as it is)."""
    if value is None or value == "unset":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise UsageError(f'{key}: expected positive numbers or "unset", got {value!r}')
    return float(value)


# Normalisers: a value as a tidy row or a record holds it (None, NaN,
# numpy scalars, old records without the key) to the cell's value.

def as_float(value: Any) -> Any:
    """``None`` or a float."""
    return None if is_none(value) else float(value)


def as_name(value: Any) -> Any:
    """``None`` or a string."""
    return None if is_none(value) else str(value)


def as_pings(value: Any) -> Any:
    """A boolean; missing means ``True`` (older records sent client pings)."""
    return True if is_none(value) else bool(value)


def as_handler(value: Any) -> Any:
    """``None``, ``"none"`` or a float."""
    return None if is_none(value) else (value if isinstance(value, str) else float(value))


# Checks: a value of a CellConfig field, refused with a message that names
# the field.

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bounded(name: str, value: Any, low: float, high: float) -> None:
    """Refuse anything but a positive number from ``low`` to ``high`` (inclusive).

    Raises:
        UsageError: Naming ``name``.
    """
    if not _finite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{name} must be from {low:g} to {high:g}, got {value!r}")


@dataclass(frozen=True)
class Within:
    """A check: a positive number from ``low`` to ``high`` (inclusive), or one of ``allow``.

    ``str()`` says what it accepts, for the documentation.
    """

    low: float
    high: float
    allow: tuple[Any, ...] = ()

    def __call__(self, name: str, value: Any) -> None:
        if any(value is a or (isinstance(a, str) and value == a) for a in self.allow):
            return
        bounded(name, value, self.low, self.high)

    def __str__(self) -> str:
        span = f"up to {self.high:g}" if self.low == 0 else f"{self.low:g} to {self.high:g}"
        words = [f'"{a}"' for a in self.allow if isinstance(a, str)]
        return ", ".join([span, *words])


within = Within


@dataclass(frozen=True)
class OneOf:
    """A check: a name of a catalogue (``what``: its noun)."""

    catalogue: Callable[[], list[str]]
    what: str

    def __call__(self, name: str, value: Any) -> None:
        names = self.catalogue()
        if not isinstance(value, str) or value not in names:
            raise UsageError(f"unknown {self.what} {value!r} (choose from {', '.join(names)})")

    def __str__(self) -> str:
        return ", ".join(self.catalogue())


one_of = OneOf


class _TrueOrFalse:
    """A check: a boolean."""

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be true or false, got {value!r}")

    def __str__(self) -> str:
        return "true, false"


true_or_false = _TrueOrFalse()


# Command-line texts to values (argparse ``type=``); the range is checked
# with the cell.

def seconds_or_none_text(text: str) -> float | None:
    """``none``, ``off`` or ``null`` to ``None``; any other text to a float."""
    if text.strip().lower() in ("none", "off", "null"):
        return None
    return float(text)


def seconds_or_none_word(text: str) -> float | str:
    """Like :func:`seconds_or_none_text`, but keeps ``"none"`` as a word.

    For an axis where ``None`` already means "not set".
    """
    value = seconds_or_none_text(text)
    return "none" if value is None else value


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One axis of the experiment.

    Declared in :data:`wsblock.schema.axes.AXES`, which gives each its
    ``name``, ``default`` and ``kind``.

    Attributes:
        description: What it is, one line (documentation and ``--help``).
        parse: Checks one value from a matrix file: ``(key, value) -> value``.
        normal: Brings a value as a record or tidy row holds it (``None``,
            NaN, a number of any type, absent in old records) to one form.
        check: Refuses a bad value of the cell field: ``(name, value)``,
            raising :class:`~wsblock.errors.UsageError`.
        id_part: The value's part of a cell id; ``None`` leaves it out (an
            axis at its default, so the ids of older cells stay as they were).
        label: How a value prints in reports and ``--help``.
        asv: ``always`` an asv parameter, or ``varied``: one only in a
            profile that varies it.
        examples: Two different values as a matrix file writes them (for
            the documentation and the tests).
        toml_key: Its key in a matrix file (default: the name).
        cli_option: Its option of ``wsblock run`` (default ``--<name>``
            with dashes; ``--no-<name>`` for a boolean that defaults to true).
        metavar: The option's value in ``--help``.
        from_text: The option's text to a value (default: by type, ``float``
            or ``str``); ignored for booleans, which are flags.
        none_text: How ``None`` prints in the tidy CSV, for an axis where
            ``None`` is a value (``none``: no keepalive; ``unset``); ``None``
            for axes that never hold it.
        name: The cell parameter (``CellConfig`` field, record ``params``
            key, tidy column, asv parameter name).
        default: The value when not given (:data:`REQUIRED`: none).
        kind: Its Python type, as the ``CellConfig`` field is annotated.
    """

    description: str
    parse: Callable[[str, Any], Any]
    normal: Callable[[Any], Any]
    check: Callable[[str, Any], None]
    id_part: Callable[[Any], str | None]
    label: Callable[[Any], str]
    asv: Literal["always", "varied"]
    examples: tuple[Any, Any]
    toml_key: str = ""
    cli_option: str = ""
    metavar: str | None = None
    from_text: Callable[[str], Any] | None = None
    none_text: str | None = None
    name: str = ""
    default: Any = REQUIRED
    kind: Any = None


AXIS_KEY = "wsblock.axis"
"""The key of a ``CellConfig`` field's metadata that holds its :class:`Axis`."""
