"""The survival boundary: the longest inline job the keepalive survives, found by search.

One small, bounded ``wsblock boundary`` search (:mod:`wsblock.boundary`) runs
once per asv run, in a ``setup_cache``; the ``track_`` methods read its
estimate of the job length at which half of the original connections are
lost, in the length the cells' jobs really took (``p50.value``), and the
width of its 95 % interval. **Higher is better** for the boundary (the
server tolerates longer blocking calls); asv has no notion of direction, so
read a fall of ``track_boundary_ms`` in ``asv compare`` as the regression.
A crossing the search could not place inside its range is NaN.

The size of the search follows the profile (``WSBLOCK_ASV_PROFILE``):

* ``smoke`` leaves the benchmark out (the suite's minimal run);
* ``quick`` (default) searches with a short keepalive (``ping_interval``
  0.25 s, ``ping_timeout`` 0.5 s; about 250 ms jobs with two job
  connections), 2.5 s windows and at most 12 cells: about a minute;
* every other profile searches at ``ping_interval`` and ``ping_timeout`` 1 s
  with the search's own windows and at most 30 cells: about seven minutes.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from .common import profile_name

SEARCHES: dict[str, dict[str, Any]] = {
    "quick": {"ping_interval": 0.25, "ping_timeout": 0.5, "duration": 2.5, "warmup": 0.5, "budget": 12,
              "min_ms": 40.0},
    "full": {"ping_interval": 1.0, "ping_timeout": 1.0, "duration": None, "warmup": 2.0, "budget": 30,
             "min_ms": None},
}
"""The search per profile size: keepalive, window, warm-up, most cells, shortest job tried (``None``:
the search's default)."""


def search_for(profile: str) -> dict[str, Any]:
    """The search settings a profile runs (``quick`` is small, the others full)."""
    return SEARCHES["quick" if profile == "quick" else "full"]


class Boundary:
    """pure_python x inline: the job length at which half the connections are lost."""

    def setup_cache(self) -> dict[str, Any]:
        """Run the search once; return its summary entry (asv pickles it)."""
        from wsblock.engine.proc import die_with_parent

        # asv signals this process group on timeout and Ctrl-C; if asv itself
        # is killed outright, the kernel's SIGTERM stops the cells.
        die_with_parent()
        from wsblock.boundary import run as runmod
        try:
            from wsblock.boundary.plan import fixed_window
        except ImportError:  # a commit of the suite from before it was there (asv measures older commits too)
            from wsblock.boundary.cli import fixed_window  # type: ignore[import-not-found,no-redef]
        from wsblock.engine.config import CellConfig

        settings = search_for(profile_name())
        template = CellConfig("pure_python", 1.0, "inline", ping_interval=settings["ping_interval"],
                              ping_timeout=settings["ping_timeout"], duration=settings["duration"],
                              warmup=settings["warmup"]).validate()
        template = fixed_window(template)
        directory = Path(tempfile.mkdtemp(prefix="wsblock-boundary-", dir="."))
        summary = runmod.run_search([template], directory, budget=settings["budget"], low_ms=settings["min_ms"],
                                    command=f"asv setup_cache (boundary, profile {profile_name()})")
        return summary["estimates"][0]

    setup_cache.timeout = 900  # type: ignore[attr-defined]

    def track_boundary_ms(self, entry: dict[str, Any]) -> float:
        """Job length (ms, as measured) at which half the original connections are lost; higher is better."""
        value = entry["p50"]["value"]
        return math.nan if value is None else float(value)

    track_boundary_ms.unit = "ms"  # type: ignore[attr-defined]

    def track_interval_width(self, entry: dict[str, Any]) -> float:
        """High end over low end of the boundary's 95 % interval (NaN when an end is open)."""
        width = entry["p50"].get("width")
        return math.nan if width is None else float(width)

    track_interval_width.unit = "ratio"  # type: ignore[attr-defined]

    def track_cells(self, entry: dict[str, Any]) -> float:
        """Cells the search measured (each one trial of the estimate)."""
        return float(entry["cells"])

    track_cells.unit = "cells"  # type: ignore[attr-defined]


if profile_name() == "smoke":
    del Boundary
