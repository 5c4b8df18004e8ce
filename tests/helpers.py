"""Helpers for tests that run the real command line and watch processes, and the tests' paths.

The paths are taken from this file, which stays at the top of ``tests/``,
so that a test file finds the fixtures and the checkout wherever it sits
beneath ``tests/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

TESTS = Path(__file__).resolve().parent
"""The ``tests`` directory."""

FIXTURES = TESTS / "fixtures"
"""Fixture files and modules (``tests/fixtures``)."""

ROOT = TESTS.parent
"""The checkout (``results/``, ``docs/``, ``examples/`` beside ``tests/``)."""


def run_cli(*args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m wsblock ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "wsblock", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def run_cell(tmp_path: Path, *args: str, name: str = "cell.json") -> dict[str, Any]:
    """Run one real cell through the CLI and return its record."""
    out = tmp_path / name
    proc = run_cli("run", "--quiet", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def descendants(pid: int) -> set[int]:
    """Pids of every live descendant of ``pid``."""
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def cmdline(pid: int) -> str:
    """The command line of ``pid``; empty once it is gone or a zombie."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def alive(pids: set[int]) -> set[int]:
    """The pids of ``pids`` that still run (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def require_program(*names: str, package: str) -> str:
    """The path of the first of ``names`` on ``PATH``; else skip the test for a missing dependency.

    Under CI the skip is a failure (see ``tests/conftest.py``): ``python3 dev.py
    test`` installs the Debian ``package`` where it can.
    """
    import shutil

    import pytest

    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"missing dependency: {' or '.join(names)} (Debian package {package})")


def fixture_records() -> list[tuple[Path, dict[str, Any]]]:
    """The records of the fixture run ``tests/fixtures/run_a``, as (path, record) pairs."""
    from wsblock.analysis import tidy

    return tidy.load_records(FIXTURES / "run_a").records
