"""asv results as the tidy table's columns, and comparisons as markdown.

The asv suite (``benchmarks/``) tracks the metrics declared with ``asv=`` in
:mod:`wsblock.schema.metrics`; asv stores them
per machine, commit and environment. :func:`load_asv_results` reads them
back through asv's own API (``asv.results`` for the result files,
``asv.benchmarks`` for ``benchmarks.json``) and returns one row per cell and
run, with the column names of :func:`wsblock.analysis.tidy.frame`, so the report can
treat asv runs like matrix runs. :func:`compare_markdown` renders two runs
(two websockets versions, two commits, two machines) side by side as a
GitHub-markdown table with change marks, in the manner of ``asv compare``.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from wsblock.errors import UsageError
from wsblock.analysis import comparison
from wsblock.analysis import intervals as iv
from wsblock.schema import axes
from wsblock.schema import metrics as metrics_schema

CELL_KEYS = tuple(a.name for a in axes.AXES if a.asv == "always")
"""Parameters of every cell benchmark, named as tidy columns."""

CELL_METRICS = {m.asv_method: m.column for m in metrics_schema.asv_tracked()}
"""asv benchmark method -> tidy column it reports (:func:`wsblock.schema.metrics.asv_tracked`)."""

TIMING_METRICS = {"time_execute": "execute_ms"}
"""asv time benchmark -> column of :func:`load_asv_timings` (ms, not s)."""

RUN_COLUMNS = ("commit_hash", "env_name", "websockets_version", "python", "machine", "date")
"""Columns that say which run a row comes from."""

EXECUTE = metrics_schema.Metric("execute_ms", (), "ms", "execute ms", "one job, fixed units (ms)",
                         "wall time of one job of fixed units, run directly")
"""The metric of :func:`load_asv_timings`."""

METRIC_LABELS = {m.column: m.label for m in (*metrics_schema.asv_tracked(), EXECUTE)}
"""Readable names of the metric columns, for tables."""


def _asv_api() -> tuple[Any, Any, Any, Any]:
    # asv is imported late: the rest of wsblock works without it.
    from asv import benchmarks, config, results, util

    return benchmarks, config, results, util


def _load_benchmarks(results_dir: Path) -> Any:
    benchmarks, config, _, util = _asv_api()
    conf = config.Config()
    conf.results_dir = str(results_dir)
    try:
        return benchmarks.Benchmarks.load(conf)
    except util.UserError as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(f"cannot read asv benchmarks in {results_dir}: {first}") from None


def _param_value(text: str) -> Any:
    # asv stores each parameter value as its repr().
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _run_columns(result: Any) -> dict[str, Any]:
    params = result.params or {}
    env_name = result.env_name or ""
    # An existing environment (-E existing, --python=same) installs nothing,
    # so a version named by the matrix says nothing about what ran.
    version = None if env_name.startswith("existing") else params.get("websockets")
    return {
        "commit_hash": result.commit_hash,
        "env_name": env_name,
        "websockets_version": version or None,
        "python": params.get("python"),
        "machine": params.get("machine"),
        "date": pd.Timestamp(result.date, unit="ms", tz="UTC") if result.date is not None else pd.NaT,
    }


Observation = tuple[dict[str, Any], str, dict[str, Any], Any]


def _observations(results_dir: str | Path, methods: Mapping[str, str]) -> Iterator[Observation]:
    """Yield ``(run columns, metric column, parameters, value)`` for each stored value.

    ``value`` is ``None`` for a failed benchmark and NaN for a skipped one
    (asv's convention).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}")
    _, _, results, _ = _asv_api()
    benchmarks = _load_benchmarks(root)
    for result in results.iter_results(str(root)):
        run = _run_columns(result)
        # get_result_keys drops results of benchmarks whose code changed
        # since, as asv publish and asv compare do.
        for key in sorted(result.get_result_keys(benchmarks)):
            column = methods.get(key.rsplit(".", 1)[-1])
            if column is None:
                continue
            names = benchmarks[key]["param_names"]
            params = result.get_result_params(key)
            values = result.get_result_value(key, params)
            if not params:
                values = [values]
            for combo, value in zip(itertools.product(*params), values):
                yield run, column, dict(zip(names, map(_param_value, combo))), value


def _is_skip(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _collect(results_dir: str | Path, methods: Mapping[str, str]) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    failed: set[tuple[Any, ...]] = set()
    measured: set[tuple[Any, ...]] = set()
    for run, column, params, value in _observations(results_dir, methods):
        ident = (run["machine"], run["commit_hash"], run["env_name"], *sorted(params.items(), key=str))
        row = rows.setdefault(ident, {**params, **run})
        if value is None:
            failed.add(ident)
            row[column] = math.nan
        else:
            row[column] = float(value)
            if not _is_skip(value):
                measured.add(ident)
    out = []
    for ident, row in rows.items():
        if ident not in measured and ident not in failed:
            continue  # skipped everywhere: a pair the profile does not run
        row["status"] = "failed" if ident in failed else "ok"
        out.append(row)
    return out


def _extra_keys(rows: list[dict[str, Any]], known: Sequence[str]) -> list[str]:
    # Axes a profile varies beyond the base five (client_pings, ...).
    reserved = {*known, *RUN_COLUMNS, "status"}
    extra: list[str] = []
    for row in rows:
        extra += [k for k in row if k not in reserved and k not in extra]
    return extra


def load_asv_results(results_dir: str | Path) -> pd.DataFrame:
    """Read the cell metrics of an asv results directory.

    Args:
        results_dir: asv's ``results_dir`` (``results/asv``), holding
            ``benchmarks.json`` and one folder per machine.

    Returns:
        One row per machine, commit, environment and cell, with columns
        ``cell_id``, ``status`` (``failed`` if a metric's benchmark failed),
        the cell parameters and metrics under their tidy names
        (``workload``, ``work_ms``, ``strategy``, ``ping_interval``,
        ``ping_timeout``, any further axis the profile varied such as
        ``client_pings``, ``keepalive_budget_s``, ``disconnect_share``,
        ``lag_p99_ms``, ``echo_p99_ms``, ``job_ms_p50``), then
        ``commit_hash``, ``env_name``, ``websockets_version`` (from the
        environment's matrix; ``None`` for an existing environment, which
        installs nothing), ``python``, ``machine`` and ``date`` (the commit's
        date, UTC). Combinations skipped in every metric (unsupported pairs,
        cells outside the profile) are left out; a metric that measured
        nothing is NaN. ``ping_interval``/``ping_timeout`` keep ``None`` for
        "no keepalive", as in the tidy table.

    Raises:
        UsageError: If the directory or its ``benchmarks.json`` is missing.
    """
    rows = _collect(results_dir, CELL_METRICS)
    extra = _extra_keys(rows, [*CELL_KEYS, *CELL_METRICS.values()])
    for row in rows:
        for name in (*CELL_KEYS, *extra):
            if name in axes.BY_NAME:
                row[name] = axes.get(name).normal(row.get(name))
        row["keepalive_budget_s"] = axes.keepalive_budget(row["ping_interval"], row["ping_timeout"])
        row["cell_id"] = axes.cell_id(row, settings=False)
    columns = ["cell_id", "status", *CELL_KEYS, *extra, "keepalive_budget_s", *CELL_METRICS.values(),
               *RUN_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    for column in ("ping_interval", "ping_timeout"):
        # As in the tidy table: None means "no keepalive", not a missing value.
        df[column] = pd.Series([row[column] for row in rows], index=df.index, dtype=object)
    df["keepalive_budget_s"] = pd.to_numeric(df["keepalive_budget_s"], errors="coerce")
    return _sorted(df, [*CELL_KEYS, *extra])


def load_asv_timings(results_dir: str | Path) -> pd.DataFrame:
    """Read the fixed-work timings (``ExecuteJob.time_execute``).

    Args:
        results_dir: asv's ``results_dir``.

    Returns:
        One row per machine, commit, environment, workload and step count:
        ``status``, ``workload``, ``steps``, ``execute_ms`` (asv's median, in
        ms), then the run columns of :func:`load_asv_results`.

    Raises:
        UsageError: If the directory or its ``benchmarks.json`` is missing.
    """
    rows = _collect(results_dir, TIMING_METRICS)
    for row in rows:
        row["execute_ms"] = row.get("execute_ms", math.nan) * 1000.0
    df = pd.DataFrame(rows, columns=["status", "workload", "steps", "execute_ms", *RUN_COLUMNS])
    return _sorted(df, ["workload", "steps"])


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    order = df.assign(_k=[tuple(str(v) for v in row) for row in df[keys].itertuples(index=False)])
    order = order.sort_values(["machine", "date", "commit_hash", "env_name", "_k"], kind="stable")
    return order.drop(columns="_k").reset_index(drop=True)


def _version_key(value: Any) -> tuple[Any, ...]:
    parts = re.findall(r"\d+|[a-z]+", str(value).lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _pick_sides(df: pd.DataFrame, by: str, baseline: Any, contender: Any) -> tuple[Any, Any]:
    values = [v for v in df[by].dropna().unique()]
    if baseline is not None and contender is not None:
        return baseline, contender
    if len(values) != 2:
        shown = ", ".join(map(str, values))
        raise UsageError(f"{by} has {len(values)} values ({shown}); name the two to compare")
    if by == "websockets_version":
        first, second = sorted(values, key=_version_key)
    else:
        # Commits, environments, machines: the earlier run is the baseline.
        dates = df.groupby(by)["date"].min()
        first, second = sorted(values, key=lambda v: (dates.get(v), str(v)))
    if baseline is None and contender is None:
        return first, second
    if baseline is None:
        return (first if contender == second else second), contender
    return baseline, (second if baseline == first else first)


def _latest(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # One run per cell and side: the latest by commit date.
    if df.empty:
        return df
    ordered = df.sort_values("date", kind="stable")
    return ordered.drop_duplicates(subset=keys, keep="last").sort_index(kind="stable")


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric.endswith("share"):
        return f"{value:.2f}"
    return f"{value:,.1f}"


def _value(change: comparison.MarkedChange, metric: str, side: int) -> str:
    test = change.test
    value, (low, high), n = ((test.a, test.a_interval, test.a_n) if side == 0
                             else (test.b, test.b_interval, test.b_n))
    text = _fmt(value, metric)
    if n >= 2 and not math.isnan(low) and not math.isnan(high):
        text += f" [{_fmt(low, metric)}, {_fmt(high, metric)}]"
    return f"{text} (n {n})" if text != "n/a" else text


def _ratio_text(change: comparison.MarkedChange) -> str:
    ratio = change.ratio
    if math.isnan(ratio):
        return "n/a"
    return "inf" if math.isinf(ratio) else f"{ratio:.2f}"


def _side(by: str, value: Any) -> str:
    text = str(value)
    if by == "commit_hash":
        text = text[:8]
    return f"{by} {text}"


def _cell_label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    keys = list(keys)
    if keys[: len(CELL_KEYS)] == list(CELL_KEYS):
        pt = "none" if row["ping_timeout"] is None else f"{row['ping_timeout']:g}"
        pi = "none" if row["ping_interval"] is None else f"{row['ping_interval']:g}"
        label = f"{row['workload']} {row['work_ms']:g} ms x {row['strategy']}, pi {pi} pt {pt}"
        return ", ".join([label, *(f"{k}={row[k]}" for k in keys[len(CELL_KEYS):])])
    return ", ".join(f"{k}={row[k]}" for k in keys)


def compare_markdown(
    df: pd.DataFrame,
    *,
    by: str = "websockets_version",
    baseline: Any = None,
    contender: Any = None,
    metrics: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    factor: float | None = None,
    only_changed: bool = False,
) -> str:
    """Render two runs side by side as a GitHub-markdown table.

    Args:
        df: A frame from :func:`load_asv_results` (or
            :func:`load_asv_timings`, with ``keys=("workload", "steps")``),
            filtered as wanted (one machine, say).
        by: The column whose two values are compared: ``websockets_version``
            (default), ``commit_hash``, ``env_name`` or ``machine``.
        baseline: The reference value of ``by``; by default the lower
            websockets version, or else the earlier run.
        contender: The value compared with it; by default the other one.
        metrics: Metric columns, in order; by default every known metric
            with a value in the frame.
        keys: Columns that identify a cell; by default every column that is
            neither a metric nor about the run.
        factor: The smallest ratio that counts as a change, instead of each
            metric's own minimum effect. Whether a metric changed is decided
            by :func:`wsblock.analysis.comparison.decide`, the same test as
            ``wsblock compare``.
        only_changed: Leave out rows without a mark.

    Returns:
        The table (per cell and metric: both values, with their interval
        and the number of values behind them, the ratio, the verdict and a
        mark), a blank line and a legend. When a side has several runs of a
        cell (several commits of one environment, say), the latest by commit
        date is used: a side then holds one value per cell (asv keeps the
        median over the matrix's repeats), so the verdict is ``cannot
        tell``; the change test needs the repeats, which ``wsblock compare``
        of the matrix runs has.

    Raises:
        UsageError: If ``by`` is not a column, a named side has no rows, or
            the two sides cannot be chosen (``by`` has not exactly two values
            and they were not named).
    """
    if by not in df.columns:
        raise UsageError(f"unknown column {by!r}")
    known = [*CELL_METRICS.values(), *TIMING_METRICS.values()]
    # By default, every known metric that has a value (results stored before
    # a metric was tracked have none).
    metrics = list(metrics or [m for m in known if m in df.columns and df[m].notna().any()])
    if keys is None:
        # Whatever is neither a metric nor about the run identifies a cell.
        not_keys = {*known, *RUN_COLUMNS, "cell_id", "status", "keepalive_budget_s"}
        keys = [c for c in df.columns if c not in not_keys]
    keys = list(keys)
    before_name, after_name = _pick_sides(df, by, baseline, contender)
    for name in (before_name, after_name):
        if not (df[by] == name).any():
            raise UsageError(f"no rows with {by} {name!r}")
    known_metrics = {m.column: m for m in (*metrics_schema.METRICS, EXECUTE)}

    def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(repr(row[k]) for k in keys)

    before = comparison.sides(_latest(df[df[by] == before_name], keys), key, metrics)
    after = comparison.sides(_latest(df[df[by] == after_name], keys), key, metrics)
    cells = list(before) + [k for k in after if k not in before]

    lines = [
        f"| change | A: {_side(by, before_name)} | B: {_side(by, after_name)} | ratio | verdict | cell | metric |",
        "|:------:|---:|---:|---:|:---|:---|:---|",
    ]
    counts = {v: 0 for v in iv.OUTCOMES}
    used: list[str] = []
    for cell in cells:
        side_a, side_b = before.get(cell), after.get(cell)
        label = _cell_label((side_a or side_b).row, keys)  # type: ignore[union-attr]
        for name in metrics:
            metric = known_metrics.get(name) or metrics_schema.Metric(name, (), "", name, name, "")
            change = comparison.decide(metric, side_a, side_b, factor=factor)
            counts[change.outcome] += 1
            if only_changed and not change.mark:
                continue
            if change.mark and change.mark not in used:
                used.append(change.mark)
            lines.append(f"| {change.mark} | {_value(change, name, 0)} "
                         f"| {_value(change, name, 1)} | {_ratio_text(change)} | {change.outcome} | {label} "
                         f"| {METRIC_LABELS.get(name, name)} |")
    legend = (f"A = {_side(by, before_name)}, B = {_side(by, after_name)}; ratio = B / A; n = values behind "
              "a side (one per asv result: the median over the repeats its matrix measured). "
              + ", ".join(f"{counts[v]} {v}" for v in (iv.WORSE, iv.BETTER, iv.NO_CHANGE, iv.CANNOT_TELL))
              + ". " + comparison.TEST
              + (f" Minimum effect: x{factor:g}." if factor is not None else "")
              + " " + (comparison.legend(used) if used else "No changes marked."))
    return "\n".join(lines) + "\n\n" + legend + "\n"


__all__ = ["load_asv_results", "load_asv_timings", "compare_markdown", "CELL_METRICS", "CELL_KEYS"]
