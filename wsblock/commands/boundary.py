"""``wsblock boundary``: search the survival boundary; ``model``, ``figure`` and ``score`` on what searches measured.

The search's cell options are those of ``wsblock run`` (every axis, the
window, the load), except that ``--work-ms`` is what the search varies, and
``--strategy`` and ``--ping-timeout`` may list several values (one search
each).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

from wsblock.commands import options
from wsblock.errors import UsageError

MAX_BUDGET = 200
"""Most cells one search may run."""


def add_parser(subparsers: Any) -> None:
    """Add ``boundary`` (and its ``model``, ``figure`` and ``score``) to the ``wsblock`` command.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "boundary", help="find the job length at which keepalive loses connections (adaptive search)",
        description="Search, on a log scale over work_ms, for the job length at which half (and 5 %, "
                    "95 %) of the original connections are lost, with repeats near the boundary; "
                    "every estimate with its bracketing interval. 'wsblock boundary model RUN' compares "
                    "the model of docs/boundary-model.md with the records of a run directory.")
    options.add_cell_arguments(parser)
    for action in parser._actions:
        if action.dest == "work_ms":
            # A search chooses its job lengths: --work-ms is not needed here.
            action.help = "refused: the search chooses the job lengths (bound them with --min-ms, --max-ms)"
    parser.add_argument("--out", metavar="DIR", help="run directory for the records and boundary.json "
                                                     "(reused to resume)")
    parser.add_argument("--budget", type=int, default=40, metavar="N",
                        help="most cells per search (default 40)")
    parser.add_argument("--max-repeats", type=int, default=3, metavar="K",
                        help="not used by the staircase design (accepted so older commands still run)")
    parser.add_argument("--min-ms", type=float, metavar="MS",
                        help="shortest job length tried (default: half of ping_timeout / job connections)")
    parser.add_argument("--max-ms", type=float, metavar="MS",
                        help="longest job length tried (default: twice ping_interval + ping_timeout)")
    parser.add_argument("--also-ping-timeout", type=options.axis_text(_axis("ping_timeout")), action="append",
                        default=[], metavar="S", help="search again at this ping_timeout (repeatable)")
    parser.add_argument("--also-strategy", action="append", default=[], metavar="S",
                        help="search again with this strategy (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the summary JSON instead of the lines")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="boundary_command", required=False, parser_class=type(parser))
    model = sub.add_parser("model", help="predicted against measured loss for every cell of a run directory")
    model.add_argument("dir", metavar="RUN", help="run directory (wsblock matrix or boundary output, or records)")
    model.add_argument("--out", metavar="OUTDIR", help="also write boundary_model.md and the figure here")
    model.add_argument("--near", action="store_true", help="list only the cells near the boundary")
    model.add_argument("--phases", type=int, default=200, metavar="N",
                       help="phase grid of the model (default 200)")
    figure = sub.add_parser("figure", help="figures of several searches (boundary against ping_timeout; "
                                            "against the rules ping_timeout / N and (ping_interval + ping_timeout) / 2N)",
                            description="Draw the estimates of several search directories (each with its "
                                        "boundary.json): boundary.png, one line per workload, strategy and "
                                        "number of job connections against ping_timeout; boundary_rules.png, "
                                        "every boundary against the job length each of the two rules "
                                        "ping_timeout / N and (ping_interval + ping_timeout) / 2N predicts "
                                        "(on the diagonal: the rule holds).")
    figure.add_argument("dirs", nargs="+", metavar="SEARCH", help="search directories (wsblock boundary --out)")
    figure.add_argument("--out", metavar="OUTDIR", required=True, help="where to write boundary.png, boundary_rules.png and their .svg")
    scored = sub.add_parser(
        "score", help="the model against the simple rules, out of sample, per repeat (Brier, log loss)",
        description="Score the keepalive model of docs/boundary-model.md and the simple rules (longest stall "
                    "against ping_interval + ping_timeout, job connections x job length against ping_timeout, "
                    "fixed and with a fitted threshold, and the base rate) on every repeat of the run and "
                    "search directories given, leaving one directory out at a time: Brier score and log loss "
                    "over all repeats and over those whose longest stall lies between ping_timeout and "
                    "ping_interval + ping_timeout.")
    scored.add_argument("dirs", nargs="*", metavar="DIR",
                        help="run or search directories, or directories holding them "
                             "(default results/reference)")
    scored.add_argument("--phases", type=int, default=100, metavar="N", help="phase grid of the model (default 100)")
    scored.add_argument("--json", action="store_true", help="print the scores as JSON")


