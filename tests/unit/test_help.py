"""Every command and sub-command answers ``--help``, and every command module is in the parser."""

from __future__ import annotations

import argparse
import contextlib
import io
import pkgutil

import pytest

import wsblock.commands
from wsblock.cli import COMMANDS, build_parser, main


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Every command line of commands and sub-commands the parser knows, depth first.
    found = []
    for action in parser._actions:  # noqa: SLF001 (argparse keeps its sub-parsers only here)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                found.append(path + (name,))
                found += _subcommands(sub, path + (name,))
    return found


COMMAND_LINES = _subcommands(build_parser())


def test_the_commands_are_the_modules_of_wsblock_commands() -> None:
    modules = {m.name for m in pkgutil.iter_modules(wsblock.commands.__path__)} - {"options"}
    top = [line[0] for line in COMMAND_LINES if len(line) == 1]
    assert sorted(top) == sorted(modules) == sorted(COMMANDS)
    for name in COMMANDS:
        module = __import__(f"wsblock.commands.{name}", fromlist=["add_parser", "run"])
        assert callable(module.add_parser) and callable(module.run), name


def test_the_sub_commands_are_there() -> None:
    assert {line for line in COMMAND_LINES if len(line) == 2} == {
        ("findings", "check"), ("findings", "fill"), ("findings", "query"),
        ("boundary", "model"), ("boundary", "figure"), ("boundary", "score")}


@pytest.mark.parametrize("line", [()] + COMMAND_LINES, ids=lambda line: " ".join(line) or "wsblock")
def test_help_exits_0_and_prints_its_usage(line: tuple[str, ...]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ended:
        main([*line, "--help"])
    assert ended.value.code == 0, err.getvalue()
    text = out.getvalue()
    # A command's usage carries the root's usage before its own name (and may wrap).
    usage = " ".join(text.split("\n\n", 1)[0].split())
    assert usage.startswith("usage: wsblock "), text[:200]
    assert f" {' '.join(line)} [-h]" in usage if line else usage.startswith("usage: wsblock [-h]"), usage
    assert err.getvalue() == ""
