"""Shared fixtures: an isolated cache directory (helpers live in ``tests/helpers.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibrate into a per-session directory, never the user's cache."""
    if os.environ.get("WSBLOCK_TEST_CACHE_DIR"):
        path = Path(os.environ["WSBLOCK_TEST_CACHE_DIR"])
    else:
        path = tmp_path_factory.mktemp("wsblock-cache")
    os.environ["WSBLOCK_CACHE_DIR"] = str(path)
    return path
