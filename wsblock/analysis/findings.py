"""Numbers quoted in prose, checked against the records they come from.

A findings document quotes a measurement followed by the query that produced
it, in an HTML comment that renders invisibly::

    ... lag p99 was **412**<!-- q: default lag_p99_ms workload=pure_python
    strategy=thread work_ms=3000 ping_timeout=1 --> ms ...

A query names a run directory (relative to the document), a column of the
tidy table (``docs/record.md``, ``wsblock.analysis.tidy``), ``key=value`` filters on
other columns (``none`` matches "no value", for example ``ping_timeout=none``)
and optionally ``agg=`` (``median``, the default, ``max``, ``min``, ``mean``,
``sum`` or ``count``), which combines every matching row (repeats included).
:func:`check` recomputes every quoted number and reports those that do not
match at the precision they are written with.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from wsblock.analysis import tidy
from wsblock.errors import UsageError

QUERY = re.compile(r"(?P<value>-?[\d][\d,]*(?:\.\d+)?|none|n/a)(?:\*\*|`)?\s*<!--\s*q:\s*(?P<query>[^>]*?)\s*-->")
AGGREGATES = ("median", "max", "min", "mean", "sum", "count")


@dataclass(frozen=True)
class Query:
    """One parsed query.

    Attributes:
        run: Run directory, relative to the document.
        column: Tidy-table column.
        filters: ``column -> wanted text``.
        agg: How matching rows combine.
    """

    run: str
    column: str
    filters: tuple[tuple[str, str], ...]
    agg: str = "median"

    @classmethod
    def parse(cls, text: str) -> "Query":
        """Parse ``RUN COLUMN key=value ... [agg=NAME]``.

        Raises:
            UsageError: If the query is malformed.
        """
        words = text.split()
        if len(words) < 2:
            raise UsageError(f"query {text!r} needs a run and a column")
        run, column, *rest = words
        filters = []
        agg = "median"
        for word in rest:
            key, sep, value = word.partition("=")
            if not sep:
                raise UsageError(f"query {text!r}: expected key=value, got {word!r}")
            if key == "agg":
                if value not in AGGREGATES:
                    raise UsageError(f"query {text!r}: agg must be one of {', '.join(AGGREGATES)}")
                agg = value
            else:
                filters.append((key, value))
        return cls(run, column, tuple(filters), agg)

    def __str__(self) -> str:
        parts = [self.run, self.column, *(f"{k}={v}" for k, v in self.filters)]
        if self.agg != "median":
            parts.append(f"agg={self.agg}")
        return " ".join(parts)


@lru_cache(maxsize=16)
def _table(directory: str) -> pd.DataFrame:
    loaded = tidy.load_records(directory)
    if not loaded.records:
        raise UsageError(f"no records in {directory}")
    return tidy.frame(loaded.records)


def _matches(series: pd.Series, wanted: str) -> pd.Series:
    if wanted.lower() == "none":
        return series.isna() | (series.astype(str).str.lower() == "none")
    try:
        number = float(wanted)
    except ValueError:
        return series.astype(str) == wanted
    numeric = pd.to_numeric(series, errors="coerce")
    return (numeric - number).abs() < 1e-9


def evaluate(query: Query, base: Path) -> float | None:
    """Compute a query's value from the records.

    Args:
        query: The query.
        base: Directory the query's run is relative to.

    Returns:
        The value, or ``None`` if the matching rows hold no value.

    Raises:
        UsageError: Unknown run or column, or no matching row.
    """
    table = _table(str((base / query.run).resolve()))
    if query.column not in table.columns:
        raise UsageError(f"query {query}: no column {query.column!r}")
    rows = table
    for key, wanted in query.filters:
        if key not in rows.columns:
            raise UsageError(f"query {query}: no column {key!r}")
        rows = rows[_matches(rows[key], wanted)]
    if rows.empty:
        raise UsageError(f"query {query}: no matching record")
    values = pd.to_numeric(rows[query.column], errors="coerce").dropna()
    if query.agg == "count":
        return float(len(values))
    if values.empty:
        return None
    return float(getattr(values, query.agg)())


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


@dataclass(frozen=True)
class Mismatch:
    """A quoted number that the records do not reproduce."""

    line: int
    quoted: str
    computed: float | None
    query: str


def check(document: str | Path) -> tuple[int, list[Mismatch]]:
    """Recompute every quoted number of a findings document.

    Args:
        document: The markdown file.

    Returns:
        ``(number of quotes checked, mismatches)``.

    Raises:
        UsageError: Unreadable document or a query that cannot be evaluated.
    """
    path = Path(document)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    checked = 0
    mismatches = []
    for match in QUERY.finditer(text):
        checked += 1
        query = Query.parse(match["query"])
        computed = evaluate(query, path.parent)
        quoted = match["value"]
        line = text.count("\n", 0, match.start()) + 1
        if quoted in ("none", "n/a"):
            ok = computed is None
        else:
            shown = float(quoted.replace(",", ""))
            ok = computed is not None and math.isclose(
                round(computed, _decimals(quoted)), shown, abs_tol=1e-9)
        if not ok:
            mismatches.append(Mismatch(line, quoted, computed, str(query)))
    return checked, mismatches


PLACEHOLDER = re.compile(r"\?(?P<decimals>\d)(?P<tail>(?:\*\*|`)?\s*<!--\s*q:\s*(?P<query>[^>]*?)\s*-->)")


def fill(document: str | Path) -> int:
    """Replace placeholders ``?N<!-- q: ... -->`` with the value, N decimals.

    Used while writing: quote ``?1`` with a query, run this, then read the
    numbers and write the prose around them. Numbers already written are
    left alone (``check`` verifies them).

    Returns:
        How many placeholders were filled.
    """
    path = Path(document)
    text = path.read_text(encoding="utf-8")

    def value(match: re.Match[str]) -> str:
        computed = evaluate(Query.parse(match["query"]), path.parent)
        return format_value(computed, int(match["decimals"])) + match["tail"]

    filled, count = PLACEHOLDER.subn(value, text)
    if count:
        from wsblock import atomic

        atomic.write_text(path, filled)
    return count


def format_value(value: float | None, decimals: int) -> str:
    """Format a value the way a document would quote it."""
    if value is None:
        return "none"
    return f"{value:,.{decimals}f}"
