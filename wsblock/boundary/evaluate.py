"""The keepalive model evaluated against the records of a run directory.

For every cell, the loss probability the model of ``docs/boundary-model.md``
(:mod:`wsblock.boundary.model`) predicts from the cell's own stall pattern,
against the share of original connections lost, pooled over the cell's
repeats with a Wilson 95 % interval. :mod:`wsblock.report.fig_boundary`
draws the rows as a table and a figure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from wsblock.analysis.intervals import wilson
from wsblock.boundary import model as bm
from wsblock.schema import axes

IGNORED_SETTINGS = ("max_window",)
"""Settings that do not make two records different cells: ``max_window``
only bounds a sized window, whose length each record gives, and records made
before it existed lack it."""


@dataclass(frozen=True)
class ModelRow:
    """One cell: predicted against measured.

    Attributes:
        label: ``workload work_ms strategy pi/pt ...`` for people.
        params: The cell's parameters (of its first repeat).
        repeats: Records pooled.
        predicted: Mean of the repeats' predictions (point, low, high).
        lost: Original connections lost, over the repeats.
        connections: Original connections, over the repeats.
        measured_low: Wilson 95 % interval of ``lost / connections``, low end.
        measured_high: High end.
        basis: How the blocks were read from the record.
        by_initiator: Disconnects by the side that failed the connection
            first (``client``/``server``), over the repeats, reconnects
            included: which channel did the killing.
    """

    label: str
    params: dict[str, Any]
    repeats: int
    predicted: bm.Prediction
    lost: int
    connections: int
    measured_low: float
    measured_high: float
    basis: str
    by_initiator: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def measured(self) -> float:
        """Share of original connections lost."""
        return self.lost / self.connections if self.connections else math.nan

    @property
    def agrees(self) -> bool:
        """The point prediction lies in the measured interval."""
        return bm.agrees(self.predicted, self.measured_low, self.measured_high)

    @property
    def overlaps(self) -> bool:
        """The predicted range meets the measured interval."""
        return bm.overlaps(self.predicted, self.measured_low, self.measured_high)

    @property
    def near_boundary(self) -> bool:
        """Neither the model nor the measurement is certain (not both 0 or both 1)."""
        p = self.predicted.p
        return not ((p < 0.05 and self.lost == 0) or (p > 0.95 and self.lost == self.connections))


def _label(params: Mapping[str, Any]) -> str:
    pt = params.get("ping_timeout")
    text = (f"{params.get('workload')} {float(params.get('work_ms') or 0):g} ms {params.get('strategy')} "
            f"pi {params.get('ping_interval')} pt {'none' if pt is None else pt}")
    for key, value in sorted((params.get("workload_params") or {}).items()):
        text += f" {key} {value}"
    if params.get("job_connections") not in (None, 2):
        text += f" N {params.get('job_connections')}"
    if params.get("client_pings") is False:
        text += " no-client-pings"
    if params.get("handler_ping_timeout") is not None:
        text += f" handler-pt {params.get('handler_ping_timeout')}"
    return text


def group_cells(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Records grouped by cell id (settings included, :data:`IGNORED_SETTINGS` not), in first-seen order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(axes.cell_id(rec.get("params", {}), ignore=IGNORED_SETTINGS), []).append(rec)
    return groups


def model_rows(records: Sequence[Mapping[str, Any]], *, phases: int = bm.PHASES) -> list[ModelRow]:
    """Predicted against measured for every cell of ``records``.

    Args:
        records: Records in the current layout.
        phases: Phase grid of the model (fewer is faster, coarser).

    Returns:
        One row per cell, sorted by label.
    """
    rows = []
    for recs in group_cells(records).values():
        preds = [bm.predict_record(r, phases=phases) for r in recs]
        n = len(preds)
        mean = bm.Prediction(
            p=sum(x.p for x in preds) / n, low=sum(x.low for x in preds) / n,
            high=sum(x.high for x in preds) / n, client=sum(x.client for x in preds) / n,
            server=sum(x.server for x in preds) / n, basis=preds[0].basis)
        lost, total = bm.measured_loss(recs)
        w = wilson(lost, total)
        params = dict(recs[0].get("params", {}))
        sides: dict[str, int] = {}
        for rec in recs:
            for side, count in ((rec.get("disconnects") or {}).get("by_initiator") or {}).items():
                sides[side] = sides.get(side, 0) + int(count)
        rows.append(ModelRow(_label(params), params, n, mean, lost, total, w.low, w.high, mean.basis, sides))
    return sorted(rows, key=lambda r: r.label)


def summary_counts(rows: Sequence[ModelRow]) -> dict[str, int]:
    """Cells, and those whose point / range agrees, overall and near the boundary."""
    near = [r for r in rows if r.near_boundary]
    return {
        "cells": len(rows),
        "point_in_interval": sum(r.agrees for r in rows),
        "range_overlaps": sum(r.overlaps for r in rows),
        "near_boundary": len(near),
        "near_point_in_interval": sum(r.agrees for r in near),
        "near_range_overlaps": sum(r.overlaps for r in near),
    }
