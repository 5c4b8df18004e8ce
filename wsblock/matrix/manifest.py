"""A matrix run's manifest (``DIR/manifest.json``): what was planned, by which command, session by session.

A resumed matrix keeps its manifest's first start, its sessions and which
host measured which cell, and adds a session. A manifest that cannot be read
is not destroyed: it is kept aside under a dated name and a new one starts.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from wsblock import atomic
from wsblock.engine import meta
from wsblock.matrix.overhead import total_overhead
from wsblock.matrix.reuse import expected_params
from wsblock.matrix.spec import Matrix
from wsblock.schema import rundir
from wsblock.schema.rundir import MANIFEST, MANIFEST_KIND, MANIFEST_VERSION


def now_utc() -> str:
    """The time now, UTC, to the second, as the manifest writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    """The current command line, for the manifest."""
    return " ".join(shlex.quote(a) for a in ["wsblock", *sys.argv[1:]])


def new_manifest(matrix: Matrix, command: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest of a session of ``matrix``, continuing ``previous`` (the directory's manifest, if any)."""
    return {
        "schema_version": MANIFEST_VERSION,
        "kind": MANIFEST_KIND,
        "profile": matrix.source if "/" not in matrix.source and not matrix.source.endswith(".toml") else None,
        "config_path": matrix.source if matrix.source.endswith(".toml") else None,
        "config": matrix.definition,
        "command": command,
        "started_utc": previous["started_utc"] if previous else now_utc(),
        "finished_utc": None,
        "sessions": (previous or {}).get("sessions", []) + [{"started_utc": now_utc(), "command": command}],
        "environment": meta.environment(),
        "planned": len(matrix.cells),
        "skipped": [{"params": cell.to_dict(), "reason": reason} for cell, reason in matrix.skipped],
        # Which records belong to this run: every planned cell, by a digest of its params.
        **rundir.planned_entries([(p.cell_id, expected_params(p)) for p in matrix.cells]),
    }


def begin(matrix: Matrix, directory: Path, *, command: str, parallel: int, slots: list[list[int]],
          dask: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Write the manifest of a session starting now and return it (updated by :func:`finish`).

    Args:
        matrix: The matrix.
        directory: The run directory (it exists).
        command: The command line.
        parallel: Cells at once (``--parallel``).
        slots: Each concurrent cell's cores (empty: not pinned).
        dask: The Dask scheduler's address, if the cells run there.
        say: Receives the notice that a damaged manifest was kept aside.
    """
    manifest_path = directory / MANIFEST
    previous, damage = rundir.read_manifest(directory)
    manifest = new_manifest(matrix, command, previous)
    manifest["parallel"] = parallel
    if previous and isinstance(previous.get("hosts"), dict):
        manifest["hosts"] = dict(previous["hosts"])  # which host measured which cell, kept on resume
    manifest["sessions"][-1].update({"parallel": parallel, "core_slots": slots or None, "dask": dask})
    if damage is not None:
        # Its session history cannot be read, but it is not ours to destroy.
        kept = manifest_path.with_name(f"{MANIFEST}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        os.replace(manifest_path, kept)
        manifest["recovered_from"] = {"damaged_manifest": kept.name, "reason": damage}
        say(f"{manifest_path} was unreadable ({damage}); kept as {kept.name}, "
            f"a new manifest records sessions from now on")
    atomic.write_json(manifest_path, manifest)
    return manifest


def note_host(manifest: dict[str, Any], cell_id: str, rec: dict[str, Any]) -> None:
    """Remember which host measured ``cell_id`` (cells run on a cluster say so in their record)."""
    host = rec["matrix"].get("host")
    if host is not None:
        manifest.setdefault("hosts", {})[cell_id] = host


def finish(directory: Path, manifest: dict[str, Any], *, complete: bool, overhead: dict[str, Any]) -> None:
    """Close the session: its end, whether every planned cell is recorded ok, and its overhead.

    Args:
        directory: The run directory.
        manifest: From :func:`begin`.
        complete: Every planned cell has an ``ok`` record.
        overhead: The session's :func:`wsblock.matrix.overhead.overhead_summary`.
    """
    manifest["finished_utc"] = now_utc()
    manifest["complete"] = complete
    manifest["sessions"][-1]["overhead"] = overhead
    manifest["overhead"] = total_overhead(manifest["sessions"])
    atomic.write_json(directory / MANIFEST, manifest)
