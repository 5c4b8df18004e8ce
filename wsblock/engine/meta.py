"""Environment metadata: what a record needs to be citable."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil


PACKAGES = (
    "wsblock", "websockets", "numpy", "pandas", "matplotlib", "asv",
    "hdrhistogram", "psutil", "threadpoolctl",
)
ENV_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONHASHSEED",
)


def cpu_model() -> str:
    """The CPU model name, as the OS reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the measurements."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


GIT = ["git", "--no-optional-locks"]
"""How git is run: it only reads, and takes no lock it can do without."""


def git_commit() -> dict[str, Any]:
    """The commit of the wsblock source, if it runs from a git checkout."""
    here = Path(__file__).resolve().parents[2]
    # Optional locks off: ``git status`` would otherwise refresh the index
    # and write .git/index.lock in the user's checkout, racing their own git.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    from wsblock.engine.reaper import die_with_me

    try:
        commit = subprocess.run(
            GIT + ["-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True, env=env, preexec_fn=die_with_me(),
        ).stdout.strip()
        dirty = subprocess.run(
            GIT + ["-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True, env=env, preexec_fn=die_with_me(),
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment() -> dict[str, Any]:
    """Describe the machine, the interpreter and the libraries.

    Returns:
        A JSON-ready mapping; see the record documentation for its keys.
    """
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "build": " ".join(platform.python_build()),
            "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "hostname": platform.node(),
        },
        "cpu": {
            "model": cpu_model(),
            "count": os.cpu_count(),
            "affinity": affinity,
            "loadavg_before": load,
        },
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "switch_interval_s": sys.getswitchinterval(),
        "packages": package_versions(),
        "git": git_commit(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }
