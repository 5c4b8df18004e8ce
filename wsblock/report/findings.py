"""Numbers quoted in prose, checked against the records they come from.

A findings document quotes a measurement followed by the query that produced
it, in an HTML comment that renders invisibly::

    ... lag p99 was **412**<!-- q: default lag_p99_ms workload=pure_python
    strategy=thread work_ms=3000 ping_timeout=1 --> ms ...

A query is ``RUN COLUMN key=value ... [agg=NAME] [allow=inconclusive]``: a run
directory (relative to the document), a column of the tidy table
(``docs/record.md``, :mod:`wsblock.analysis.tidy`), ``key=value`` filters on
other columns (``none`` matches "no value", for example ``ping_timeout=none``;
``warnings=CODE`` matches rows that carry that warning code) and an
aggregation over every matching row, one row per repeat (:data:`AGGREGATES`;
``median`` when none is given). Intervals and loss proportions are computed
by :mod:`wsblock.analysis.aggregate` and :mod:`wsblock.analysis.intervals`,
the functions the report uses. ``docs/findings.md`` describes the language.

:func:`check` recomputes every quoted number, reports those that do not
match at the precision they are written with, and refuses a survival figure
(:func:`is_survival`) that rests on rows whose verdict is ``inconclusive`` or
that are legacy records, unless the query filters on ``verdict`` or says
``allow=inconclusive``.
"""

from __future__ import annotations

import math
import sys
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from wsblock import inputs
from wsblock.analysis import aggregate, tidy
from wsblock.analysis import intervals as iv
from wsblock.analysis import rules
from wsblock.errors import UsageError
from wsblock.schema import rundir
from wsblock.schema import record as record_schema

QUERY = re.compile(r"(?P<value>-?[\d][\d,]*(?:\.\d+)?|none|n/a)(?:\*\*|`)?\s*<!--\s*q:\s*(?P<query>[^>]*?)\s*-->")

PLAIN_AGGREGATES = ("median", "max", "min", "mean", "sum", "count")
"""Aggregations of the values of the column over the matching rows."""

INTERVAL_AGGREGATES = ("ci_low", "ci_high", "ci_conf")
"""The distribution-free interval of the median, as the report computes it, and its achieved confidence."""

LOSS_AGGREGATES = ("lost_k", "lost_n", "lost_share", "lost_low", "lost_high", "lost_any",
                   "repeats_lost", "repeats_n", "repeats_low", "repeats_high")
"""The disconnect outcome over the matching rows (column ``disconnect_share`` only): connections
pooled (``lost_*``, a description), and repeats, the unit of replication (``repeats_*``: repeats
that lost any connection of repeats with counts, with the Wilson interval over repeats,
:func:`wsblock.analysis.rules.repeat_loss`)."""

BOUNDARY_AGGREGATES = ("boundary_ms", "boundary_low", "boundary_high", "boundary_width", "boundary_cells",
                       "boundary_work_ms", "boundary_work_low", "boundary_work_high", "boundary_model_ms",
                       "boundary_p05_ms", "boundary_p05_low", "boundary_p05_high")
"""A searched survival boundary over the matching rows (column ``disconnect_share`` only): the job
length at which half the original connections are lost, as ``wsblock boundary`` estimates it
(:func:`wsblock.boundary.fit.crossing`: each row one trial, 95 % profile-likelihood interval), in the
job length the rows measured (``job_ms_p50``) or, ``boundary_work_*``, in the target ``work_ms``;
``boundary_model_ms`` is where the keepalive model (``docs/boundary-model.md``), fed each row's
record, predicts that crossing (fitted the same way, in measured job length); ``boundary_p05_*`` is
the length at which 5 % are lost, from the same curve."""

CONTRAST_AGGREGATES = ("repeats_fisher_p",)
"""A contrast of survival between two groups of rows over their repeats (column ``disconnect_share``
only): Fisher's exact test, two-sided, on repeats that lost any connection of repeats with counts
(:func:`wsblock.analysis.rules.contrast`). The second group is the query's filters with every
``vs.KEY=VALUE`` in place of ``KEY=VALUE``."""

SCORE_AGGREGATES = ("score_brier", "score_log_loss", "score_repeats", "score_lost", "score_groups",
                    "score_groups_won")
"""The keepalive model and the simple rules scored out of sample on every repeat of the run and
search directories at or under the query's run (``wsblock boundary score``,
:mod:`wsblock.boundary.score`): the column names the forecast (:data:`SCORE_FORECASTS`),
``band=yes`` scores only repeats whose longest stall lies between ``ping_timeout`` and the
keepalive cycle. ``score_groups_won``: directories in which the model's Brier score is lower than
the forecast's."""

SCORE_FORECASTS = {"model": "model", "stall_rule": "stall > ping_interval + ping_timeout",
                   "stall_fitted": "stall threshold, fitted", "jobs_rule": "N x L > ping_timeout",
                   "jobs_fitted": "N x L threshold, fitted", "base_rate": "base rate"}
"""Column names of score queries, and the forecasts they name."""

AGGREGATES = (*PLAIN_AGGREGATES, "n", *INTERVAL_AGGREGATES, *LOSS_AGGREGATES, *BOUNDARY_AGGREGATES,
              *CONTRAST_AGGREGATES, *SCORE_AGGREGATES)
"""Every ``agg=`` a query may name."""

COUNTS = ("count", "n", "lost_k", "lost_n", "lost_any", "repeats_lost", "repeats_n", "boundary_cells",
          "score_repeats", "score_lost", "score_groups", "score_groups_won")
"""Aggregations that are whole numbers (printed without decimals by :func:`lines`)."""

POOLED_REFUSED = ("lost_low", "lost_high")
"""Connection-level interval bounds: refused over the rows of more than one cell (:func:`refusal`)."""

ALLOW = ("inconclusive",)
"""What ``allow=`` may name: ``inconclusive`` lets a survival figure include
inconclusive and legacy rows."""

SURVIVAL_COLUMNS = frozenset({aggregate.LOSS, "original_lost", "first_disconnect_s", "reconnects_opened", "verdict"})
"""Columns whose values say whether connections survived (plus every ``disconnects_*`` column)."""


@dataclass(frozen=True)
class Query:
    """One parsed query.

    Attributes:
        run: Run directory, relative to the document.
        column: Tidy-table column.
        filters: ``column -> wanted text``.
        agg: How matching rows combine (one of :data:`AGGREGATES`).
        allow: What the honesty check lets through (see :data:`ALLOW`).
        versus: ``vs.KEY=VALUE`` overrides that define the second group of
            a contrast (:data:`CONTRAST_AGGREGATES`).
    """

    run: str
    column: str
    filters: tuple[tuple[str, str], ...]
    agg: str = "median"
    allow: tuple[str, ...] = ()
    versus: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Query":
        """Parse ``RUN COLUMN key=value ... [agg=NAME] [allow=inconclusive]``.

        Raises:
            UsageError: If the query is malformed.
        """
        words = text.split()
        if len(words) < 2:
            raise UsageError(f"query {text!r} needs a run and a column")
        run, column, *rest = words
        filters = []
        versus = []
        agg = "median"
        allow: list[str] = []
        for word in rest:
            key, sep, value = word.partition("=")
            if not sep:
                raise UsageError(f"query {text!r}: expected key=value, got {word!r}")
            if key.startswith("vs.") and len(key) > 3:
                versus.append((key[3:], value))
            elif key == "agg":
                if value not in AGGREGATES:
                    raise UsageError(f"query {text!r}: agg must be one of {', '.join(AGGREGATES)}")
                agg = value
            elif key == "allow":
                if value not in ALLOW:
                    raise UsageError(f"query {text!r}: allow must be one of {', '.join(ALLOW)}")
                allow.append(value)
            else:
                filters.append((key, value))
        if agg in BOUNDARY_AGGREGATES and column != aggregate.LOSS:
            raise UsageError(f"query {text!r}: agg={agg} is a searched boundary: use the column {aggregate.LOSS}")
        if agg in LOSS_AGGREGATES and column != aggregate.LOSS:
            raise UsageError(f"query {text!r}: agg={agg} is the disconnect outcome: use the column {aggregate.LOSS}")
        if agg in INTERVAL_AGGREGATES and column == aggregate.LOSS:
            raise UsageError(f"query {text!r}: {aggregate.LOSS} is a proportion: "
                             "use agg=lost_low or agg=lost_high for its interval")
        if (agg in CONTRAST_AGGREGATES) != bool(versus):
            raise UsageError(f"query {text!r}: a contrast needs agg={CONTRAST_AGGREGATES[0]} and at least one "
                             "vs.KEY=VALUE (the second group), and vs. needs that agg")
        if agg in CONTRAST_AGGREGATES and column != aggregate.LOSS:
            raise UsageError(f"query {text!r}: agg={agg} contrasts survival: use the column {aggregate.LOSS}")
        if (agg in SCORE_AGGREGATES) != (column in SCORE_FORECASTS):
            raise UsageError(f"query {text!r}: a score needs agg=score_... and a forecast as the column "
                             f"({', '.join(SCORE_FORECASTS)})")
        if agg in SCORE_AGGREGATES and any(k != "band" or v not in ("yes", "no") for k, v in filters):
            raise UsageError(f"query {text!r}: a score takes only the filter band=yes or band=no")
        return cls(run, column, tuple(filters), agg, tuple(allow), tuple(versus))

    def __str__(self) -> str:
        parts = [self.run, self.column, *(f"{k}={v}" for k, v in self.filters)]
        if self.agg != "median":
            parts.append(f"agg={self.agg}")
        parts += [f"vs.{k}={v}" for k, v in self.versus]
        parts += [f"allow={a}" for a in self.allow]
        return " ".join(parts)

    def with_agg(self, agg: str) -> "Query":
        """The same query with another aggregation."""
        return Query(self.run, self.column, self.filters, agg, self.allow,
                     self.versus if agg in CONTRAST_AGGREGATES else ())

    def other(self) -> "Query":
        """The second group of a contrast: the filters with the ``vs.`` overrides."""
        overrides = dict(self.versus)
        filters = [(k, overrides.pop(k, v)) for k, v in self.filters] + list(overrides.items())
        return Query(self.run, self.column, tuple(filters), "n", self.allow)


