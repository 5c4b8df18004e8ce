"""The keepalive outcome at the user's settings, predicted from measured stalls.

Waiting for real keepalive timeouts at websockets' defaults (20 s / 20 s)
takes minutes per cell. The loop's stall pattern does not depend on the
keepalive settings, so a cell measured with a shorter window gives the
pattern, and the boundary model (:mod:`wsblock.boundary.model`,
``docs/boundary-model.md``) gives the probability that one connection is lost
over :data:`HORIZON_S` (one hour) of this load at the user's settings: the
stall pattern is stretched to the horizon at the same stalled share and
stall lengths.

The model was checked against measured cells at a few keepalive settings
only (:func:`checked_range` reads them from the reference records it was
checked on); a prediction at other settings is labelled *extrapolated*.
"""

from __future__ import annotations

import copy
import csv
import glob
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from wsblock.boundary import model as bm

HORIZON_S = 3600.0
"""Seconds of load a prediction covers: one hour, a time a server's connections are expected to live."""

SEGMENT_S = 120.0
"""Longest stretch the model walks ping by ping (its cost grows with stalls x pings); a longer horizon
is compounded from it. A stretch always holds the first ping and three keepalive cycles."""

CHECKED_RUNS = ("default", "keepalive", "keepalive_one_job", "pandas_chunks", "boundary/*", "defaults/*")
"""Reference runs (under ``results/reference``) the model was checked against (``docs/boundary-model.md``)."""

CLUSTER_GAP = 4.0
"""Checked ``ping_timeout`` values more than this factor apart belong to separate boxes of the checked
range: settings between two such clusters (say 5 s, between a study at 0.5-2 s and one at 20 s) were
never measured, so a prediction there is extrapolated."""

NEAR = (0.05, 0.95)
"""Predicted loss probabilities in this range are near the boundary: confirm them."""

PHASES = 200
"""Phases of the ping train the model averages over."""


@dataclass(frozen=True)
class Forecast:
    """The predicted keepalive outcome of one strategy.

    Attributes:
        p: Mean predicted probability that one connection is lost in the horizon.
        low: Lowest end of the repeats' ranges.
        high: Highest end of the repeats' ranges.
        repeats: Records the prediction rests on.
        horizon_s: Seconds of load the probability covers.
        extrapolated: Whether the settings lie outside those the model was checked at.
        segment_s: Seconds the model walked ping by ping; a longer horizon
            is compounded from it as independent stretches (``inf``: walked whole).
    """

    p: float
    low: float
    high: float
    repeats: int
    horizon_s: float
    extrapolated: bool = False
    segment_s: float = math.inf

    @property
    def outcome(self) -> str:
        """``kept`` (point under 5 %), ``lost`` (over 95 %) or ``near`` (between: confirm)."""
        if self.p < NEAR[0]:
            return "kept"
        if self.p > NEAR[1]:
            return "lost"
        return "near"


def horizon_s(ping_interval: float | None, ping_timeout: float | None) -> float | None:
    """Seconds a prediction covers: :data:`HORIZON_S`; ``None`` when no keepalive can fail."""
    if ping_interval is None or ping_timeout is None:
        return None
    return HORIZON_S


def segment_s(ping_interval: float, ping_timeout: float, horizon: float) -> float:
    """The stretch the model walks ping by ping: :data:`SEGMENT_S`, or the first ping and 3 cycles if longer."""
    return min(horizon, max(SEGMENT_S, ping_interval + 3 * (ping_interval + ping_timeout)))


def compound(p: float, segment: float, horizon: float) -> float:
    """P(loss in ``horizon``) from P(loss in ``segment``), the stretches taken as independent.

    A stall pattern that repeats makes the stretches' outcomes agree more
    than independent ones would, so this errs towards loss.
    """
    if segment >= horizon or p <= 0.0:
        return p
    if p >= 1.0:
        return 1.0
    return 1.0 - (1.0 - p) ** (horizon / segment)