def _axis(name: str) -> Any:
    from wsblock.schema import axes

    return axes.get(name)


def _refuse_uncalibrated(name: str) -> None:
    """Refuse a user's function without ``units``: the search varies the job length, which it cannot take."""
    import workloads

    workload = workloads.get(name)
    if isinstance(workload, workloads.FunctionWorkload) and not workload.calibrated:
        raise UsageError(f"{name} has no units parameter, so its job length cannot be varied: boundary searches "
                         f"over work_ms, which a function gets as units (declare a parameter named units and "
                         f"do that much work per call)")


def _model(args: argparse.Namespace) -> int:
    """Print (and with ``--out`` write) the model check of a run directory."""
    from wsblock.boundary import evaluate
    from wsblock.report import fig_boundary
    from wsblock.schema import rundir

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UsageError(f"{args.dir} is not a directory")
    if not 10 <= args.phases <= 10_000:
        raise UsageError(f"--phases must be 10 to 10,000, got {args.phases}")
    records = rundir.ok_records(directory)
    if not records:
        raise UsageError(f"{args.dir} holds no readable record")
    rows = evaluate.model_rows(records, phases=args.phases)
    table = fig_boundary.model_table(rows, only_near=args.near)
    print(table)
    if args.out:
        from wsblock import atomic

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out / "boundary_model.md", f"# Keepalive model against {directory}\n\n{table}\n")
        fig_boundary.model_figure(rows, out)
        print(f"wrote {out / 'boundary_model.md'} and {out / 'boundary_model.png'}", file=sys.stderr)
    return 0


def _score(args: argparse.Namespace) -> int:
    """Print the model's and the rules' out-of-sample scores over repeats."""
    import json

    from wsblock.boundary import score as bs

    names = args.dirs or [str(bs.DEFAULT_ROOT)]
    for name in names:
        if not Path(name).is_dir():
            raise UsageError(f"{name} is not a directory")
    if not 10 <= args.phases <= 10_000:
        raise UsageError(f"--phases must be 10 to 10,000, got {args.phases}")
    trials = bs.trials_from([Path(n) for n in names], phases=args.phases)
    if not trials:
        raise UsageError(f"no repeat to score in {', '.join(names)} (repeats that kept or lost their "
                         f"connections under a keepalive that can fail, on the asyncio server)")
    overall = bs.score(trials)
    band = bs.score(trials, band_only=True) if any(t.in_band for t in trials) else None
    if args.json:
        print(json.dumps({"all": overall.to_dict(), "band": None if band is None else band.to_dict()}, indent=2))
        return 0
    print("every repeat:\n")
    print(bs.format_score(overall))
    print("\nrepeats whose longest stall lies between ping_timeout and ping_interval + ping_timeout:\n")
    print("no such repeat" if band is None else bs.format_score(band))
    return 0


