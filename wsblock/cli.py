"""The ``wsblock`` command line.

Exit codes: 0 when the work ran (disconnects are results, not errors); 2 with
a one-line ``error: ...`` for bad input, with nothing written; 1 when the
harness itself failed; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from wsblock import __version__
from wsblock.errors import CellFailed, HarnessError, UsageError
from wsblock.engine import contained


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors follow the suite's one-line convention too.
        raise UsageError(message)


_NOT_GIVEN: Any = object()
"""Default of options whose absence matters (``None`` already means "none")."""


def _workload_param(text: str) -> tuple[str, Any]:
    # The value as a matrix file would hold it: an integer, a number,
    # true/false, or text. The workload checks it (the built-in ones take
    # integers; a user's function, keyword arguments).
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for convert in (int, float):
        try:
            return key.strip(), convert(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return key.strip(), value.lower() == "true"
    return key.strip(), value


def _axis_text(axis: Any) -> Any:
    # The option's text to a value: the declared converter, else by type
    # (``float | None`` reads a number: leaving the option out is the None).
    kinds = typing.get_args(axis.kind) or (axis.kind,)
    convert = axis.from_text or (float if float in kinds else int if int in kinds else str)
    shown = axis.metavar or "a value"

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {shown}, got {text!r}") from None
    return parse


def _add_axis_arguments(parser: argparse.ArgumentParser) -> None:
    # One option per declared axis. An option not given leaves the field's
    # default to CellConfig (_NOT_GIVEN), so a default lives in one place.
    from wsblock.schema import axes

    for axis in axes.AXES:
        if axis.default is axes.REQUIRED:
            default = "required"
        else:
            default = f"default {axis.label(axis.default)}"
        if axis.kind is bool:
            # A flag that says the opposite of the default.
            said, other = ("no", "yes") if axis.default else ("yes", "no")
            parser.add_argument(axis.cli_option, dest=axis.name, action="store_const",
                                const=not axis.default, default=_NOT_GIVEN,
                                help=f"{axis.description} (default {other}; this option: {said})")
            continue
        note = _AXIS_NOTES.get(axis.name, "")
        parser.add_argument(axis.cli_option, dest=axis.name, type=_axis_text(axis), default=_NOT_GIVEN,
                            metavar=axis.metavar, help=f"{axis.description} ({default}{note})")


_AXIS_NOTES = {"ping_timeout": "; refused with --ping-interval none, where it has no effect"}
"""What an axis's ``--help`` says beyond its declaration: rules between axes."""


def add_allow_stdlib_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-stdlib-functions`` to a command that runs users' functions."""
    from workloads.locate import ALLOW_OPTION

    parser.add_argument(ALLOW_OPTION, dest="allow_stdlib_functions", action="store_true",
                        help="run a function of the standard library or builtins named as a workload "
                             "(os:system, shutil:rmtree); refused without this option, even when a file names it")


