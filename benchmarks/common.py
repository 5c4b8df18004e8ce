"""What every benchmark of the suite shares: the profile, its grid, the records.

One definition of each grid: the parameters of the cell benchmarks come from
a named matrix profile (``wsblock/matrix/profiles/<name>.toml``), chosen with the
environment variable ``WSBLOCK_ASV_PROFILE`` (default ``quick``). asv
discovers benchmarks in a process of its own before it runs any, so the grid
is computed when this module is imported; asv hands its environment on to
discovery, ``setup_cache`` and every benchmark process alike, so they all see
the same profile.

One measurement of the profile per asv run: asv runs every benchmark, and
every parameter combination of it, in a fresh process. Measuring a cell
inside a ``track_`` method would run it once per metric. Instead
:class:`CellBenchmark` has a single ``setup_cache``, inherited by every class
that reads cells (asv keys a cache by the defining function's module and
line, so they all share it). It runs the whole profile once through the
matrix engine into asv's cache directory, every cell as many times as the
profile's ``repeats`` (3 for ``quick`` and ``default``, 1 for ``smoke``), and
returns that directory; each benchmark's ``setup`` then reads the records of
its own cell.

Each ``track_`` value is the median over the cell's measured repeats (the
largest, for a metric declared ``aggregate="max"``). asv keeps that one number
per cell: it has no samples of a ``track_`` benchmark, so ``asv compare``
judges these values by its ``--factor`` alone, without a noise test. The
repeats themselves, and the change test of ``wsblock compare``, are in the
matrix runs (docs/asv.md, "Reading asv compare").
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from wsblock.matrix import spec as matrix_spec
from wsblock.schema import axes, metrics, record
from wsblock.schema.rundir import record_path
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix.measure import cell_timeout
from wsblock.matrix.run import run_matrix
from wsblock.matrix.spec import Matrix, PlannedCell
from wsblock.engine.proc import die_with_parent

PROFILE_ENV = "WSBLOCK_ASV_PROFILE"
"""Environment variable naming the profile whose grid the suite runs."""

DEFAULT_PROFILE = "quick"

BASE_AXES = tuple(a.name for a in axes.AXES if a.asv == "always")
"""Matrix axes that are always parameters, named as the columns of the tidy table."""

OPTIONAL_AXES = tuple(a.name for a in axes.AXES if a.asv == "varied")
"""Matrix axes that become parameters only in a profile that varies them."""

METRICS = tuple(m.column for m in metrics.asv_tracked())
"""Tidy-table columns that the ``track_`` benchmarks report (declared in
:mod:`wsblock.schema.metrics`)."""

CellKey = tuple[Any, ...]


def profile_name() -> str:
    """The profile chosen through ``WSBLOCK_ASV_PROFILE``: a shipped one, or a matrix file.

    A value ending in ``.toml`` is the path of a matrix file (``docs/matrix.md``),
    so the suite can measure a matrix of one's own, users' functions included.

    Raises:
        UsageError: If the variable names no shipped profile and no existing
            ``.toml`` file.
    """
    name = os.environ.get(PROFILE_ENV, "").strip() or DEFAULT_PROFILE
    if name.endswith(".toml"):
        if not Path(name).is_file():
            raise UsageError(f"{PROFILE_ENV}={name!r}: no such matrix file")
        return str(Path(name).resolve())
    if name not in matrix_spec.PROFILES:
        raise UsageError(
            f"{PROFILE_ENV}={name!r} is not a profile (choose from {', '.join(matrix_spec.PROFILES)}, "
            f"or give the path of a matrix file ending in .toml)"
        )
    return name


def _normal(value: Any) -> Any:
    # One spelling per value: asv hands back 1500 where the cell has 1500.0.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return float(value)


def _shown(value: Any) -> Any:
    # asv labels parameters with repr(): 1500 reads better than 1500.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if not any(type(value) is type(seen) and value == seen for seen in out):
            out.append(value)
    return out


@dataclass(frozen=True)
class Grid:
    """A profile seen as an asv parameter grid.

    Attributes:
        profile: The profile's name.
        matrix: The validated matrix.
        param_names: :data:`BASE_AXES`, then each of :data:`OPTIONAL_AXES`
            that the profile varies.
        params: One list of values per parameter name.
        cells: Key -> the planned cells (one per repeat) measured for it.
        skipped: Key -> why the pair is unsupported.
    """

    profile: str
    matrix: Matrix
    param_names: list[str]
    params: list[list[Any]]
    cells: dict[CellKey, list[PlannedCell]]
    skipped: dict[CellKey, str]

    def key(self, values: tuple[Any, ...] | list[Any]) -> CellKey:
        """The lookup key of benchmark parameter values (in ``param_names`` order)."""
        return tuple(_normal(v) for v in values)

    def key_of(self, cell: CellConfig) -> CellKey:
        """The lookup key of a cell."""
        return tuple(_normal(getattr(cell, name)) for name in self.param_names)

    def planned(self, key: CellKey) -> list[PlannedCell]:
        """The planned cells for ``key``.

        Raises:
            NotImplementedError: For an unsupported pair or a combination the
                profile does not contain (asv then shows it as skipped).
        """
        if key in self.skipped:
            raise NotImplementedError(self.skipped[key])
        found = self.cells.get(key)
        if not found:
            raise NotImplementedError(f"not a cell of profile {self.profile}")
        return found


def build_grid(name: str, matrix: Matrix | None = None) -> Grid:
    """Turn the profile ``name`` into a :class:`Grid`.

    Args:
        name: A shipped profile, or the path of a matrix file (``.toml``).
        matrix: The matrix to use instead of loading the profile (tests).

    Raises:
        UsageError: If the profile is invalid, or if it varies a workload
            parameter (the grid has no axis for those).
    """
    if matrix is None:
        matrix = matrix_spec.load_file(name) if name.endswith(".toml") else matrix_spec.load_profile(name)
    configs = [p.cell for p in matrix.cells] + [cell for cell, _ in matrix.skipped]
    names = list(BASE_AXES) + [
        axis for axis in OPTIONAL_AXES
        if len(_unique([getattr(c, axis, None) for c in configs])) > 1
    ]
    params = [_unique([_shown(getattr(c, axis)) for c in configs]) for axis in names]
    grid = Grid(profile=name, matrix=matrix, param_names=names, params=params, cells={}, skipped={})
    for planned in matrix.cells:
        grid.cells.setdefault(grid.key_of(planned.cell), []).append(planned)
    for key, group in grid.cells.items():
        if len({p.repeat for p in group}) != len(group):
            raise UsageError(
                f"profile {name} varies workload parameters of {key[0]}; the asv grid has no axis for them"
            )
    grid.skipped.update({grid.key_of(cell): reason for cell, reason in matrix.skipped})
    return grid


def _window_s(cell: Any) -> float:
    """The cell's window, or the longest one it can be sized to when it gives none."""
    if cell.duration is not None:
        return float(cell.duration)
    return float(cell.max_window)


