"""The README and the docs against the code: command lines parse, links resolve.

Every ``wsblock ...`` line of a fenced code block in ``README.md`` and in
``docs/*.md`` is parsed by the real parser, in process: an option renamed or
removed fails here instead of in a reader's terminal. Lines that carry
placeholders (``TARGET``, ``DIR``, ``...``) are skipped by an explicit rule,
and the test asserts that it still found enough lines to mean something.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import ROOT

from wsblock.cli import build_parser
from wsblock.errors import UsageError

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

# A fenced block opens with ``` and an optional language; only shell-like
# blocks hold commands (``text`` blocks hold output, ``python`` code).
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELL = {"", "bash", "sh", "console", "shell"}
# A line written as a template rather than a command: capitalised
# placeholders, elisions and alternatives cannot be parsed as they stand.
_PLACEHOLDER = re.compile(r"\b(TARGET|DIR|RUN|FILE|COLUMN|WORKLOAD|KEY|VALUE|HOST|ADDRESS|N|S|MS)\b|\.\.\.|\[|\||<|>")


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """Return (line number, logical line) for each line of the shell blocks in ``path``.

    A console prompt (``$ ``) is dropped and backslash continuations are
    joined, so a command spread over lines is one logical line.
    """
    out: list[tuple[int, str]] = []
    lang: str | None = None
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(raw.strip())
        if fence:
            lang = None if lang is not None else fence.group(1)
            pending = ""
            continue
        if lang is None or lang not in _SHELL:
            continue
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def wsblock_commands(path: Path) -> tuple[list[tuple[int, list[str]]], list[tuple[int, str]]]:
    """Split the ``wsblock`` command lines of ``path`` into (parsable argv, skipped lines).

    A command is a logical line whose first word is ``wsblock`` (or a path
    ending in ``/wsblock``), possibly after ``VAR=value`` assignments; the
    comment after ``#`` is dropped by ``shlex``. Lines with placeholders are
    returned apart, never parsed.
    """
    commands: list[tuple[int, list[str]]] = []
    skipped: list[tuple[int, str]] = []
    for number, line in shell_lines(path):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if not words or not (words[0] == "wsblock" or words[0].endswith("/wsblock")):
            continue
        if _PLACEHOLDER.search(" ".join(words[1:])):
            skipped.append((number, line))
            continue
        commands.append((number, words))
    return commands, skipped


def _parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    # wsblock's parser raises UsageError on bad input (main turns it into
    # one error line and exit 2); argparse's own exits are caught as well.
    try:
        build_parser().parse_args(argv)
    except UsageError as exc:
        return str(exc)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return (capsys.readouterr().err.strip().splitlines() or ["exit " + str(exc.code)])[-1]
    return None


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_command_lines_parse(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands, _ = wsblock_commands(path)
    failures = []
    for number, words in commands:
        error = _parse_error(words[1:], capsys)
        if error:
            failures.append(f"{path.name}:{number}: {shlex.join(words)}\n    {error}")
    assert not failures, "\n".join(failures)


def test_readme_commands_are_found() -> None:
    # The extraction itself is checked: the README's command blocks hold at
    # least the main commands, so an empty extraction cannot pass silently.
    commands, _ = wsblock_commands(README)
    names = {words[1] for _, words in commands}
    assert {"run", "matrix", "report", "advise", "compare", "boundary", "profile"} <= names
    every = [c for p in DOCS for c in wsblock_commands(p)[0]]
    assert len(every) >= 30


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == [
        "python3 dev.py bench", "python3 dev.py test"]
    assert "python3 dev.py test\n" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200


# A markdown link or image whose target is not a URL: [text](target) or ![alt](target).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    # GitHub's anchor for a heading: lower case, punctuation dropped
    # (hyphens and underscores kept), spaces to hyphens.
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("#") and not line.startswith("#!")}


def relative_links(path: Path) -> list[str]:
    """Return every link target in ``path`` that is not a URL or an in-page anchor."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve()
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.name}: " + ", ".join(broken)


def test_index_lists_every_document() -> None:
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in relative_links(index)}
    missing = [p.name for p in DOCS if p != index and p.resolve() not in linked]
    assert not missing, f"docs/index.md does not list: {', '.join(missing)}"
    assert (ROOT / "results" / "reference" / "FINDINGS.md").resolve() in linked


def test_the_layout_page_names_every_module_of_the_package() -> None:
    # docs/layout.md is where a reader finds a module: a new one is listed there.
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `wsblock/")}
    missing = []
    for path in sorted((ROOT / "wsblock").rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py") or path.parent.name == "__pycache__":
            continue
        package = path.parent.relative_to(ROOT).as_posix()
        row = next((line for key, line in rows.items() if f"`{package}/`" in key), None)
        if path.parent.name == "wsblock":
            row = next((line for key, line in rows.items() if f"`{path.name}`" in key or f"`wsblock/{path.name}`" in key), None)
        if row is None or f"`{path.stem}`" not in row and f"`{path.name}`" not in row and f"`wsblock/{path.name}`" not in row:
            missing.append(path.relative_to(ROOT).as_posix())
    assert missing == []
