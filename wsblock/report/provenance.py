"""Where a figure's numbers come from, printed in its footer.

A PNG pasted into a design review travels without its report. Every figure
therefore carries, in small print along its bottom edge: the run, the
profile or matrix file, the repeats per cell, the wsblock commit, the
machine (CPU model and cores), the Python and websockets versions and the
date. :func:`stamp` adds that footer to a figure before it is saved.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine

from wsblock.schema import axes

FOOTER_FONT = 6.5
"""Point size of the footer."""

FOOTER_COLOUR = "#555555"


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


@dataclass(frozen=True)
class Provenance:
    """The facts a figure's footer states.

    Attributes:
        run: The run's name (its directory).
        source: ``profile quick``, ``matrix my.toml`` or ``asv results``.
        repeats: Repeats per cell, as text (``3``, ``1 to 3``), or a phrase
            saying what a value is (asv: the median over a matrix's repeats).
        commit: The wsblock commit (12 hex digits; ``+dirty`` with
            uncommitted changes).
        machine: CPU model and cores.
        python: Python version.
        websockets: websockets version(s).
        date: Date (UTC) of the measurements.
    """

    run: str
    source: str
    repeats: str
    commit: str
    machine: str
    python: str
    websockets: str
    date: str

    def text(self) -> str:
        """The footer, one line: every fact labelled."""
        counted = self.repeats.replace(" to ", "").isdigit()
        repeats = (f"{self.repeats} repeat{'' if self.repeats == '1' else 's'}/cell" if counted
                   else self.repeats)
        return (f"run {self.run} ({self.source}, {repeats}) · wsblock {self.commit} · "
                f"{self.machine} · Python {self.python} · websockets {self.websockets} · {self.date}")

    @classmethod
    def of_run(cls, directory: str | Path, manifest: Mapping[str, Any] | None,
               records: Iterable[Mapping[str, Any]]) -> "Provenance":
        """The provenance of a run directory from its manifest and records.

        Args:
            directory: The run directory (its name names the run).
            manifest: The run's manifest, if any.
            records: The run's records (repeats are counted from them; their
                ``meta`` stands in for a missing manifest).
        """
        records = list(records)
        env = _get(manifest, "environment")
        if not isinstance(env, Mapping) or not env:
            env = next((r.get("meta") for r in records if isinstance(r.get("meta"), Mapping)), {}) or {}
        return cls(
            run=Path(directory).resolve().name,
            source=_source(manifest),
            repeats=_repeats(records),
            commit=_commit(_get(env, "git")),
            machine=machine_text(env),
            python=str(_get(env, "python", "version") or "?"),
            websockets=_versions(records, env),
            date=_date(manifest, records),
        )


def machine_text(env: Mapping[str, Any]) -> str:
    """``AMD EPYC, 2 cores`` from an environment (``meta``) mapping."""
    model = _get(env, "cpu", "model") or "CPU ?"
    count = _get(env, "cpu", "count")
    return f"{model}, {count if count is not None else '?'} cores"


def _source(manifest: Mapping[str, Any] | None) -> str:
    profile = _get(manifest, "profile")
    if profile:
        return f"profile {profile}"
    path = _get(manifest, "config_path")
    if path:
        return f"matrix {Path(str(path)).name}"
    return "single cells" if manifest is None else "matrix"


def _repeats(records: list[Mapping[str, Any]]) -> str:
    counts: dict[str | None, int] = {}
    for r in records:
        ident, params = _get(r, "matrix", "cell_id"), r.get("params")
        # A matrix names its cells without their settings; the repeats of a
        # cell share that id. Records made outside a matrix count together.
        if ident is not None and _get(r, "matrix", "repeat") is not None and isinstance(params, Mapping):
            cell = axes.cell_id(params, settings=False)
        else:
            cell = None if ident is None else str(ident)
        counts[cell] = counts.get(cell, 0) + 1
    if not counts:
        return "0"
    low, high = min(counts.values()), max(counts.values())
    return str(low) if low == high else f"{low} to {high}"


def _commit(git: Any) -> str:
    commit = _get(git, "commit")
    if not commit:
        return "commit ?"
    return str(commit)[:12] + ("+dirty" if _get(git, "dirty") else "")


def _versions(records: list[Mapping[str, Any]], env: Mapping[str, Any]) -> str:
    found = sorted({str(v) for r in records if (v := _get(r, "meta", "packages", "websockets"))})
    if not found:
        found = [str(_get(env, "packages", "websockets") or "?")]
    return ", ".join(found)


def _date(manifest: Mapping[str, Any] | None, records: list[Mapping[str, Any]]) -> str:
    stamps = sorted(str(t) for r in records if (t := _get(r, "meta", "timestamp_utc")))
    start = _get(manifest, "started_utc") or (stamps[0] if stamps else None)
    end = _get(manifest, "finished_utc") or (stamps[-1] if stamps else None)
    if not start:
        return "date ?"
    day, last = str(start)[:10], str(end or start)[:10]
    return f"{day} UTC" if day == last else f"{day} to {last} UTC"


def stamp(fig: Figure, provenance: Provenance | str) -> None:
    """Add the provenance footer along the bottom edge of ``fig``.

    The figure grows by the footer's height; its constrained layout is
    solved with that strip kept clear, then frozen, and what the layout
    pins to the bottom edge (figure legends, the x super-label) is lifted
    above the footer, so the footer never overlaps anything. Call it last,
    just before saving: later changes to the figure are not laid out again.

    Args:
        fig: A figure with constrained layout.
        provenance: The facts, or a ready footer text.
    """
    text = provenance.text() if isinstance(provenance, Provenance) else provenance
    width, height = fig.get_size_inches()
    lines = _lines(text, width)
    extra = footer_height(text, width)
    fig.set_size_inches(width, height + extra)
    reserved = extra / (height + extra)
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0, reserved, 1, 1 - reserved))  # left, bottom, width, height
    elif isinstance(engine, TightLayoutEngine):
        engine.set(rect=(0, reserved, 1, 1))  # left, bottom, right, top
    else:
        engine = None

    if engine is None:
        # A figure laid out once (tight_layout) or by hand: keep every axes
        # where it was in inches, above the footer.
        for ax in fig.axes:
            box = ax.get_position()
            ax.set_position([box.x0, (box.y0 * height + extra) / (height + extra), box.width,
                             box.height * height / (height + extra)])
    else:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        # The solved layout leaves the bottom strip empty, but figure legends
        # and the x super-label are placed against the figure's edge.
        for legend in fig.legends:
            legend.set_bbox_to_anchor((0, reserved, 1, 1 - reserved), transform=fig.transFigure)
        label = getattr(fig, "_supxlabel", None)
        if label is not None:
            x, y = label.get_position()
            label.set_position((x, y + reserved))
    fig.text(0.01, 0.5 * reserved, "\n".join(lines), fontsize=FOOTER_FONT, color=FOOTER_COLOUR,
             ha="left", va="center", linespacing=1.2)


def _lines(text: str, width: float) -> list[str]:
    # Wrap to the figure's width (about 0.6 em per character).
    return _wrap(text, max(60, int(width * 72 / (FOOTER_FONT * 0.6))))


def footer_height(text: str, width: float) -> float:
    """The height in inches :func:`stamp` adds to a figure ``width`` inches wide for this footer."""
    return (len(_lines(text, width)) * FOOTER_FONT * 1.35 + 8) / 72


def _wrap(text: str, chars: int) -> list[str]:
    # Break between the " · " separated facts; a fact longer than a line is
    # wrapped at spaces.
    lines, line = [], ""
    for part in text.split(" · "):
        candidate = part if not line else f"{line} · {part}"
        if line and len(candidate) > chars:
            lines.append(line)
            line = part
        else:
            line = candidate
        if len(line) > chars:
            *full, line = textwrap.wrap(line, chars)
            lines += full
    lines.append(line)
    return lines


__all__ = ["Provenance", "footer_height", "machine_text", "stamp"]