@lru_cache(maxsize=16)
def _table(directory: str) -> pd.DataFrame:
    loaded = rundir.load(directory)
    for path, message in loaded.errors:
        # Once per run directory (the table is cached): what no quote rests on.
        print(f"warning: left out {path}: {message}", file=sys.stderr)
    if not loaded.records:
        raise UsageError(f"no records in {directory}")
    table = tidy.frame(loaded.records)
    # The records themselves, for aggregations that read more than the
    # tidy columns (the keepalive model reads a record's stall pattern).
    table[RECORD] = pd.Series([rec for _, rec in loaded.records], index=table.index, dtype=object)
    return table


RECORD = "_record"
"""Hidden column of the query table: each row's record."""


def _matches(series: pd.Series, wanted: str, column: str = "") -> pd.Series:
    if column == "warnings":
        # A list of codes: match rows that carry the code (none: no warning).
        codes = series.map(lambda v: aggregate.warning_codes([v]))
        if wanted.lower() == "none":
            return codes.map(lambda c: not c)
        return codes.map(lambda c: wanted in c)
    if wanted.lower() == "none":
        return series.isna() | (series.astype(str).str.lower() == "none")
    try:
        number = float(wanted)
    except ValueError:
        return series.astype(str) == wanted
    numeric = pd.to_numeric(series, errors="coerce")
    return (numeric - number).abs() < 1e-9


COUNTABLE = ("verdict", "warnings", "status")
"""Filters after which ``agg=n`` may count zero rows (the other filters must match)."""


@lru_cache(maxsize=4)
def _score(directory: str, band_only: bool) -> Any:
    from wsblock.boundary import score as boundary_score

    trials = boundary_score.trials_from([Path(directory)], phases=100)
    try:
        return boundary_score.score(trials, band_only=band_only)
    except ValueError:
        raise UsageError(f"no repeat to score under {directory}") from None


