"""Under CI, a test skipped for a missing dependency fails; any other skip stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TESTS

# Each test runs a pytest session of its own.
pytestmark = pytest.mark.e2e

INNER = '''
import pytest


def test_needs_a_module():
    pytest.importorskip("wsblock_no_such_module")


def test_needs_a_program():
    pytest.skip("missing dependency: no-such-browser (Debian package no-such-browser)")


def test_skips_for_another_reason():
    pytest.skip("machine busy")


def test_passes():
    pass
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_for_a_missing_dependency_fails(tmp_path: Path, ci: str) -> None:
    proc = _run(tmp_path, ci)
    assert proc.returncode == 1, proc.stdout
    assert "2 failed, 1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "FAILED test_inner.py::test_needs_a_module" in proc.stdout
    assert "FAILED test_inner.py::test_needs_a_program" in proc.stdout
    assert "skipped for a missing dependency under CI" in proc.stdout


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_outside_ci_a_missing_dependency_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    proc = _run(tmp_path, ci)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 3 skipped" in proc.stdout, proc.stdout
