"""``wsblock matrix``: run every cell of a matrix, resumably."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wsblock.commands import options
from wsblock.engine import contained
from wsblock.errors import UsageError


def add_parser(subparsers: Any) -> None:
    """Add ``matrix`` to the ``wsblock`` command."""
    matrix = subparsers.add_parser(
        "matrix", help="run a matrix of cells (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every cell of a matrix (a shipped profile or a TOML file) one at a time, each in "
                    "fresh processes, writing one record per cell and repeat, a manifest and a tidy "
                    "table cells.csv into --out. Run again with the same --out, it resumes.",
        epilog="examples:\n"
               "  wsblock matrix --profile quick --dry-run      # the cells, their count and time\n"
               "  wsblock matrix --profile quick --out results/runs/quick\n"
               "  wsblock matrix --config my.toml --out results/runs/mine --repeats 5\n\n"
               "Matrix files and profiles: docs/matrix.md.")
    source = matrix.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", help="a shipped profile: smoke, quick, default or stack")
    source.add_argument("--config", metavar="FILE.toml", help="a matrix file (see docs/matrix.md)")
    matrix.add_argument("--out", metavar="DIR",
                        help="output directory (reused to resume); required unless --dry-run")
    matrix.add_argument("--repeats", type=int, metavar="K", help="override the matrix's repeats")
    options.add_allow_stdlib_argument(matrix)
    matrix.add_argument("--dry-run", action="store_true",
                        help="list the cells, their count and estimated time, and exit (with --out: "
                             "also what is already recorded there); runs nothing, writes nothing")
    matrix.add_argument("--yes", action="store_true",
                        help="run a matrix beyond 2,000 cells or an estimated 24 h (refused otherwise)")
    matrix.add_argument("--quiet", action="store_true", help="no progress bar")
    contained.add_option(matrix)
    matrix.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="run up to N cells at once, each pinned to cores of its own; refused when "
                             "the cores cannot give every cell as many as it needs (default 1)")
    matrix.add_argument("--dask", metavar="ADDRESS",
                        help="measure the cells on the workers of this Dask scheduler (tcp://host:8786; "
                             "workers need --resources cells=N); records are written to --out")


def run(args: argparse.Namespace) -> int:
    """Run (or with ``--dry-run`` list) the cells of a matrix; 1 when a cell has no good record."""
    from wsblock import paths
    from wsblock.matrix import spec as matrix_spec
    from wsblock.matrix.directory import check_directory
    from wsblock.matrix.estimate import MAX_CELLS, check_size
    from wsblock.matrix.manifest import command_line
    from wsblock.matrix.run import run_matrix

    max_cells = None if args.yes else MAX_CELLS

    def load() -> Any:
        if args.profile:
            spec = matrix_spec.load_profile(args.profile, max_cells=max_cells)
        else:
            spec = matrix_spec.load_file(args.config, max_cells=max_cells)
        if args.repeats is not None:
            spec = matrix_spec.expand({**spec.definition, "repeats": args.repeats}, source=spec.source,
                                      max_cells=max_cells)
        return spec

    if args.dry_run:
        import workloads

        # Users' functions are read from their source: a dry run runs none of their modules' code.
        with workloads.outlines():
            return _dry_run(load(), None if args.out is None else Path(args.out))
    spec = load()
    if args.out is None:
        raise UsageError("the following arguments are required: --out (or --dry-run to list the cells)")
    if not args.out.strip():
        raise UsageError("--out must name a directory, got an empty path")
    out = Path(args.out)
    plan = check_directory(spec, out)
    if not args.yes:
        check_size(spec, plan)
    if not 1 <= args.parallel <= 256:
        raise UsageError(f"--parallel must be 1 to 256, got {args.parallel}")
    if args.dask is not None and args.parallel != 1:
        raise UsageError("--parallel applies to local cells; with --dask each worker's cell slots decide")
    if args.parallel > 1:
        from wsblock.matrix.cores import available_cores, core_slots

        slots = core_slots(args.parallel, [p.cell for p in plan.todo])
        spare = len(available_cores()) - sum(len(s) for s in slots)
        print(f"warning: {args.parallel} cells at once, pinned to cores {' | '.join(','.join(map(str, s)) for s in slots)}"
              f"{'; no core is left for the matrix itself or anything else on the machine' if spare <= 0 else ''}. "
              f"Cells that run side by side still share caches, memory bandwidth and the kernel: compare a "
              f"parallel run with a serial one (wsblock compare) before citing it; every record says "
              f"'parallel' and its cores.", file=sys.stderr, flush=True)
    from wsblock.engine import user_workloads

    user_workloads.preflight([planned.cell for planned in plan.todo], options.progress(args.quiet))
    paths.clean_stale()
    if not args.quiet:
        print(f"wsblock: {len(spec.cells)} cells planned, {plan.reused} already recorded, "
              f"{len(plan.todo)} to run, {plan.describe(args.parallel)}"
              f"{f'; {len(spec.skipped)} skipped as unsupported' if spec.skipped else ''}",
              file=sys.stderr, flush=True)
    outcome = run_matrix(spec, out, command=command_line(), show_progress=not args.quiet, parallel=args.parallel,
                         dask=args.dask)
    print(
        f"{outcome.ran} cells measured, {outcome.reused} already recorded, {outcome.failed} failed, "
        f"{outcome.skipped} skipped as unsupported; records in {out / 'cells'}, table {out / 'cells.csv'}"
    )
    over = outcome.overhead
    if over.get("cells"):
        calibrating = over.get("calibrate_s") or 0.0
        print(f"overhead {over['overhead_s']:,.1f} s of {over['wall_s']:,.1f} s "
              f"({over['overhead_share']:.1%}) outside warm-ups and windows, "
              f"{over['overhead_s'] / over['cells']:.1f} s per cell"
              + (f"; {calibrating:,.1f} s of it measuring calibrations this machine had not"
                 if calibrating >= 0.5 else ""))
    if not outcome.complete:
        parts = []
        if outcome.not_ok:
            parts.append(f"{len(outcome.not_ok)} failed ({_some(outcome.not_ok)})")
        if outcome.missing:
            parts.append(f"{len(outcome.missing)} records vanished ({_some(outcome.missing)})")
        print(f"error: {len(outcome.not_ok) + len(outcome.missing)} of {len(spec.cells)} cells "
              f"have no good record: {'; '.join(parts)}", file=sys.stderr)
        return 1
    return 0


def _dry_run(spec: Any, out: Path | None) -> int:
    # The cells on stdout (one id a line: a list to pipe), the sums on stderr.
    from wsblock.matrix.directory import check_directory
    from wsblock.matrix.estimate import plan_of

    for planned in spec.cells:
        print(planned.cell_id)
    for cell, reason in spec.skipped:
        print(f"skipped {cell.workload} x {cell.strategy}: {reason}")
    repeats = max((p.repeat for p in spec.cells), default=-1) + 1
    distinct = len({json.dumps(p.cell.to_dict(), sort_keys=True) for p in spec.cells})
    whole = plan_of(spec)
    skipped = f"; {len(spec.skipped)} skipped as unsupported" if spec.skipped else ""
    print(f"wsblock: {len(spec.cells)} cells ({distinct} x {repeats} repeat{'s' if repeats != 1 else ''}), "
          f"{whole.describe()} in all{skipped}", file=sys.stderr)
    if out is not None:
        plan = check_directory(spec, out, writing=False)
        print(f"wsblock: {out}: {plan.reused} already recorded (reused), {len(plan.todo)} to run, "
              f"{plan.describe()}", file=sys.stderr)
    return 0


def _some(names: list[str], shown: int = 3) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
