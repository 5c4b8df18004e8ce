"""The ``wsblock`` command line: the parser, built from :mod:`wsblock.commands`, and :func:`main`.

Each command is a module of :mod:`wsblock.commands` (listed in
:data:`COMMANDS`) with ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit codes: 0 when the work ran (disconnects are results, not errors); 2 with
a one-line ``error: ...`` for bad input, with nothing written; 1 when the
harness itself failed; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

from wsblock import __version__
from wsblock.errors import UsageError

COMMANDS = ("run", "list", "matrix", "calibrate", "findings", "report", "advise", "compare", "selftest",
            "boundary", "profile", "env")
"""The commands, in the order ``wsblock --help`` lists them: each the module of that name in :mod:`wsblock.commands`."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors follow the suite's one-line convention too.
        raise UsageError(message)


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


def command_module(name: str) -> ModuleType:
    """The module of the command ``name`` (one of :data:`COMMANDS`)."""
    return importlib.import_module(f"wsblock.commands.{name}")


def _command_list(parser: argparse.ArgumentParser) -> str:
    # The commands with their one-line help, as --help lists them.
    lines = ["commands:"]
    for action in parser._subparsers._group_actions if parser._subparsers else []:  # noqa: SLF001
        for choice in getattr(action, "_choices_actions", []):
            lines.append(f"  {choice.dest:<10} {choice.help}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``wsblock`` command."""
    parser = _Parser(prog="wsblock", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                     usage="%(prog)s [-h] [--version] COMMAND ...")
    parser.add_argument("--version", action="version", version=f"wsblock {__version__}")
    # Not required here: a bare ``wsblock`` gets the usage and the command
    # list before its error line (see main). The list is written below, once
    # every command is registered, with argparse's own listing suppressed.
    sub = parser.add_subparsers(dest="command", help=argparse.SUPPRESS, parser_class=_Parser)
    for name in COMMANDS:
        command_module(name).add_parser(sub)
    parser.epilog = f"{_command_list(parser)}\n\n{EPILOG}"
    return parser


def _dispatch(argv: Sequence[str] | None) -> int:
    from wsblock.commands import options
    from wsblock.engine.entry import contain_user_functions

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # A bare ``wsblock``: what could have been typed, then the error.
        print(parser.format_usage() + "\n" + _command_list(parser) + "\n", file=sys.stderr)
        raise UsageError("a command is required; 'wsblock --help' describes them")
    if getattr(args, "allow_stdlib_functions", False):
        from workloads import locate

        locate.allow_stdlib(locate.ALLOW_OPTION)
    options.check_paths(args)
    # A user's module is imported in a process of its own, under the trial
    # limit, before this process imports it: nothing it does at import can
    # end or hang the command.
    contain_user_functions(getattr(args, "trial_timeout", None))
    return command_module(args.command).run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsblock`` command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    from wsblock.engine.entry import run_main

    # The command itself (not a call from Python): a guardian process ends
    # whatever it starts, even if it is killed outright.
    return run_main(lambda: _dispatch(argv), guard_argv=sys.argv[1:] if argv is None else None)