def select(query: Query, base: Path) -> pd.DataFrame:
    """The tidy rows a query matches (one per repeat, failed ones included).

    Args:
        query: The query.
        base: Directory the query's run is relative to.

    Raises:
        UsageError: Unknown run or column, or no matching row.
    """
    if query.agg in SCORE_AGGREGATES:
        # Scored over repeats of whole directories, not rows of one table.
        rows = pd.DataFrame()
        rows.attrs["score"] = _score(str((base / query.run).resolve()), ("band", "yes") in query.filters)
        return rows
    table = _table(str((base / query.run).resolve()))
    if query.column not in table.columns:
        raise UsageError(f"query {query}: no column {query.column!r}")
    rows = table
    # Counting rows with a verdict, a warning or a status may rightly give 0,
    # so those filters come last; any other filter that leaves nothing is
    # likely a typo.
    counting = query.agg == "n"
    ordered = sorted(query.filters, key=lambda f: counting and f[0] in COUNTABLE)
    for key, wanted in ordered:
        if key not in rows.columns:
            raise UsageError(f"query {query}: no column {key!r}")
        rows = rows[_matches(rows[key], wanted, key)]
        if rows.empty and not (counting and key in COUNTABLE):
            raise UsageError(f"query {query}: no matching record")
    if rows.empty and not counting:
        raise UsageError(f"query {query}: no matching record")
    if query.versus:
        # The second group travels with the first (a copy: the table is cached).
        rows = rows.copy()
        rows.attrs["versus"] = select(query.other(), base)
    return rows