def _add_cell_arguments(parser: argparse.ArgumentParser) -> None:
    from wsblock.engine.config import CellConfig, default_start_method
    from wsblock.engine.sizing import LONGEST_MAX_WINDOW_S, MIN_WINDOW_S

    d = CellConfig("", 1, "")
    _add_axis_arguments(parser)
    parser.add_argument("--cell", metavar="FILE.json",
                        help="read the whole cell from a JSON file (a record's 'params'); "
                             "replaces the other cell options. The function it names is imported and "
                             "called: use only files you trust, as you would a conftest.py")
    add_allow_stdlib_argument(parser)
    parser.add_argument("--close-timeout", type=float, default=d.close_timeout, metavar="S",
                        help=f"closing handshake timeout (default {d.close_timeout:g})")
    parser.add_argument("--duration", type=float, default=d.duration, metavar="S",
                        help="measurement window in seconds (default: sized to what the cell "
                             "must observe, at most --max-window)")
    parser.add_argument("--max-window", type=float, default=d.max_window, metavar="S",
                        help=f"longest window sized to what the cell must observe, {MIN_WINDOW_S:g} to "
                             f"{LONGEST_MAX_WINDOW_S:g} s; a cell that needs more is cut to it and cannot "
                             f"say kept (default {d.max_window:g}: 10 minutes)")
    parser.add_argument("--min-cycles", type=int, default=d.min_cycles, metavar="N",
                        help=f"keepalive cycles each connection must be at risk before a cell "
                             f"says it kept them (default {d.min_cycles})")
    parser.add_argument("--warmup", type=float, default=d.warmup, metavar="S",
                        help=f"load before the window opens, in seconds (default {d.warmup:g})")
    parser.add_argument("--job-connections", type=int, default=d.job_connections, metavar="N",
                        help=f"connections with one job in flight each (default {d.job_connections})")
    parser.add_argument("--observers", type=int, default=d.observers, metavar="M",
                        help=f"echo connections on a fixed schedule (default {d.observers})")
    parser.add_argument("--echo-interval-ms", type=float, default=d.echo_interval_ms, metavar="MS",
                        help=f"each observer's send period (default {d.echo_interval_ms:g})")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="thread/process pool size (default: one per job connection)")
    parser.add_argument("--chunk-ms", type=float, default=d.chunk_ms, metavar="MS",
                        help=f"step length of the chunked strategy (default {d.chunk_ms:g})")
    parser.add_argument("--start-method", default=default_start_method(),
                        help=f"process pool start method (default {default_start_method()})")
    parser.add_argument("--param", type=_workload_param, action="append", default=[],
                        metavar="KEY=VALUE", help="workload parameter, e.g. chunksize=5000, or a keyword "
                                                  "argument of a user's function (repeatable)")
    parser.add_argument("--host", default=d.host, help=f"server bind address (default {d.host})")
    parser.add_argument("--port", type=int, default=d.port, help="server port (default 0: any free port)")
    parser.add_argument("--stall-ms", type=float, default=d.stall_ms, metavar="MS",
                        help=f"loop gap that counts as a stall (default {d.stall_ms:g})")


DESCRIPTION = """\
Measure what blocking work does to a websockets (asyncio) server: a real
server does the work inline, in cooperative chunks, in a thread pool or in a
process pool, while a separate load process holds connections open with
keepalive pings; wsblock records disconnects, event-loop lag, echo latency,
throughput, CPU and memory, with the environment needed to cite the numbers."""

EPILOG = """\
examples:
  wsblock run --workload pure_python --work-ms 3000 --strategy inline \\
      --ping-interval 1 --ping-timeout 1 --out results/one-cell/inline.json
  wsblock matrix --profile quick --dry-run        # the cells and the time they take
  wsblock matrix --profile quick --out results/runs/quick
  wsblock report results/runs/quick               # -> results/runs/quick/report/

'wsblock COMMAND --help' describes each command. Documentation: README.md
and docs/ in the source tree (docs/matrix.md: matrices and profiles,
docs/record.md: the record, docs/comparisons.md: repeats and the change test).
exit status: 0 done, 1 harness failure, 2 bad input, 130 interrupted."""


_Raw = argparse.RawDescriptionHelpFormatter


def _command_list(parser: argparse.ArgumentParser) -> str:
    # The commands with their one-line help, as --help lists them.
    lines = ["commands:"]
    for action in parser._subparsers._group_actions if parser._subparsers else []:  # noqa: SLF001
        for choice in getattr(action, "_choices_actions", []):
            lines.append(f"  {choice.dest:<10} {choice.help}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``wsblock`` command."""
    parser = _Parser(prog="wsblock", description=DESCRIPTION, formatter_class=_Raw,
                     usage="%(prog)s [-h] [--version] COMMAND ...")
    parser.add_argument("--version", action="version", version=f"wsblock {__version__}")
    # Not required here: a bare ``wsblock`` gets the usage and the command
    # list before its error line (see main). The list is written below, once
    # every command is registered, with argparse's own listing suppressed.
    sub = parser.add_subparsers(dest="command", help=argparse.SUPPRESS, parser_class=_Parser)

    run = sub.add_parser(
        "run", help="run one cell and print its summary", formatter_class=_Raw,
        description="Start a server with the workload and strategy, hold connections open with keepalive "
                    "pings from a separate load process, measure for a window, stop every process, and "
                    "print a summary (--out: also the full record).",
        epilog="examples:\n"
               "  wsblock run --workload pure_python --work-ms 3000 --strategy inline \\\n"
               "      --ping-interval 1 --ping-timeout 1 --out results/one-cell/inline.json\n"
               "  wsblock run --workload numpy --work-ms 500 --strategy thread --duration 10\n"
               "  wsblock run --cell results/one-cell/inline.json --json   # again, from a record's params\n\n"
               "Every option and its bounds: docs/run.md; axes: docs/vocabulary.md.")
    _add_cell_arguments(run)
    run.add_argument("--out", metavar="FILE.json", help="write the record here (atomically)")
    run.add_argument("--json", action="store_true", help="print the record instead of the summary")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    contained.add_option(run)
    # For wsblock matrix: a cell's process started before its turn waits for
    # "go" on stdin (end of input: it exits without running), and says on
    # stdout when its measurements are in hand.
    run.add_argument("--standby", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--events", action="store_true", help=argparse.SUPPRESS)

    sub.add_parser("list", help="list workloads and strategies",
                   description="List the workloads (with their parameters) and the strategies, "
                               "and which pairs are unsupported.")

    matrix = sub.add_parser(
        "matrix", help="run a matrix of cells (resumable)", formatter_class=_Raw,
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
    add_allow_stdlib_argument(matrix)
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

    cal = sub.add_parser(
        "calibrate", help="show or refresh this machine's calibration", formatter_class=_Raw,
        description="Show the stored cost line of each workload on this machine (measured on first "
                    "use), measure it again (--force), or check that it still holds (--check).",
        epilog="examples:\n  wsblock calibrate\n  wsblock calibrate --check pure_python")
    cal.add_argument("workloads", nargs="*", help="workloads to calibrate (default: all)")
    cal.add_argument("--force", action="store_true", help="measure again even if stored")
    cal.add_argument("--check", action="store_true",
                     help="measure again and say whether the stored calibration still holds (stores nothing)")

    findings = sub.add_parser(
        "findings", help="check or look up numbers quoted in a findings document", formatter_class=_Raw,
        description="Every number in a findings document carries the query that computes it from the "
                    "records (<!-- q: ... -->); check recomputes them all, query prints one.",
        epilog="examples:\n  wsblock findings check results/reference/FINDINGS.md\n"
               "  wsblock findings query results/reference/default lag_p99_ms workload=pure_python "
               "strategy=thread")
    fsub = findings.add_subparsers(dest="findings_command", required=True, parser_class=_Parser)
    fcheck = fsub.add_parser("check", help="recompute every quoted number from the records")
    fcheck.add_argument("document", help="a markdown file with <!-- q: ... --> queries")
    ffill = fsub.add_parser("fill", help="replace ?N<!-- q: ... --> placeholders with values (N decimals)")
    ffill.add_argument("document")
    fquery = fsub.add_parser("query", help="print the value of one query")
    fquery.add_argument("query", nargs="+", help="RUN_DIR COLUMN key=value ... [agg=NAME] [allow=inconclusive] (docs/findings.md)")
    fquery.add_argument("--decimals", type=int, default=2, help="decimals to print (default 2)")

    from wsblock.report.cli import add_parsers as add_report_parsers

    add_report_parsers(sub)
    from wsblock.selftest.command import add_parsers as add_selftest_parsers

    add_selftest_parsers(sub)
    from wsblock.boundary.cli import add_parsers as add_boundary_parsers

    add_boundary_parsers(sub)
    from wsblock.advise.profile_command import add_parsers as add_profile_parsers

    add_profile_parsers(sub)

    parser.epilog = f"{_command_list(parser)}\n\n{EPILOG}"
    return parser


def _cell_from_args(args: argparse.Namespace) -> Any:
    from wsblock.engine.config import CellConfig

    if args.cell:
        from wsblock import inputs

        data = inputs.read_json(args.cell, "cell file")
        if not isinstance(data, dict):
            raise UsageError(f"cell file {args.cell} must hold a JSON object")
        data = data.get("params", data)
        return CellConfig.from_dict(data)
    from wsblock.schema import axes

    given = {a.name: getattr(args, a.name) for a in axes.AXES if getattr(args, a.name) is not _NOT_GIVEN}
    if "workload" in given and "work_ms" not in given:
        import workloads

        try:
            chosen = workloads.lookup(given["workload"])
        except workloads.WorkloadError as exc:
            raise UsageError(str(exc)) from None
        if isinstance(chosen, workloads.FunctionWorkload) and not chosen.calibrated:
            given["work_ms"] = None  # called once per job: no target length
    for axis in axes.AXES:
        if axis.default is axes.REQUIRED and axis.name not in given:
            raise UsageError(f"the following arguments are required: {axis.cli_option}")
    if "ping_timeout" in given:
        from wsblock.schema.rules import ping_timeout_without_pings

        refused = ping_timeout_without_pings(given.get("ping_interval", axes.get("ping_interval").default),
                                             given["ping_timeout"])
        if refused:
            raise UsageError(refused)
    params: dict[str, Any] = {}
    for key, value in args.param:
        params[key] = value
    return CellConfig(
        **given,
        close_timeout=args.close_timeout,
        duration=args.duration,
        max_window=args.max_window,
        warmup=args.warmup,
        job_connections=args.job_connections,
        observers=args.observers,
        echo_interval_ms=args.echo_interval_ms,
        workers=args.workers,
        chunk_ms=args.chunk_ms,
        start_method=args.start_method,
        workload_params=params,
        host=args.host,
        port=args.port,
        stall_ms=args.stall_ms,
        min_cycles=args.min_cycles,
    )


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    def say(message: str) -> None:
        if not quiet:
            print(f"wsblock: {message}", file=sys.stderr, flush=True)

    return say


def check_out_file(text: str) -> Path:
    """Check, before any work, that a record can be written to ``text``.

    See :func:`wsblock.inputs.check_out_file`.

    Raises:
        UsageError: An empty path, a directory, a special file, a path
            under ``/proc``, ``/sys`` or ``/dev``, a name too long, or one
            that cannot be written.
    """
    from wsblock import inputs

    return inputs.check_out_file(text)


PATH_ARGUMENTS: dict[str, dict[str, str]] = {
    "run": {"cell": "json", "out": "out_file"},
    "matrix": {"config": "text", "out": "out_run"},
    "report": {"dir": "in_dir", "out": "out_dir"},
    "advise": {"out": "out_run"},
    "profile": {"out": "out_file"},
    "compare": {"dir_a": "in_dir", "dir_b": "in_dir", "out": "out_file"},
    "findings": {"document": "document"},
    "selftest": {"out": "out_file"},
    "boundary": {"cell": "json", "out": "out_dir", "dir": "in_dir"},
}
"""The path arguments of each command (argparse ``dest``) and what each must be."""


def check_paths(args: argparse.Namespace) -> None:
    """Check every path argument of the command, before anything starts.

    Files read must be regular files of a bounded size outside ``/proc``,
    ``/sys`` and ``/dev``; places written must be writable and named within
    the file system's limits (:mod:`wsblock.inputs`). A report's default
    output is inside its run directory, which is checked too.

    Raises:
        UsageError: Naming the first path refused.
    """
    from wsblock import inputs

    for dest, kind in PATH_ARGUMENTS.get(args.command or "", {}).items():
        value = getattr(args, dest, None)
        if value is None or value is _NOT_GIVEN:
            continue
        for text in value if isinstance(value, list) else [value]:
            option = f"--{dest.replace('_', '-')}" if dest in ("out", "cell", "config") else dest.upper()
            if kind == "json":
                inputs.check_file(text, f"{dest} file", inputs.MAX_JSON_BYTES)
            elif kind in ("text", "document"):
                inputs.check_file(text, "matrix file" if kind == "text" else "document")
                if kind == "document" and getattr(args, "findings_command", None) == "fill":
                    inputs.check_out_file(text, "document")
            elif kind == "in_dir":
                inputs.check_in_dir(text, option)
            elif kind == "out_file":
                inputs.check_out_file(text, option)
            elif kind in ("out_dir", "out_run") and not getattr(args, "dry_run", False):
                # A dry run only reads what is recorded there.
                inputs.check_out_dir(text, option, subdirs=("cells",) if kind == "out_run" else ())
    if args.command == "report" and getattr(args, "out", None) is None and not getattr(args, "asv", False):
        inputs.check_out_dir(str(Path(args.dir) / "report"), "DIR/report")
    if args.command == "findings" and getattr(args, "findings_command", None) == "query" \
            and not 0 <= args.decimals <= 12:
        raise UsageError(f"--decimals must be 0 to 12, got {args.decimals}")


def _cmd_run(args: argparse.Namespace) -> int:
    from wsblock import atomic, paths
    from wsblock.engine.ahead import discard_ahead, start_ahead

    if args.standby:
        # Its server and load interpreters start first, beside this
        # process's imports, and wait (idle, no socket, no pool) for their
        # configs.
        start_ahead()
    from wsblock.engine.runner import run_cell
    from wsblock.engine.summary import summarize

    try:
        out = check_out_file(args.out) if args.out is not None else None
        cell = _cell_from_args(args)
        if args.standby and sys.stdin.readline().strip() != "go":
            return 0  # never given its turn: nothing was configured, nothing measured
        paths.clean_stale()

        def measured() -> None:
            # On the events pipe a matrix gave this process (stdout otherwise).
            from wsblock.engine.proc import emit

            emit({"event": "measured"})

        try:
            rec = run_cell(cell, progress=_progress(args.quiet), on_measured=measured if args.events else None)
        except CellFailed as exc:
            # The work failed the cell (a job raised, exited or hung): a
            # failed record says why, with what the work wrote.
            from wsblock import meta
            from wsblock.schema import record

            rec = record.failed(params=cell.to_dict(), error=str(exc), exit_code=1, stderr_tail=[],
                                meta=meta.environment())
            rec["user_output"] = exc.user_output
    finally:
        discard_ahead()
    if out is not None:
        try:
            atomic.write_json(out, rec)
        except OSError as exc:
            raise HarnessError(f"the cell ran but its record could not be written to {out}: {exc}") from None
    if args.json:
        print(json.dumps(rec, indent=2))
    else:
        print(summarize(rec))
        if out is not None:
            print(f"record: {out}")
    if rec.get("status") == "failed":
        print(f"error: the cell measured nothing: {rec.get('error')}", file=sys.stderr)
        return 1
    return 0


def _cmd_list(_: argparse.Namespace) -> int:
    import workloads
    from wsblock.engine import strategies

    print("workloads:")
    for w in workloads.all_workloads():
        print(f"  {w.name:<12} {w.description}")
        print(f"  {'':<12} unit: {w.unit}; GIL: {w.gil}")
        for p in w.params:
            print(f"  {'':<12} --param {p.name}=N  {p.help} (default {p.default}, {p.minimum}..{p.maximum})")
    print("  or your own function: --workload package.module:function [--param key=value ...]")
    print("strategies:")
    for name in strategies.names():
        cls = strategies.get(name)
        refused = [w.name for w in workloads.all_workloads() if cls.unsupported_reason(w)]
        extra = f" (not for: {', '.join(refused)})" if refused else ""
        print(f"  {name:<12} {cls.description}{extra}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import workloads
    from wsblock.engine import calibration

    names = args.workloads or workloads.names()
    for name in names:
        if name not in workloads.names():
            raise UsageError(f"unknown workload {name!r} (choose from {', '.join(workloads.names())})")
    if args.check:
        return _check_calibration(names)
    for name in names:
        w = workloads.get(name)
        cal = calibration.get(name, w.resolve_params({}), force=args.force, progress=_progress(False))
        print(f"{name:<12} 1000 ms = {cal.units_for(1000):,} {w.unit} ({_duration(cal.ms_per_unit)} each); "
              f"overhead {cal.overhead_ms:.2f} ms; measured {cal.measured_at}")
    return 0


def _duration(ms: float) -> str:
    """A short time in the unit that reads best: ``60.2 ns``, ``1.45 µs``, ``4.74 ms``."""
    for scale, unit in ((1e-3, "ns"), (1.0, "µs"), (1e3, "ms")):
        if ms * 1e3 / scale < 1000:
            return f"{ms * 1e3 / scale:.3g} {unit}"
    return f"{ms / 1e3:.3g} s"


def _check_calibration(names: list[str]) -> int:
    import workloads
    from wsblock.engine import calibration

    for name in names:
        w = workloads.get(name)
        result = calibration.check(name, w.resolve_params({}))
        fresh = result.fresh
        now = f"now {fresh.ms_per_unit:.6g} ms per unit (load average {fresh.loadavg})"
        if result.stored is None:
            print(f"{name:<12} no stored calibration; {now}")
            continue
        old = result.stored
        verdict = "holds" if result.holds else "does not hold"
        print(f"{name:<12} {verdict}: {result.drift:+.1%} at {int(fresh.points[-1][0]):,} {w.unit}; stored "
              f"{old.ms_per_unit:.6g} ms per unit ({old.measured_at}, load average {old.loadavg}), {now}")
    return 0


def _cmd_matrix(args: argparse.Namespace) -> int:
    from wsblock import paths
    from wsblock.matrix import spec as matrix_spec
    from wsblock.matrix.run import (MAX_CELLS, check_directory, check_size, command_line,
                                    run_matrix)

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

    user_workloads.preflight([planned.cell for planned in plan.todo], _progress(args.quiet))
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
    from wsblock.matrix.run import check_directory, plan_of

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


def _cmd_findings(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wsblock.analysis import findings

    if args.findings_command == "query":
        lines, note = findings.lines(" ".join(args.query), Path.cwd(), args.decimals)
        print("\n".join(lines))
        if note:
            print(f"note: findings check refuses this quote: {note}", file=sys.stderr)
        return 0
    if args.findings_command == "fill":
        print(f"{findings.fill(args.document)} placeholders filled")
        return 0
    checked, mismatches = findings.check(args.document)
    for m in mismatches:
        print(f"{args.document}:{m.line}: {m.describe()}")
    wrong = sum(1 for m in mismatches if not m.agrees)
    refused = sum(1 for m in mismatches if m.refused)
    print(f"{checked} quoted numbers checked, {wrong} do not match the records, "
          f"{refused} are refused (survival figures over inconclusive or legacy rows, or connection-level "
          "intervals pooled over cells)")
    return 1 if mismatches else 0


COMMANDS = {"findings": _cmd_findings, "run": _cmd_run, "list": _cmd_list, "calibrate": _cmd_calibrate, "matrix": _cmd_matrix}


class _Terminated(Exception):
    pass


def _contain_user_functions(args: argparse.Namespace) -> None:
    # A user's module is imported in a process of its own, under the trial
    # limit, before this process imports it: nothing it does at import can
    # end or hang the command.
    from workloads import functions
    from wsblock.engine import contained

    if getattr(args, "trial_timeout", None) is not None:
        contained.set_limit(args.trial_timeout)
    functions.check_imports_with(contained.check_import)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsblock`` command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """

    if argv is None:
        # The command itself (not a call from Python): a guardian process
        # ends whatever it starts, even if it is killed outright.
        from wsblock.engine.reaper import guard

        guard(sys.argv[1:])

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must stop a run even when started from a context that ignores
    # SIGINT (a background job of a script, for example).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Set by an option or a matrix file for this command only (main may be called again in one process).
    from workloads import locate

    inherited = locate.stdlib_allowed()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            # A bare ``wsblock``: what could have been typed, then the error.
            print(parser.format_usage() + "\n" + _command_list(parser) + "\n", file=sys.stderr)
            raise UsageError("a command is required; 'wsblock --help' describes them")
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        if getattr(args, "allow_stdlib_functions", False):
            locate.allow_stdlib(locate.ALLOW_OPTION)
        check_paths(args)
        _contain_user_functions(args)
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (HarnessError, OSError) as exc:
        # The harness could not finish: a write that failed under the
        # command (a full disk, a file system gone read-only) says where.
        # Cells still in flight (a parallel matrix) end with the command.
        from wsblock.engine.proc import stop_all
        from wsblock.inputs import describe_os_error

        stop_all(grace=1.0)
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"error: harness failure: {reason}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminated):
        from wsblock.engine.proc import stop_all

        left = stop_all(grace=1.0)
        if left:
            print(f"error: interrupted; {len(left)} processes of the run are still running "
                  f"(pids {' '.join(map(str, left))})", file=sys.stderr)
        else:
            print("error: interrupted; every process of the run was stopped", file=sys.stderr)
        return 130
    finally:
        if not inherited:
            locate.allow_stdlib(None)