def _figure(args: argparse.Namespace) -> int:
    """Draw the estimates of several searches in one figure."""
    from wsblock import inputs
    from wsblock.report import fig_boundary

    estimates: list[dict[str, Any]] = []
    for name in args.dirs:
        path = Path(name) / "boundary.json"
        try:
            summary = inputs.read_json(path, "boundary.json")
        except UsageError as exc:
            raise UsageError(f"{name}: no readable boundary.json ({exc})") from None
        found = summary.get("estimates") if isinstance(summary, dict) else None
        if not isinstance(found, list):
            raise UsageError(f"{path} holds no estimates")
        estimates += [e for e in found if isinstance(e, dict)]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = fig_boundary.boundary_figure(estimates, out) + fig_boundary.rules_figure(estimates, out)
    print(f"{len(estimates)} estimates from {len(args.dirs)} searches: "
          + ", ".join(str(p) for p in written if p.suffix == ".png"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the searches and print their estimates; 1 when a search measured no cell."""
    from wsblock import paths
    from wsblock.boundary.plan import fixed_window, plan_line
    from wsblock.boundary import run as runmod
    from wsblock.report import fig_boundary

    if args.boundary_command == "model":
        return _model(args)
    if args.boundary_command == "figure":
        return _figure(args)
    if args.boundary_command == "score":
        return _score(args)
    if not 1 <= args.budget <= MAX_BUDGET:
        raise UsageError(f"--budget must be 1 to {MAX_BUDGET}, got {args.budget}")
    if not 1 <= args.max_repeats <= 20:
        raise UsageError(f"--max-repeats must be 1 to 20, got {args.max_repeats}")
    if args.work_ms is not options.NOT_GIVEN:
        raise UsageError("--work-ms is what the search varies; bound it with --min-ms and --max-ms")
    args.work_ms = 1.0  # the search replaces it; the template only needs a valid value
    template = options.cell_from_args(args).validate()
    _refuse_uncalibrated(template.workload)
    templates = [template]
    for strategy in args.also_strategy:
        templates.append(dataclasses.replace(template, strategy=strategy).validate())
    for timeout in args.also_ping_timeout:
        for base in list(templates[:1 + len(args.also_strategy)]):
            templates.append(dataclasses.replace(base, ping_timeout=timeout).validate())
    for t in templates:
        if t.ping_interval is None or (t.ping_timeout is None and t.handler_ping_timeout is None):
            raise UsageError("no keepalive can fail without ping_interval and a ping_timeout: nothing to search")
    templates = [fixed_window(t) for t in templates]
    low = args.min_ms
    high = args.max_ms
    for value, name in ((low, "--min-ms"), (high, "--max-ms")):
        if value is not None and not 0.1 <= value <= 600_000:
            raise UsageError(f"{name} must be 0.1 to 600,000 ms, got {value:g}")
    if low is not None and high is not None and low >= high:
        raise UsageError("--min-ms must be below --max-ms")
    for t in templates:
        lo, hi = runmod.default_range(t)
        dataclasses.replace(t, work_ms=round(high if high is not None else hi, 1)).validate()
    if not args.out or not args.out.strip():
        raise UsageError("--out must name a directory for the records")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    from wsblock.engine import user_workloads

    # The trial calls of `wsblock run`, before any cell: a function that raises is refused here.
    user_workloads.preflight(templates, options.progress(args.quiet))
    paths.clean_stale()
    if not args.quiet:
        print(f"wsblock: {plan_line(templates, args.budget)}", file=sys.stderr, flush=True)
    command = "wsblock " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from datetime import datetime, timezone

    from wsblock.analysis import tidy
    from wsblock.schema import rundir

    out.mkdir(parents=True, exist_ok=True)
    try:
        # One writer per run directory, as for a matrix.
        with rundir.lock(out, command=command, started_utc=datetime.now(timezone.utc).isoformat(timespec="seconds")):
            result = runmod.run_search(templates, out, budget=args.budget, command=command, low_ms=low,
                                       high_ms=high, max_repeats=args.max_repeats, quiet=args.quiet)
            fig_boundary.boundary_figure(result["estimates"], out)
            if any(out.joinpath("cells").glob("*.json")):
                tidy.write_csv(out)  # the same tidy table as a matrix's, for the report and notebooks
    except rundir.Busy as exc:
        raise UsageError(f"{exc}; wait for it to end or choose another --out") from None
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    else:
        for entry in result["estimates"]:
            print("\n".join(runmod.format_estimate(entry)))
        print(f"records in {out / 'cells'}, summary {out / runmod.SUMMARY}, figure {out / 'boundary.png'}")
    empty = [e for e in result["estimates"] if not e.get("cells")]
    if empty:
        names = ", ".join(f"{e['workload']} x {e['strategy']}" for e in empty)
        print(f"error: {len(empty)} of {len(result['estimates'])} searches measured no cell ({names}); "
              f"the causes are in the records in {out / 'cells'}", file=sys.stderr)
        return 1
    return 0