def _has_value(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compute(query: Query, rows: pd.DataFrame) -> float | None:
    """A query's value over the rows it matched (see :func:`select`).

    Returns:
        The value, or ``None`` if the rows hold no value.
    """
    if query.agg == "n":
        return float(len(rows))
    if query.agg == "count":
        return float(sum(1 for v in rows[query.column] if _has_value(v)))
    if query.agg in BOUNDARY_AGGREGATES:
        return boundary(query.agg, rows)
    if query.agg in SCORE_AGGREGATES:
        result = rows.attrs["score"]
        row = result.row(SCORE_FORECASTS[query.column])
        value = {"score_brier": row.brier, "score_log_loss": row.log_loss, "score_repeats": result.repeats,
                 "score_lost": result.lost, "score_groups": len(result.groups),
                 "score_groups_won": row.groups_won}[query.agg]
        return None if value is None else float(value)
    if query.agg in CONTRAST_AGGREGATES:
        other = rows.attrs.get("versus")
        if other is None:
            return None
        sides = [aggregate.CellRepeats(str(query), tuple(r.to_dict("records"))) for r in (rows, other)]
        c = rules.contrast(*((s.repeats_lost_any(), len(s.losses())) for s in sides))
        return _finite_or_none(c.p_value)
    if query.agg in INTERVAL_AGGREGATES or query.agg in LOSS_AGGREGATES:
        cell = aggregate.CellRepeats(str(query), tuple(rows.to_dict("records")))
        if query.agg in INTERVAL_AGGREGATES:
            estimate = cell.estimate(query.column)
            if estimate.n == 0:
                return None
            return {"ci_low": estimate.low, "ci_high": estimate.high, "ci_conf": estimate.confidence}[query.agg]
        if not cell.losses():
            return None
        if query.agg in ("lost_any", "repeats_lost"):
            return float(cell.repeats_lost_any())
        if query.agg.startswith("repeats_"):
            over = iv.wilson(cell.repeats_lost_any(), len(cell.losses()))
            return _finite_or_none({"repeats_n": over.n, "repeats_low": over.low, "repeats_high": over.high}[query.agg])
        lost = cell.lost()
        return _finite_or_none({"lost_k": lost.k, "lost_n": lost.n, "lost_share": lost.share,
                                "lost_low": lost.low, "lost_high": lost.high}[query.agg])
    values = pd.to_numeric(rows[query.column], errors="coerce").dropna()
    if values.empty:
        return None
    return float(getattr(values, query.agg)())


def boundary(agg: str, rows: pd.DataFrame) -> float | None:
    """A searched boundary (one of :data:`BOUNDARY_AGGREGATES`) over the rows, each row one trial.

    A row counts with its share of original connections lost, at its
    measured median job length (as ``wsblock boundary`` reads it: of the
    completed jobs once some were censored; its ``work_ms`` when no job
    completed) or, for ``boundary_work_*``, at its ``work_ms``. Rows without
    loss counts (failed repeats, legacy records) are left out.
    """
    from wsblock.boundary import model as boundary_model
    from wsblock.boundary import fit

    points = []
    for row in rows.to_dict("records"):
        if agg == "boundary_model_ms":
            rec = row.get(RECORD)
            if row.get("status") != "ok" or not isinstance(rec, dict):
                continue
            x = _measured_job(row)
            x = x if _has_value(x) else row.get("work_ms")
            if _has_value(x) and float(x) > 0:
                points.append((float(x), boundary_model.predict_record(rec, phases=100).p))
            continue
        n, k = row.get("original_connections"), row.get("original_lost")
        if not (_has_value(n) and _has_value(k)) or float(n) <= 0:
            continue
        work = row.get("work_ms")
        x = work if agg.startswith("boundary_work") else _measured_job(row)
        if not _has_value(x):
            x = work
        if _has_value(x) and float(x) > 0:
            points.append((float(x), float(k) / float(n)))
    c = fit.crossing(points, 0.05 if agg.startswith("boundary_p05") else 0.5)
    if agg == "boundary_cells":
        return float(c.cells)
    value = {"boundary_p05_ms": c.value, "boundary_p05_low": c.low, "boundary_p05_high": c.high,
             "boundary_model_ms": c.value, "boundary_ms": c.value, "boundary_low": c.low, "boundary_high": c.high, "boundary_width": c.width,
             "boundary_work_ms": c.value, "boundary_work_low": c.low, "boundary_work_high": c.high}[agg]
    return value


def _measured_job(row: dict[str, Any]) -> Any:
    # The job length as ``wsblock boundary`` reads it from the record (the
    # median of completed jobs once some were censored), so that a quoted
    # boundary is the one the search printed.
    from wsblock.boundary.run import measured_job_ms

    rec = row.get(RECORD)
    if isinstance(rec, dict):
        return measured_job_ms(rec)
    return row.get("job_ms_p50")


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
    return compute(query, select(query, base))


def is_survival(query: Query) -> bool:
    """Whether a query quotes a survival figure.

    The disconnect share and every loss aggregation, lost and disconnect
    counts (``original_lost``, ``disconnects_*``, ``reconnects_opened``),
    the first disconnect, and anything read from the ``verdict`` column.
    """
    return (query.agg in LOSS_AGGREGATES or query.column in SURVIVAL_COLUMNS
            or query.column.startswith("disconnects_"))


def refusal(query: Query, rows: pd.DataFrame) -> str | None:
    """Why a survival figure may not be quoted from these rows (None: it may).

    A survival figure over rows whose verdict is ``inconclusive`` (the window
    could not show survival) or that are legacy records (recorded before
    keepalive exposure was measured) would count a connection that was
    never at risk as kept. It is refused unless the query filters on
    ``verdict`` (the author chose which verdicts count) or says
    ``allow=inconclusive``.

    A connection-level interval (``lost_low``, ``lost_high``) over rows of
    more than one cell is refused whatever the query allows: connections of
    one repeat are lost together, and cells of different settings are
    different experiments, so a bound pooled over them claims far more than
    the repeats show (quote ``repeats_lost`` of ``repeats_n`` per cell).

    Args:
        query: The query.
        rows: The rows it matched.
    """
    if query.agg in POOLED_REFUSED:
        cells = set(tidy.cell_ids(rows))
        if len(cells) > 1:
            return (f"connection-level interval pooled over {len(cells)} cells: connections of one repeat are "
                    "not independent trials and different cells are different experiments; quote "
                    "agg=repeats_lost of agg=repeats_n (with repeats_low .. repeats_high) per cell, and "
                    "contrast cells over their repeats")
    if not is_survival(query) or "inconclusive" in query.allow:
        return None
    if any(key == "verdict" for key, _ in query.filters):
        return None
    inconclusive = legacy = flagged = 0
    if isinstance(rows.attrs.get("versus"), pd.DataFrame):
        # A contrast rests on both groups.
        rows = pd.concat([rows, rows.attrs["versus"]], ignore_index=True)
    for row in rows.to_dict("records"):
        is_inconclusive = row.get("verdict") == "inconclusive"
        is_legacy = record_schema.LEGACY_WARNING in aggregate.warning_codes([row.get("warnings")])
        inconclusive += is_inconclusive
        legacy += is_legacy
        flagged += is_inconclusive or is_legacy
    if not flagged:
        return None
    return (f"survival figure over {flagged} of {len(rows)} matched rows that are inconclusive "
            f"({inconclusive}) or legacy records ({legacy}); filter on verdict=... or add allow=inconclusive")


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


@dataclass(frozen=True)
class Mismatch:
    """A quote that the records do not support.

    Attributes:
        line: Line of the document (1-based).
        quoted: The number as written.
        computed: What the records give.
        query: The query, normalised.
        refused: Empty, or why the records do not support the quote
            whatever its value (:func:`refusal`).
        rows: Rows the query matched.
        agrees: Whether the number matches the records (a refused quote
            may).
    """

    line: int
    quoted: str
    computed: float | None
    query: str
    refused: str = ""
    rows: int = 0
    agrees: bool = False

    def describe(self) -> str:
        """One line for a report: the quote, what is wrong with it, and the query."""
        given = "none" if self.computed is None else repr(round(self.computed, 6))
        problems = [] if self.agrees else [f"records give {given}"]
        if self.refused:
            problems.append(f"not supported: {self.refused}")
        return f"quoted {self.quoted}, {'; '.join(problems)}  [{self.query}]"


def _agrees(quoted: str, computed: float | None) -> bool:
    if quoted in ("none", "n/a"):
        return computed is None
    shown = float(quoted.replace(",", ""))
    return computed is not None and math.isclose(round(computed, _decimals(quoted)), shown, abs_tol=1e-9)


def check(document: str | Path) -> tuple[int, list[Mismatch]]:
    """Recompute every quoted number of a findings document.

    A quote fails when its number, at the precision it is written with,
    differs from the records, or when it is a survival figure resting on
    inconclusive or legacy rows (:func:`refusal`; then ``refused`` says
    why).

    Args:
        document: The markdown file.

    Returns:
        ``(number of quotes checked, problems)``: one :class:`Mismatch` per
        failing quote, in document order.

    Raises:
        UsageError: Unreadable document or a query that cannot be evaluated.
    """
    path = Path(document)
    text = inputs.read_text(path, "document")
    checked = 0
    mismatches = []
    for match in QUERY.finditer(text):
        checked += 1
        query = Query.parse(match["query"])
        rows = select(query, path.parent)
        computed = compute(query, rows)
        quoted = match["value"]
        line = text.count("\n", 0, match.start()) + 1
        refused = refusal(query, rows) or ""
        agrees = _agrees(quoted, computed)
        if refused or not agrees:
            mismatches.append(Mismatch(line, quoted, computed, str(query), refused, len(rows), agrees))
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
    text = inputs.read_text(path, "document")

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


def lines(text: str, base: Path, decimals: int = 2) -> tuple[list[str], str | None]:
    """What ``wsblock findings query`` prints for a query.

    With ``agg=``, the one value. Without, the median and every aggregation
    that fits the column: ``n``, ``count`` and the interval (``ci_low``,
    ``ci_high``, ``ci_conf``) for a number, the pooled loss (``lost_*``) for
    ``disconnect_share``, ``n`` for a column that holds words. Each line is
    a quote ready to paste; counts are printed without decimals.

    Args:
        text: The query.
        base: Directory the query's run is relative to.
        decimals: Decimals of values that are not counts.

    Returns:
        ``(lines, note)``: the note says why ``check`` would refuse the
        quote (:func:`refusal`), or is None.

    Raises:
        UsageError: A malformed query or one that cannot be evaluated.
    """
    query = Query.parse(text)
    rows = select(query, base)
    if any(word.startswith("agg=") for word in text.split()[2:]):
        queries = [query]
    elif query.column == aggregate.LOSS:
        queries = [query, query.with_agg("n"), *(query.with_agg(a) for a in LOSS_AGGREGATES)]
    elif pd.to_numeric(rows[query.column], errors="coerce").notna().any():
        queries = [query, *(query.with_agg(a) for a in ("n", "count", *INTERVAL_AGGREGATES))]
    else:
        queries = [query.with_agg("n")]
    out = [f"{format_value(compute(q, rows), 0 if q.agg in COUNTS else decimals)}<!-- q: {q} -->"
           for q in queries]
    return out, refusal(query, rows)
