"""The keepalive model against simple rules, out of sample, on proper scores.

A model earns its use by forecasting better than the simplest rules where
they were not fitted. The unit is the repeat (one server, one window): its
outcome is 1 when it lost any original connection inside the window
(``survival.verdict`` ``lost``), 0 when it kept them all (``kept``);
inconclusive windows, cells where no keepalive can fail and the threaded
server (the model describes an event loop) are left out. The connections of
a repeat share one loop and open within milliseconds of each other, so they
are lost together: the model's probability that one connection is lost
(:func:`wsblock.boundary.model.predict_record`) is read as the
probability that the repeat loses any.

Forecasts, each a probability per repeat:

* ``model``: the model's point; it has no parameter fitted to records;
* ``stall > ping_interval + ping_timeout``: 1 when the repeat's longest
  stall exceeds the keepalive cycle, else 0;
* ``stall threshold, fitted``: the best single threshold on the longest
  stall over the cycle, with the loss frequency on each side as its forecast;
* ``N x L > ping_timeout``: 1 when the job connections times the job
  length exceed the shortest ``ping_timeout`` for a strategy that runs jobs
  on the loop (``inline``), else 0 (the rule says nothing of the others);
* ``N x L threshold, fitted``: the same quantity with a fitted threshold;
* ``base rate``: the loss frequency, whatever the cell.

Fitted forecasts are scored *leave one group out*: a group is one run or
search directory, and its repeats are forecast from the others only. Scores
are the Brier score (mean squared error of the probability; a perfect
forecast scores 0, a constant 0.5 scores 0.25) and the log loss (mean
negative log likelihood, probabilities clipped to [:data:`EPS`, 1 - EPS], so
a hard rule's confident mistake costs ln(1 / EPS)).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

EPS = 0.01
"""Probabilities are clipped to ``[EPS, 1 - EPS]`` for the log loss."""

DEFAULT_ROOT = Path("results") / "reference"
"""Where the committed reference records are, from the repository's top."""

MODEL = "model"
STALL_RULE = "stall > ping_interval + ping_timeout"
STALL_FITTED = "stall threshold, fitted"
JOBS_RULE = "N x L > ping_timeout"
JOBS_FITTED = "N x L threshold, fitted"
BASE_RATE = "base rate"
BASELINES = (STALL_RULE, STALL_FITTED, JOBS_RULE, JOBS_FITTED, BASE_RATE)
"""What the model must beat: the two rules, fixed and fitted, and the base
rate (a forecast that cannot beat the base rate has no skill)."""

ON_LOOP = ("inline",)
"""Strategies whose jobs block the loop whole, for which ``N x L`` is the block."""


@dataclass(frozen=True)
class Trial:
    """One repeat: its outcome and what each forecast reads.

    Attributes:
        group: The run or search directory it came from.
        lost: 1 when it lost any original connection, else 0.
        stall_ratio: Longest stall over the keepalive cycle
            (``ping_interval + ping_timeout`` of the side that fails first).
        jobs_ratio: Job connections x job length over the shortest
            ``ping_timeout`` (0 for a strategy that does not run jobs on the loop).
        model_p: The model's probability of a loss.
        in_band: Whether the longest stall lies between the shortest
            ``ping_timeout`` and the cycle, where whether a ping lands in it
            decides (the repeats every rule does not settle at once).
        label: The cell, for people.
    """

    group: str
    lost: int
    stall_ratio: float
    jobs_ratio: float
    model_p: float
    in_band: bool = False
    label: str = ""


def brier(probabilities: Sequence[float], outcomes: Sequence[int]) -> float:
    """Mean squared difference between forecast and outcome (0 is perfect; 0.25 for a constant 0.5)."""
    _same_length(probabilities, outcomes)
    return sum((p - y) ** 2 for p, y in zip(probabilities, outcomes)) / len(outcomes)


def log_loss(probabilities: Sequence[float], outcomes: Sequence[int], *, eps: float = EPS) -> float:
    """Mean negative log likelihood, natural log, probabilities clipped to ``[eps, 1 - eps]``."""
    _same_length(probabilities, outcomes)
    total = 0.0
    for p, y in zip(probabilities, outcomes):
        p = min(1.0 - eps, max(eps, p))
        total -= math.log(p if y else 1.0 - p)
    return total / len(outcomes)


