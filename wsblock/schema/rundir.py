"""The layout of a run directory, as ``wsblock matrix`` writes it.

``DIR/manifest.json`` (the matrix, the command, the environment, the skipped
pairs), ``DIR/cells/<cell_id>.json`` (one record per cell and repeat) and
``DIR/cells.csv`` (the tidy table). A directory of standalone records from
``wsblock run --out`` (``DIR/*.json``) reads the same way.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
CELLS = "cells"
CSV_NAME = "cells.csv"
MANIFEST_VERSION = 1
MANIFEST_KIND = "wsblock.matrix"


def record_path(directory: Path, cell_id: str) -> Path:
    """Where a matrix keeps the record of ``cell_id``."""
    return directory / CELLS / f"{cell_id}.json"


def record_files(directory: Path) -> list[Path]:
    """List the record files of a run directory.

    Args:
        directory: A run directory.

    Returns:
        ``DIR/cells/*.json`` if ``DIR/cells`` exists, else ``DIR/*.json``
        without the manifest; sorted so every tool sees the same order.
    """
    cells = directory / CELLS
    if cells.is_dir():
        return sorted(cells.glob("*.json"))
    return sorted(p for p in directory.glob("*.json") if p.name != MANIFEST)
