"""Options and checks that several ``wsblock`` commands share.

The cell options of ``wsblock run`` (one per declared axis, and the
window, load and server settings), reading a cell from them, the options of
commands that run users' functions, and the checks of every path argument
before anything starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from wsblock.errors import UsageError


NOT_GIVEN: Any = object()
"""Default of options whose absence matters (``None`` already means "none")."""


def workload_param(text: str) -> tuple[str, Any]:
    """Read ``--param KEY=VALUE``: the value as a matrix file would hold it.

    An integer, a number, true/false, or text. The workload checks it (the
    built-in ones take integers; a user's function, keyword arguments).
    """
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


def axis_text(axis: Any) -> Any:
    """The ``type=`` of an axis's option: its declared converter, else one by the axis's type.

    ``float | None`` reads a number: leaving the option out is the None.
    """
    kinds = typing.get_args(axis.kind) or (axis.kind,)
    convert = axis.from_text or (float if float in kinds else int if int in kinds else str)
    shown = axis.metavar or "a value"

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {shown}, got {text!r}") from None
    return parse


def add_axis_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per declared axis (:data:`wsblock.schema.axes.AXES`).

    An option not given is :data:`NOT_GIVEN`, which leaves the field's
    default to ``CellConfig``, so that a default lives in one place.
    """
    from wsblock.schema import axes, settings

    for axis in axes.AXES:
        if axis.default is axes.REQUIRED:
            default = "required"
        else:
            default = f"default {axis.label(axis.default)}"
        if axis.kind is bool:
            # A flag that says the opposite of the default.
            said, other = ("no", "yes") if axis.default else ("yes", "no")
            parser.add_argument(axis.cli_option, dest=axis.name, action="store_const",
                                const=not axis.default, default=NOT_GIVEN,
                                help=f"{axis.description} (default {other}; this option: {said})")
            continue
        note = "".join(f"; {text}" for text in settings.notes(axis.name))
        parser.add_argument(axis.cli_option, dest=axis.name, type=axis_text(axis), default=NOT_GIVEN,
                            metavar=axis.metavar, help=f"{axis.description} ({default}{note})")


def add_allow_stdlib_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-stdlib-functions`` to a command that runs users' functions."""
    from workloads.locate import ALLOW_OPTION

    parser.add_argument(ALLOW_OPTION, dest="allow_stdlib_functions", action="store_true",
                        help="run a function of the standard library or builtins named as a workload "
                             "(os:system, shutil:rmtree); refused without this option, even when a file names it")


def add_cell_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of one cell (``wsblock run``'s): every axis, ``--cell``, the window, load and server."""
    from wsblock.schema import settings

    add_axis_arguments(parser)
    parser.add_argument("--cell", metavar="FILE.json",
                        help="read the whole cell from a JSON file (a record's 'params'); "
                             "replaces the other cell options. The function it names is imported and "
                             "called: use only files you trust, as you would a conftest.py")
    add_allow_stdlib_argument(parser)
    # One option per declared setting that has one (wsblock.schema.settings).
    for setting in settings.SETTINGS:
        if setting.cli_option:
            parser.add_argument(setting.cli_option, dest=setting.name, type=setting.from_text,
                                default=setting.default_value(), metavar=setting.metavar,
                                help=setting.cli_help())
        if setting.name == "start_method":
            parser.add_argument("--param", type=workload_param, action="append", default=[],
                                metavar="KEY=VALUE", help="workload parameter, e.g. chunksize=5000, or a keyword "
                                                          "argument of a user's function (repeatable)")


def cell_from_args(args: argparse.Namespace) -> Any:
    """The cell the options of :func:`add_cell_arguments` describe (or the ``--cell`` file's).

    Raises:
        UsageError: A required axis missing, an unknown workload, or axes
            that refuse each other.
    """
    from wsblock.engine.config import CellConfig
    from wsblock.schema import settings

    if args.cell:
        from wsblock.engine.cell_main import read_cell

        return read_cell(args.cell)
    from wsblock.schema import axes

    given = {a.name: getattr(args, a.name) for a in axes.AXES if getattr(args, a.name) is not NOT_GIVEN}
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
    params: dict[str, Any] = {}
    for key, value in args.param:
        params[key] = value
    cell = CellConfig(**given, workload_params=params,
                      **{s.name: getattr(args, s.name) for s in settings.SETTINGS if s.cli_option})
    # The rules between parameters, named as options (the cell's own
    # validation would name them as matrix keys).
    refused = settings.refusal(dataclasses.asdict(cell), stated=given, spell=settings.option)
    if refused:
        raise UsageError(refused)
    return cell


def progress(quiet: bool) -> Callable[[str], None]:
    """A progress callback: ``wsblock: MESSAGE`` lines on stderr, or nothing when ``quiet``."""
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
        if value is None or value is NOT_GIVEN:
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