def _same_length(probabilities: Sequence[float], outcomes: Sequence[int]) -> None:
    if not outcomes or len(probabilities) != len(outcomes):
        raise ValueError("scores need as many probabilities as outcomes, and at least one")


# --- forecasts ---------------------------------------------------------------

Forecast = Callable[[Sequence[Trial]], Callable[[Trial], float]]
"""Fit on training trials; return the forecast of one trial."""


def _frequency(lost: int, n: int) -> float:
    # Add a half to each side (Jeffreys): a side seen only kept is not certain.
    return (lost + 0.5) / (n + 1.0)


def fit_threshold(pairs: Sequence[tuple[float, int]]) -> tuple[float, float, float]:
    """The single threshold on ``x`` whose two sides' loss frequencies forecast best.

    Candidates are the midpoints between distinct sorted values (and below
    all of them); each side forecasts its smoothed loss frequency; the
    threshold with the lowest Brier score on ``pairs`` wins (the lowest such
    threshold on ties).

    Args:
        pairs: ``(x, lost)`` of the training trials.

    Returns:
        ``(threshold, p_at_or_below, p_above)``.
    """
    if not pairs:
        raise ValueError("no trials to fit a threshold on")
    values = sorted({x for x, _ in pairs})
    candidates = [values[0] - 1.0] + [(a + b) / 2.0 for a, b in zip(values, values[1:])]
    best: tuple[float, float, float, float] | None = None
    for c in candidates:
        below = [y for x, y in pairs if x <= c]
        above = [y for x, y in pairs if x > c]
        p_below = _frequency(sum(below), len(below))
        p_above = _frequency(sum(above), len(above))
        score = sum((p_below - y) ** 2 for y in below) + sum((p_above - y) ** 2 for y in above)
        if best is None or score < best[0] - 1e-12:
            best = (score, c, p_below, p_above)
    assert best is not None
    return best[1], best[2], best[3]


def _model(_train: Sequence[Trial]) -> Callable[[Trial], float]:
    return lambda t: t.model_p


def _rule(attribute: str) -> Forecast:
    def fit(_train: Sequence[Trial]) -> Callable[[Trial], float]:
        return lambda t: 1.0 if getattr(t, attribute) > 1.0 else 0.0
    return fit


def _fitted(attribute: str) -> Forecast:
    def fit(train: Sequence[Trial]) -> Callable[[Trial], float]:
        c, below, above = fit_threshold([(getattr(t, attribute), t.lost) for t in train])
        return lambda t: above if getattr(t, attribute) > c else below
    return fit


def _base_rate(train: Sequence[Trial]) -> Callable[[Trial], float]:
    p = _frequency(sum(t.lost for t in train), len(train))
    return lambda t: p


FORECASTS: dict[str, Forecast] = {
    MODEL: _model,
    STALL_RULE: _rule("stall_ratio"),
    STALL_FITTED: _fitted("stall_ratio"),
    JOBS_RULE: _rule("jobs_ratio"),
    JOBS_FITTED: _fitted("jobs_ratio"),
    BASE_RATE: _base_rate,
}
"""Every forecast scored, by name, in the order shown."""


def leave_one_group_out(trials: Sequence[Trial], forecast: Forecast) -> list[float]:
    """Each trial's forecast from a fit on the trials of the other groups.

    With one group only, there is nothing to hold out: every trial is
    forecast from a fit on all of them (in sample), which :func:`score` says.
    """
    groups = sorted({t.group for t in trials})
    out: list[float] = [math.nan] * len(trials)
    for g in groups:
        train = [t for t in trials if t.group != g] or list(trials)
        predict = forecast(train)
        for i, t in enumerate(trials):
            if t.group == g:
                out[i] = predict(t)
    return out


@dataclass(frozen=True)
class Row:
    """One forecast's scores over the trials.

    Attributes:
        name: The forecast.
        brier: Brier score, out of sample.
        log_loss: Log loss, out of sample.
        groups_won: Groups in which the model's Brier score is lower than
            this forecast's (``None`` for the model itself).
    """

    name: str
    brier: float
    log_loss: float
    groups_won: int | None


