"""Shared fixtures and hooks (helpers live in ``tests/helpers.py``).

* Every session calibrates into its own cache directory, never the user's.
* Under CI (``CI`` set, as CI sets it), a test skipped because something it
  needs is not installed fails instead: ``python3 dev.py test`` installs every
  such dependency, so a skip there means an install step is missing, and a
  green run must not hide it. A test skips for a missing dependency through
  ``pytest.importorskip`` or :func:`tests.helpers.require_program`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

MISSING_DEPENDENCY = ("could not import", "missing dependency")
"""How a skip for a missing dependency begins (``pytest.importorskip``'s words, then ours)."""


def in_ci() -> bool:
    """Whether the tests run under CI (``CI`` set to anything but empty, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_reason(report: pytest.TestReport) -> str:
    """The reason of a skipped test's report (``""`` if there is none)."""
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr or "")
    return reason.removeprefix("Skipped: ")


def is_missing_dependency(reason: str) -> bool:
    """Whether a skip reason says that something the test needs is not installed."""
    return reason.lower().startswith(MISSING_DEPENDENCY)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI, turn a skip for a missing dependency into a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if is_missing_dependency(reason):
            report.outcome = "failed"
            report.longrepr = (f"skipped for a missing dependency under CI ({reason}): "
                               "python3 dev.py test installs every test dependency; see its output")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibrate into a per-session directory, never the user's cache."""
    if os.environ.get("WSBLOCK_TEST_CACHE_DIR"):
        path = Path(os.environ["WSBLOCK_TEST_CACHE_DIR"])
    else:
        path = tmp_path_factory.mktemp("wsblock-cache")
    os.environ["WSBLOCK_CACHE_DIR"] = str(path)
    return path


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``wsblock ARGS`` in this process: the command's own ``main()``, without an interpreter start.

    Returns a function of the arguments giving what :func:`tests.helpers.run_cli`
    gives (exit code, stdout, stderr), for checks that need no process of
    their own (validation, usage). Signal handlers ``main()`` installs are
    put back afterwards.
    """
    from wsblock.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        capsys.readouterr()  # only this command's output
        try:
            code = main(list(args))
        except SystemExit as exc:  # --help, argparse's own errors: as the interpreter would exit
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["wsblock", *args], code, out.out, out.err)

    return run
