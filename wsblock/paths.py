"""Where wsblock keeps per-machine state (calibration, generated data)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the cache directory, creating it if needed.

    ``WSBLOCK_CACHE_DIR`` wins; otherwise ``$XDG_CACHE_HOME/wsblock`` or
    ``~/.cache/wsblock``.
    """
    env = os.environ.get("WSBLOCK_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "wsblock"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Return the directory for generated workload input data."""
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path