@dataclass(frozen=True)
class Score:
    """The model and every rule, scored on the same repeats.

    Attributes:
        rows: One per forecast, in :data:`FORECASTS` order.
        repeats: Repeats scored.
        lost: Of them, repeats that lost a connection.
        groups: Groups (run or search directories) held out in turn.
        out_of_sample: Whether there were at least two groups to hold out.
    """

    rows: tuple[Row, ...]
    repeats: int
    lost: int
    groups: tuple[str, ...]
    out_of_sample: bool

    def row(self, name: str) -> Row:
        """The row of the forecast ``name``."""
        return next(r for r in self.rows if r.name == name)

    @property
    def model_beats_baselines(self) -> bool:
        """Whether the model's Brier score and log loss are both below every baseline's, out of sample.

        ``False`` when fewer than two groups could be held out in turn.
        """
        if not self.out_of_sample or not self.repeats:
            return False
        model = self.row(MODEL)
        return all(model.brier < self.row(b).brier and model.log_loss < self.row(b).log_loss
                   for b in BASELINES)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for ``--json``."""
        return {"rows": [asdict(r) for r in self.rows], "repeats": self.repeats, "lost": self.lost,
                "groups": list(self.groups), "out_of_sample": self.out_of_sample,
                "model_beats_baselines": self.model_beats_baselines, "eps": EPS}


def score(trials: Sequence[Trial], *, band_only: bool = False) -> Score:
    """Score every forecast of :data:`FORECASTS` on ``trials``, leaving one group out.

    Args:
        trials: The repeats.
        band_only: Score only the repeats whose longest stall lies in the
            band (:attr:`Trial.in_band`); rules are still fitted on every
            repeat of the other groups.

    Raises:
        ValueError: With no trial (to score).
    """
    if not trials:
        raise ValueError("no repeat to score")
    all_forecasts = {name: leave_one_group_out(trials, fit) for name, fit in FORECASTS.items()}
    keep = [i for i, t in enumerate(trials) if t.in_band or not band_only]
    if not keep:
        raise ValueError("no repeat to score")
    forecasts = {name: [ps[i] for i in keep] for name, ps in all_forecasts.items()}
    trials = [trials[i] for i in keep]
    outcomes = [t.lost for t in trials]
    groups = tuple(sorted({t.group for t in trials}))
    rows = []
    for name, ps in forecasts.items():
        won = None
        if name != MODEL:
            won = 0
            for g in groups:
                idx = [i for i, t in enumerate(trials) if t.group == g]
                ys = [outcomes[i] for i in idx]
                if brier([forecasts[MODEL][i] for i in idx], ys) < brier([ps[i] for i in idx], ys):
                    won += 1
        rows.append(Row(name, brier(ps, outcomes), log_loss(ps, outcomes), won))
    return Score(tuple(rows), len(trials), sum(outcomes), groups, len(groups) >= 2)


# --- records -> trials -------------------------------------------------------

def trial_of(record: Mapping[str, Any], group: str, *, phases: int) -> Trial | None:
    """The trial of one record, or ``None`` when it is not scored.

    Not scored: a failed record, a verdict other than ``lost`` or ``kept``,
    no keepalive that can fail, the threaded server.
    """
    from wsblock.boundary import model as bm
    from wsblock.schema.keepalive import Keepalive

    params = record.get("params") or {}
    verdict = (record.get("survival") or {}).get("verdict")
    if record.get("status", "ok") != "ok" or verdict not in ("lost", "kept"):
        return None
    if params.get("server", "asyncio") != "asyncio":
        return None
    keepalive = Keepalive.of(params)
    cycle = keepalive.cycle_s
    timeout = bm.first_loss_job_s(keepalive)
    if not keepalive.can_fail or not cycle or not timeout:
        return None
    stalls = record.get("stalls") or {}
    longest = stalls.get("max_whole_ms", stalls.get("max_ms"))
    stall_s = float(longest) / 1000.0 if isinstance(longest, (int, float)) else 0.0
    block_s = 0.0
    if params.get("strategy") in ON_LOOP:
        job = bm.job_length_s(record) or 0.0
        block_s = max(1, int(params.get("job_connections") or 1)) * job
    label = (f"{params.get('workload')} {params.get('strategy')} {params.get('work_ms')} ms "
             f"pi {params.get('ping_interval')} pt {params.get('ping_timeout')} N {params.get('job_connections')}")
    return Trial(group=group, lost=int(verdict == "lost"), stall_ratio=stall_s / cycle,
                 jobs_ratio=block_s / timeout, model_p=bm.predict_record(record, phases=phases).p,
                 in_band=timeout < stall_s <= cycle, label=label)


def run_directories(paths: Iterable[Path]) -> list[Path]:
    """Every run or search directory (one with a ``cells`` directory) at or under ``paths``."""
    found: list[Path] = []
    for path in paths:
        if (path / "cells").is_dir():
            found.append(path)
        found += sorted(p.parent for p in path.rglob("cells") if p.is_dir() and p.parent != path)
    return sorted(set(found))


def trials_from(paths: Sequence[Path], *, phases: int) -> list[Trial]:
    """The scored repeats of every run directory at or under ``paths``, grouped by directory."""
    from wsblock.schema.rundir import ok_records

    trials = []
    for directory in run_directories(paths):
        group = _group_name(directory, paths)
        for record in ok_records(directory):
            t = trial_of(record, group, phases=phases)
            if t is not None:
                trials.append(t)
    return trials


def _group_name(directory: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        try:
            rel = directory.relative_to(root)
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else directory.name
    return str(directory)


def model_beats_baselines(root: Path | str = DEFAULT_ROOT, *, band_only: bool = False,
                          phases: int = 100) -> bool:
    """Whether the model forecasts better than every baseline on the records under ``root``.

    Out of sample (leave one run or search directory out), on both the
    Brier score and the log loss, against every forecast of
    :data:`BASELINES`. Fails closed: ``False`` when ``root`` is missing or
    holds no scored repeat (in the band, with ``band_only``) or a single
    group. Computed from the records at each call (some seconds for the
    reference study's 435 repeats).

    Args:
        root: The reference records (default ``results/reference``, from
            the current directory).
        band_only: Judge only on repeats whose longest stall lies between
            the shortest ``ping_timeout`` and the cycle (near the boundary).
        phases: Phase grid of the model.
    """
    root = Path(root)
    if not root.is_dir():
        return False
    trials = trials_from([root], phases=phases)
    try:
        return score(trials, band_only=band_only).model_beats_baselines
    except ValueError:
        return False


def format_score(result: Score) -> str:
    """The scores as a markdown table, with what was scored and the conclusion."""
    lines = ["| forecast | Brier | log loss | groups where the model's Brier is lower than this |",
             "|---|---:|---:|---:|"]
    for r in result.rows:
        won = "" if r.groups_won is None else f"{r.groups_won} of {len(result.groups)}"
        lines.append(f"| {r.name} | {r.brier:.4f} | {r.log_loss:.4f} | {won} |")
    how = ("leave one group out" if result.out_of_sample
           else "one group only: fitted rules scored in sample")
    lines += ["", f"{result.repeats} repeats ({result.lost} lost a connection) in {len(result.groups)} groups "
                  f"({how}); log loss with probabilities clipped to [{EPS:g}, {1 - EPS:g}]",
              f"model beats every baseline on both scores: {'yes' if result.model_beats_baselines else 'no'}"]
    return "\n".join(lines)


def to_json(result: Score) -> str:
    """The scores as JSON."""
    return json.dumps(result.to_dict(), indent=2)


__all__ = ["BASELINES", "BASE_RATE", "DEFAULT_ROOT", "EPS", "FORECASTS", "JOBS_FITTED", "JOBS_RULE", "MODEL",
           "Row", "STALL_FITTED", "STALL_RULE", "Score", "Trial", "brier", "fit_threshold", "format_score",
           "leave_one_group_out", "log_loss", "model_beats_baselines", "run_directories", "score", "to_json",
           "trial_of", "trials_from"]