def setup_cache_timeout(matrix: Matrix) -> float:
    """Seconds asv allows the ``setup_cache`` that runs ``matrix``.

    asv 0.6 counts seconds without output, and the run prints a line per
    cell, so the longest single cell is what matters; the sum of typical cell
    lengths keeps the bound sound should asv count total time instead. The
    first run on a machine also calibrates every workload.
    """
    cells = [p.cell for p in matrix.cells]
    typical = sum(3 * (c.warmup + _window_s(c)) + 2 * (c.work_ms or 0.0) / 1000.0 + 30.0 for c in cells)
    longest = max((cell_timeout(p) for p in matrix.cells), default=0.0)
    return float(max(600.0 + typical, longest + 60.0))


def run_profile(grid: Grid, directory: Path) -> str:
    """Measure every cell of ``grid``, each repeat the profile asks for, through the matrix engine.

    Each cell runs in a process of its own (``wsblock.engine.cell_main``) in this process's
    group (asv started this process in a group of its own and signals the
    whole group on timeout or interrupt); those children also die with this
    process (``PR_SET_PDEATHSIG``), as this process dies with asv, and stop
    their server and load processes when they go.

    Args:
        grid: The profile.
        directory: Where the records go (``DIR/cells/<cell_id>.json``).

    Returns:
        ``directory`` as a string, which asv pickles for the benchmarks.
    """
    # asv signals this process group on timeout and Ctrl-C; if asv itself is
    # killed outright, the kernel's SIGTERM stops the cells instead.
    die_with_parent()
    total = len(grid.matrix.cells)
    done = 0

    def progress(planned: PlannedCell, rec: dict[str, Any]) -> None:
        # One line per cell: asv's timeout counts seconds without output.
        nonlocal done
        done += 1
        status = "ok" if rec.get("status") == "ok" else f"failed: {rec.get('error')}"
        print(f"wsblock asv: cell {done}/{total} {planned.cell_id}: {status}", file=sys.stderr, flush=True)

    run_matrix(grid.matrix, directory, command=f"asv setup_cache (profile {grid.profile})",
               show_progress=False, after_cell=progress)
    return str(directory)


def cell_metrics(grid: Grid, run_dir: str | Path, key: CellKey) -> dict[str, float]:
    """Read the metrics of one cell from the records of a profile run.

    Args:
        grid: The profile.
        run_dir: The directory :func:`run_profile` wrote.
        key: The cell.

    Returns:
        :data:`METRICS` -> value, summarised over the cell's repeats as the
        metric declares (the median); NaN
        where a record measured nothing (no job finished in the window).

    Raises:
        NotImplementedError: If the profile has no such cell.
        RuntimeError: If no repeat of the cell produced a good record.
    """
    rows: list[dict[str, float]] = []
    problems: list[str] = []
    for planned in grid.planned(key):
        path = record_path(Path(run_dir), planned.cell_id)
        try:
            rec = record.load(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            problems.append(f"{planned.cell_id}: no usable record ({exc})")
            continue
        if not record.is_ok(rec):
            problems.append(f"{planned.cell_id}: {rec.get('error')}")
            continue
        rows.append(metrics.read_all(rec))
    if not rows:
        raise RuntimeError("cell not measured: " + "; ".join(problems))
    return {column: metrics.get(column).summarise(row[column] for row in rows) for column in METRICS}


GRID = build_grid(profile_name())
"""The grid of the chosen profile, fixed at import (asv discovers it so)."""


class CellBenchmark:
    """Base of the benchmarks that report a cell's metrics.

    :func:`tracking_classes` derives one subclass per class named in the
    metric declarations, with a ``track_`` method per metric. The parameters
    are the matrix axes; combinations the profile lacks and unsupported pairs
    are skipped.
    """

    params = GRID.params
    param_names = GRID.param_names

    def setup_cache(self) -> str:
        """Run the whole profile once per asv run and environment.

        asv runs this with a fresh temporary directory as the working
        directory, passes the result to every benchmark sharing it, and
        removes the directory when the last of them is done.
        """
        return run_profile(GRID, Path.cwd() / "wsblock-matrix")

    setup_cache.timeout = setup_cache_timeout(GRID.matrix)  # type: ignore[attr-defined]

    def setup(self, run_dir: str, *cell: Any) -> None:
        """Load this cell's metrics (skips cells the profile does not run)."""
        self.metrics = cell_metrics(GRID, run_dir, GRID.key(cell))


ASV_UNITS = {"share": "share", "per_s": "per second"}
"""asv unit of a metric unit that does not read well on its own."""


def _track(metric: metrics.Metric) -> Callable[..., float]:
    def track(self: CellBenchmark, run_dir: str, *cell: Any) -> float:
        return self.metrics[metric.column]

    track.__name__ = track.__qualname__ = metric.asv_method or "track"
    summary = "largest" if metric.aggregate == "max" else "median"
    track.__doc__ = (f"{metric.description[:1].upper()}{metric.description[1:]} ({metric.column}; the "
                     f"{summary} over the repeats the profile measured of the cell).")
    track.unit = ASV_UNITS.get(metric.unit, metric.unit)  # type: ignore[attr-defined]
    return track


def tracking_classes(module: str) -> dict[str, type]:
    """The benchmark classes of a ``benchmarks/`` module, from the metric declarations.

    asv discovers ``track_`` methods on classes at module level, so each
    ``bench_*.py`` module puts these into its namespace; a metric declared
    with ``asv="bench_keepalive.Keepalive.track_x"`` appears there without
    any code of its own.

    Args:
        module: The module's ``__name__`` (``benchmarks.bench_keepalive``).

    Returns:
        Class name -> a :class:`CellBenchmark` subclass with one ``track_``
        method per metric.
    """
    short = module.rsplit(".", 1)[-1]
    classes: dict[str, dict[str, Any]] = {}
    for metric in metrics.asv_tracked():
        if metric.asv_module == short:
            body = classes.setdefault(metric.asv_class or "", {"__module__": module})
            body[metric.asv_method or ""] = _track(metric)
    return {name: type(name, (CellBenchmark,), body) for name, body in classes.items()}
