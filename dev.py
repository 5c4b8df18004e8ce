#!/usr/bin/env python3
"""Set up a virtual environment and run the suite's main jobs.

Only the Python standard library is used here, so this works on a machine
that has nothing but Python 3.11+:

    python3 dev.py bench   # set up, then run the quick matrix and its report
    python3 dev.py test    # set up (and, as root, apt-get what the tests need), then run the tests
                           # (unit tests spread over the cores, then the end-to-end ones one at a time)
    python3 dev.py test --fast  # only the unit tests (not e2e or slow), one worker per core: under 2 minutes
    python3 dev.py reference  # regenerate results/reference (about 4.5 hours)
    python3 dev.py asv-publish  # asv publish, then make the site work offline

The environment lives in ``.venv`` and is refreshed when ``pyproject.toml`` or
``requirements/constraints.txt`` change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".wsblock-installed"


def _say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements/constraints.txt"):
        path = ROOT / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def setup() -> None:
    """Create ``.venv`` and install wsblock with its test extras (once)."""
    if sys.version_info < (3, 11):
        sys.exit("error: wsblock needs Python 3.11 or newer")
    if not PY.exists():
        _say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = _inputs_hash()
    if STAMP.exists() and STAMP.read_text() == wanted:
        _compile()
        return
    _say("installing wsblock and its dependencies")
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    cmd = [str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"]
    constraints = ROOT / "requirements" / "constraints.txt"
    if constraints.exists():
        cmd += ["-c", str(constraints)]
    subprocess.run(cmd, check=True)
    STAMP.write_text(wanted)
    _compile()


def _compile() -> None:
    # Every cell starts three interpreters that import the harness; where
    # PYTHONDONTWRITEBYTECODE is set they would compile it from source each
    # time (a tenth of a second of CPU per interpreter). Compiled once here,
    # they only read it (only changed files are compiled again).
    subprocess.run([str(PY), "-m", "compileall", "-q", "wsblock", "workloads"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def bench(args: list[str]) -> int:
    """Run the quick profile, then write its report.

    Extra arguments go to ``wsblock matrix`` (for example ``--profile
    default``, which then writes to ``results/runs/default``). The run
    resumes if interrupted and started again.
    """
    name = "quick"
    matrix = ["--profile", "quick"]
    for option in ("--profile", "--config"):
        if option in args and args.index(option) + 1 < len(args):
            matrix = []
            name = Path(args[args.index(option) + 1]).stem
    out = ROOT / "results" / "runs" / name
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
    else:
        args = [*args, "--out", str(out)]
    code = subprocess.run([str(PY), "-m", "wsblock", "matrix", *matrix, *args], cwd=ROOT).returncode
    if code != 0:
        return code
    code = subprocess.run([str(PY), "-m", "wsblock", "report", str(out)], cwd=ROOT).returncode
    if code == 0:
        _say(f"report: {out / 'report' / 'report.md'} (figures beside it)")
    return code


def reference(args: list[str]) -> int:
    """Regenerate the reference study in ``results/reference``.

    Runs the ``default`` profile and the study's extra matrices (resuming
    whatever is already recorded), writes a report for each, runs the
    boundary searches and fixed keepalive cells of
    ``results/reference/boundary`` and ``results/reference/defaults`` (each
    a ``searches.txt`` and ``matrices/*.toml``; also resuming), draws the
    searches' figures, and checks that ``FINDINGS.md`` still matches the
    records. About 2 hours on 2 cores for the fast-keepalive study and 2.5
    hours more at websockets' default keepalive (20 s / 20 s); run it on an
    otherwise idle machine.
    """
    # Paths relative to the checkout, so that manifests do not record where
    # the checkout happened to be.
    ref = Path("results") / "reference"
    runs = [("default", ["--profile", "default"])]
    runs += [(m.stem, ["--config", str(m)]) for m in sorted((ROOT / ref / "matrices").glob("*.toml"))]
    runs = [(name, [a if a.startswith("--") else str(Path(a).relative_to(ROOT)) if Path(a).is_absolute() else a
                    for a in source]) for name, source in runs]
    for name, source in runs:
        out = ref / name
        for cmd in (["matrix", *source, "--out", str(out), *args], ["report", str(out)]):
            code = subprocess.run([str(PY), "-m", "wsblock", *cmd], cwd=ROOT).returncode
            if code != 0:
                return code
    # The keepalive studies: boundary searches (searches.txt: NAME then the
    # arguments of `wsblock boundary`) and fixed cells (matrices/*.toml: the
    # rule of thumb and the scale test), at fast keepalive in boundary/ and
    # at websockets' defaults in defaults/.
    names: list[str] = []
    for study in ("boundary", "defaults"):
        searches = ROOT / ref / study / "searches.txt"
        lines = searches.read_text().splitlines() if searches.exists() else []
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, *source = line.split()
            cmd = ["boundary", *source, "--out", str(ref / study / name), "--quiet"]
            code = subprocess.run([str(PY), "-m", "wsblock", *cmd], cwd=ROOT).returncode
            if code != 0:
                return code
            names.append(str(ref / study / name))
        for matrix in sorted((ROOT / ref / study / "matrices").glob("*.toml")):
            out = ref / study / matrix.stem
            for cmd in (["matrix", "--config", str(matrix.relative_to(ROOT)), "--out", str(out), *args],
                        ["report", str(out)]):
                code = subprocess.run([str(PY), "-m", "wsblock", *cmd], cwd=ROOT).returncode
                if code != 0:
                    return code
    if names:
        cmd = ["boundary", "figure", *names, "--out", str(ref / "boundary")]
        code = subprocess.run([str(PY), "-m", "wsblock", *cmd], cwd=ROOT).returncode
        if code != 0:
            return code
    findings = ref / "FINDINGS.md"
    if (ROOT / findings).exists():
        return subprocess.run([str(PY), "-m", "wsblock", "findings", "check", str(findings)],
                              cwd=ROOT).returncode
    return 0


def asv_publish(args: list[str]) -> int:
    """Publish the asv results as HTML and make the site work without internet access.

    Runs ``asv publish`` (extra arguments go to it), then
    ``benchmarks.offline_site`` on the configured ``html_dir``, which puts
    the page's third-party scripts beside it (fetched once with npm).
    """
    code = subprocess.run([str(BIN / "asv"), "publish", *args], cwd=ROOT).returncode
    if code != 0:
        return code
    return subprocess.run([str(PY), "-m", "benchmarks.offline_site", "results/asv-html"], cwd=ROOT).returncode


TEST_PROGRAMS = {"chromium": ("chromium", "chromium-browser"), "npm": ("npm",)}
"""Debian packages some tests need (a headless browser; npm for the offline asv site), with their programs."""


def system_packages() -> None:
    """Install the Debian packages the tests need and this machine lacks, where it can.

    Only as root with ``apt-get`` (as CI runs): ``apt-get update`` once, then
    ``apt-get install``. Elsewhere nothing is installed and the tests that
    need a missing program skip; under CI (``CI`` set) such a skip fails
    the run (``tests/conftest.py``), so a missing install step cannot pass
    unnoticed.
    """
    missing = [package for package, programs in TEST_PROGRAMS.items()
               if not any(shutil.which(program) for program in programs)]
    if not missing:
        return
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say(f"not installing {', '.join(missing)} (needs root and apt-get): "
             "the tests that need them will skip, and fail under CI")
        return
    _say(f"installing {', '.join(missing)} with apt-get")
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            _say(f"{' '.join(cmd[:2])} failed (exit {done.returncode}); the tests that need "
                 f"{', '.join(missing)} will skip:\n{tail}")
            return
    _say(f"installed {', '.join(missing)} in {time.monotonic() - started:.0f} s")


UNIT_LANE = ["-m", "not e2e", "-n", "auto", "--dist", "loadfile"]
"""The tests that start no process of their own, spread over one worker per
core (pytest-xdist; a file's tests stay on one worker, in order)."""

E2E_LANE = ["-m", "e2e"]
"""The end-to-end tests, one at a time: they measure timing, and tests run
side by side would disturb each other's cells."""


def test(args: list[str]) -> int:
    """Install what the tests need that pip cannot (see :func:`system_packages`), then run them.

    Without arguments: every test, in two lanes, the unit tests spread over
    the cores (:data:`UNIT_LANE`), then the end-to-end tests one at a time
    (:data:`E2E_LANE`). ``--fast`` runs the unit lane only, without the
    checks over the whole reference study (marked ``slow``). Other arguments
    go to one pytest run as they are (``dev.py test tests/unit/engine``).
    """
    system_packages()

    def pytest(lane: list[str]) -> int:
        return subprocess.run([str(PY), "-m", "pytest", *lane], cwd=ROOT).returncode

    if "--fast" in args:
        return pytest(["-m", "not e2e and not slow", *UNIT_LANE[2:], *(a for a in args if a != "--fast")])
    if args:
        return pytest(args)
    unit = pytest(UNIT_LANE)
    e2e = pytest(E2E_LANE)
    return unit or e2e


def main() -> int:
    commands = {"bench": bench, "test": test, "reference": reference, "asv-publish": asv_publish,
                "setup": lambda _: 0}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: python3 dev.py {{{'|'.join(commands)}}} [args...]", file=sys.stderr)
        return 2
    setup()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
