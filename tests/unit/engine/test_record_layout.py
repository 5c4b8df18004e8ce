"""The record's layout as written, as documented and as required: one and the same.

A short real cell is assembled by :func:`wsblock.engine.assemble.build` (the
one place a record is laid out, from the typed server and load reports);
``docs/record.md`` and :data:`wsblock.schema.record.REQUIRED` are checked
against what it wrote, both ways, so none of the three can drift alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import ROOT

from wsblock.engine.config import CellConfig
from wsblock.engine.reports import LoadReport, ServerReport
from wsblock.errors import HarnessError
from wsblock.schema import record

DOCS = ROOT / "docs"

OPTIONAL = {("error",), ("user_output",), ("matrix",), ("exit_code",), ("stderr_tail",),
            ("work", "function"), ("work", "ignored_work_ms")}
"""Keys a measured record of a built-in workload, run alone, does not carry."""

DATA_KEYED = {("result", "types"), ("meta", "packages"), ("disconnects", "by_code"), ("meta", "env")}
"""Tables whose keys are data (type names, packages, close codes), not layout."""


@pytest.fixture(scope="module")
def rec() -> dict[str, Any]:
    """The record of a real cell: 2 s window, short jobs on the loop, a keepalive that can fail."""
    from wsblock.engine.runner import run_cell

    cell = CellConfig("blocking_io", 5.0, "inline", ping_interval=1.0, ping_timeout=1.0,
                      duration=2.0, warmup=0.5)
    return run_cell(cell)


def _tables(text: str) -> Iterator[tuple[str, str]]:
    """``(section, first cell)`` of every table row under a ``##`` heading."""
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| `"):
            yield section, line.split("|")[1]


def documented_paths(text: str) -> set[tuple[str, ...]]:
    """Record paths named in the first column of ``docs/record.md``'s tables.

    A bare key in the top-level table is a top-level key; in a ``## `x```
    section's table it is a key of ``x``; after a dotted key in the same
    cell (```a.b`, `c```) it is a sibling of the dotted key's last part.
    """
    paths: set[tuple[str, ...]] = set()
    for section, cell in _tables(text):
        if section == "Versions" or section.startswith("`warnings`"):
            continue  # versions, warning codes: values, not keys
        owner = re.fullmatch(r"`(\w+)`", section)
        parent: tuple[str, ...] = (owner.group(1),) if owner else ()
        for name in re.findall(r"`([\w.]+)`", cell):
            parts = tuple(name.split("."))
            if len(parts) > 1:
                parent = parts[:-1]
                paths.add(parts)
            else:
                paths.add(parent + parts)
    return paths


def _has(rec: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = rec
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _keys(rec: dict[str, Any], depth: int) -> Iterator[tuple[str, ...]]:
    def walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if len(path) == depth or not isinstance(node, dict):
            return
        for key, value in node.items():
            yield path + (key,)
            yield from walk(value, path + (key,))
    yield from walk(rec, ())


@pytest.mark.e2e
def test_every_documented_key_is_in_a_real_record(rec: dict[str, Any]) -> None:
    paths = documented_paths((DOCS / "record.md").read_text(encoding="utf-8"))
    assert ("survival", "verdict") in paths and ("window", "duration_s") in paths  # the parser reads the tables
    missing = sorted(".".join(p) for p in paths
                     if p[:1] not in OPTIONAL and p[:2] not in OPTIONAL and not _has(rec, p))
    assert not missing, f"docs/record.md names keys the record lacks: {missing}"


@pytest.mark.e2e
def test_every_key_of_a_real_record_is_documented(rec: dict[str, Any]) -> None:
    text = (DOCS / "record.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.]+)`", text))
    vocabulary = set(re.findall(r"`([\w.]+)`", (DOCS / "vocabulary.md").read_text(encoding="utf-8")))
    undocumented = []
    for path in _keys(rec, 3):
        if path[0] == "params" and len(path) == 2 and path[1] in named | vocabulary:
            continue  # the axes are listed in vocabulary.md
        if path[:2] in DATA_KEYED:
            continue
        dotted = ".".join(path)
        if path[-1] in named or dotted in named or ".".join(path[-2:]) in named \
                or any(n.startswith(dotted + ".") for n in named):
            continue
        undocumented.append(".".join(path))
    assert not undocumented, f"the record has keys docs/record.md does not name: {undocumented}"


@pytest.mark.e2e
def test_the_required_keys_are_what_a_real_record_holds(rec: dict[str, Any]) -> None:
    for section, keys in record.REQUIRED.items():
        container = rec if not section else rec[section]
        assert set(keys) <= set(container), (section, set(keys) - set(container))
    record.validate(rec)
    assert record.load(rec)["schema_version"] == record.SCHEMA_VERSION


def test_a_report_of_the_wrong_shape_is_a_harness_error_naming_the_field() -> None:
    load = {"connections": {"opened": {"job": 1}, "lost": {}}, "lifetimes": [], "connect_failures": 0,
            "disconnects": [], "jobs_done": 0, "job_errors": 0, "last_error": None, "job_latency_ms": {},
            "echoes": 0, "echo": {"scheduled": 0, "answered": 0, "lost": 0, "censored": 0, "unsent": 0,
                                  "missed": 0},
            "echo_latency_ms": {}, "sending": {"offered_per_s": 0.0, "achieved_per_s": 0.0,
                                               "lateness_ms": {}, "summarized_late_s": 0.0},
            "cpu_s": 0.1}
    report = LoadReport.from_dict(load, source="the load process")
    assert report.echo.unsent == 0 and report.to_dict()["cpu_s"] == 0.1
    del load["echo"]["unsent"]  # type: ignore[attr-defined]
    with pytest.raises(HarnessError, match=r"the load process .*wrong shape: missing field echo\.unsent"):
        LoadReport.from_dict(load, source="the load process")
    with pytest.raises(HarnessError, match=r"the server wrote measurements of the wrong shape: .*expected an object"):
        ServerReport.from_dict([], source="the server")
    with pytest.raises(HarnessError, match=r"expected an integer, got '3'"):
        LoadReport.from_dict({**load, "echoes": "3"}, source="the load process")