@dataclass(frozen=True)
class CheckedRange:
    """The keepalive settings the model was checked at.

    Attributes:
        ping_interval: Lowest and highest ``ping_interval`` (s) of the checked cells.
        ping_timeout: Lowest and highest ``ping_timeout`` (s).
        job_connections: Lowest and highest job connections.
        cells: Records (rows) read.
        source: Where the range was read from.
    """

    ping_interval: tuple[float, float]
    ping_timeout: tuple[float, float]
    job_connections: tuple[int, int]
    cells: int
    source: str
    boxes: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = ()

    def _boxes(self) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
        return self.boxes or ((self.ping_interval, self.ping_timeout),)

    def inside(self, ping_interval: float | None, ping_timeout: float | None) -> bool:
        """Whether these settings lie inside one box of the checked range (no keepalive: nothing to extrapolate)."""
        if ping_interval is None or ping_timeout is None:
            return True
        return any(pi[0] <= ping_interval <= pi[1] and pt[0] <= ping_timeout <= pt[1]
                   for pi, pt in self._boxes())

    def timeouts_text(self) -> str:
        """The checked ``ping_timeout`` spans: ``0.5-2 s and 20 s``."""
        return " and ".join(f"{_span(*pt)} s" for _, pt in self._boxes())

    def text(self) -> str:
        """``ping_interval 0.25-4 s, ping_timeout 0.5-2 s; ping_interval 20 s, ping_timeout 20 s (...)``."""
        boxes = "; ".join(f"ping_interval {_span(*pi)} s, ping_timeout {_span(*pt)} s" for pi, pt in self._boxes())
        return f"{boxes} ({self.cells} cells of {self.source})"


def _span(lo: float, hi: float) -> str:
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _clusters(points: Sequence[tuple[float, float]]) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
    """Boxes around the checked (ping_interval, ping_timeout) points, split where ping_timeouts jump by CLUSTER_GAP."""
    timeouts = sorted({t for _, t in points})
    groups: list[list[float]] = []
    for t in timeouts:
        if groups and t <= groups[-1][-1] * CLUSTER_GAP:
            groups[-1].append(t)
        else:
            groups.append([t])
    boxes = []
    for group in groups:
        inside = [(i, t) for i, t in points if group[0] <= t <= group[-1]]
        boxes.append(((min(i for i, _ in inside), max(i for i, _ in inside)), (group[0], group[-1])))
    return tuple(boxes)


def reference_dir() -> Path | None:
    """The reference study's directory: ``results/reference`` of this checkout, or of the current directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "results" / "reference"
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Skill:
    """The model against simple rules, out of sample, on the reference records.

    Attributes:
        scope: ``every repeat`` or ``near the boundary`` (the band where the
            longest stall lies between ``ping_timeout`` and the cycle).
        beats: Whether the model beats every baseline on both scores.
        model_brier: The model's Brier score.
        best: The baseline with the lowest Brier score.
        best_brier: Its Brier score.
        repeats: Repeats scored.
        groups: Run or search directories held out in turn.
    """

    scope: str
    beats: bool
    model_brier: float
    best: str
    best_brier: float
    repeats: int
    groups: int

    def text(self) -> str:
        """One clause: the scores and whether the model beats every baseline."""
        verdict = ("it beats every simple rule and the base rate on both Brier score and log loss" if self.beats
                   else "it does not beat every simple rule and the base rate on both scores")
        return (f"{self.scope} ({self.repeats} repeats): Brier {self.model_brier:.3f} against "
                f"{self.best_brier:.3f} for the best baseline ({self.best}); {verdict}")


def skill(root: Path | None = None, *, phases: int = 100) -> tuple[Skill, ...]:
    """Score the model out of sample on the reference records (:mod:`wsblock.boundary.score`).

    The scores are kept until the records or the code change
    (:mod:`wsblock.advise.skill_cache`): scoring takes seconds, and every
    ``advise`` that predicts states them.

    Returns:
        Over every repeat and near the boundary; empty when the records or
        the scoring are not available (then nothing is claimed).
    """
    from wsblock.advise import skill_cache

    root = root if root is not None else reference_dir()
    if root is None:
        return ()
    try:
        rows = skill_cache.cached(root, lambda: [asdict(s) for s in _score(root, phases)], phases=phases)
        return tuple(Skill(**row) for row in rows)
    except TypeError:  # a stored row of another shape: score again
        return _score(root, phases)


def _score(root: Path, phases: int) -> tuple[Skill, ...]:
    try:
        from wsblock.boundary import score as bs
    except ImportError:
        return ()
    try:
        trials = bs.trials_from([root], phases=phases)
        out = []
        for scope, band in (("every repeat", False), ("near the boundary", True)):
            result = bs.score(trials, band_only=band)
            if not result.repeats:
                continue
            model = result.row(bs.MODEL)
            best = min((r for r in result.rows if r.name != bs.MODEL), key=lambda r: r.brier)
            out.append(Skill(scope, result.model_beats_baselines, model.brier, best.name, best.brier,
                             result.repeats, len(result.groups)))
        return tuple(out)
    except (ValueError, OSError, KeyError, StopIteration, AttributeError):
        return ()


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "", "none", "None") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def checked_range(root: Path | None = None, runs: Sequence[str] = CHECKED_RUNS) -> CheckedRange | None:
    """Read the settings the model was checked at from the reference runs' ``cells.csv``.

    Args:
        root: The reference directory (default :func:`reference_dir`).
        runs: Glob patterns of the runs under it (default :data:`CHECKED_RUNS`).

    Returns:
        The range, or ``None`` when no checked cell could be read (then
        every prediction counts as extrapolated).
    """
    root = root if root is not None else reference_dir()
    if root is None:
        return None
    intervals, timeouts, conns = [], [], []
    for pattern in runs:
        for path in sorted(glob.glob(str(root / pattern / "cells.csv"))):
            try:
                with open(path, newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
            except (OSError, csv.Error):
                continue
            for row in rows:
                interval, timeout = _number(row.get("ping_interval")), _number(row.get("ping_timeout"))
                if row.get("status", "ok") != "ok" or interval is None or timeout is None:
                    continue
                intervals.append(interval)
                timeouts.append(timeout)
                jc = _number(row.get("job_connections"))
                if jc is not None:
                    conns.append(int(jc))
    if not intervals:
        return None
    return CheckedRange((min(intervals), max(intervals)), (min(timeouts), max(timeouts)),
                        (min(conns), max(conns)) if conns else (0, 0), len(intervals),
                        "results/reference: " + ", ".join(runs), _clusters(list(zip(intervals, timeouts))))


def at_settings(record: Mapping[str, Any], *, ping_interval: float, ping_timeout: float,
                horizon: float) -> dict[str, Any]:
    """A copy of a record as if measured at these keepalive settings over ``horizon`` seconds.

    The stall count and total scale with the window (the stalled share and
    the longest stall stay as measured).
    """
    out = copy.deepcopy(dict(record))
    params = out.setdefault("params", {})
    params.update(ping_interval=ping_interval, ping_timeout=ping_timeout, client_pings=True,
                  handler_ping_timeout=None)
    window = out.setdefault("window", {})
    measured = float(window.get("duration_s") or params.get("duration") or 0.0)
    window["duration_s"] = horizon
    stalls = out.get("stalls") or {}
    if measured > 0 and stalls.get("count"):
        scale = horizon / measured
        stalls["count"] = max(1, int(round(int(stalls["count"]) * scale)))
        stalls["total_ms"] = float(stalls.get("total_ms") or 0.0) * scale
    return out


def forecast(records: Sequence[Mapping[str, Any]], *, ping_interval: float | None,
             ping_timeout: float | None, checked: CheckedRange | None = None) -> Forecast | None:
    """Predict one strategy's keepalive outcome from the records of its repeats.

    Args:
        records: Measured (``ok``) records of one strategy.
        ping_interval: The user's ping interval (``None``: no pings).
        ping_timeout: The user's ping timeout (``None``: no timeout).
        checked: The settings the model was checked at (``None``: unknown,
            so the prediction is extrapolated).

    Returns:
        The forecast, or ``None`` without records; a setting where no
        keepalive can fail predicts ``0``.
    """
    if not records:
        return None
    horizon = horizon_s(ping_interval, ping_timeout)
    if horizon is None:
        return Forecast(0.0, 0.0, 0.0, len(records), math.inf)
    assert ping_interval is not None and ping_timeout is not None
    segment = segment_s(ping_interval, ping_timeout, horizon)
    points, lows, highs = [], [], []
    for rec in records:
        prediction = bm.predict_record(
            at_settings(rec, ping_interval=ping_interval, ping_timeout=ping_timeout, horizon=segment),
            phases=PHASES)
        points.append(compound(prediction.p, segment, horizon))
        lows.append(compound(prediction.low, segment, horizon))
        highs.append(compound(prediction.high, segment, horizon))
    extrapolated = checked is None or not checked.inside(ping_interval, ping_timeout)
    return Forecast(sum(points) / len(points), min(lows), max(highs), len(records), horizon, extrapolated,
                    segment if segment < horizon else math.inf)


__all__ = ["CHECKED_RUNS", "CheckedRange", "Skill", "skill", "Forecast", "HORIZON_S", "NEAR", "PHASES", "SEGMENT_S",
           "at_settings", "checked_range", "compound", "forecast", "horizon_s", "reference_dir", "segment_s"]
