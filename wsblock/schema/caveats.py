"""Which way each warning can move a verdict: the caveats of a record, declared once.

A record's warnings (``docs/record.md``) say how far its numbers can be
trusted; they do not all say the same thing. Before a warning may stop a
verdict, ask of it: could it have made this cell look *safer* than it is?

* A **harsher** condition can only make a cell look worse: busy cores,
  background load, jobs that ran longer than their target. A ``safe``
  measured under it is conservative, and says so; a ``drops connections``
  or a ``slow loop`` under it may be partly the condition's doing, and says
  that too.
* A **safer** condition could have made a cell look better than it is:
  jobs shorter than their target, a saturated load (fewer pings and echoes
  sent than planned), connections that were not the load's, messages the
  handler could not serve, a window cut short. Only these block ``safe``,
  and only for the cells and strategy where they occurred.
* A condition **of a figure** concerns one figure's samples (``few_samples``
  is raised once per thin measure: probe, jobs, echoes): the rules judge
  that figure's own sample count instead of the code (a withheld probe
  percentile is never read, and the watchdog's stall figures stand in).
* A condition **by sign** goes either way: ``calibration_drift`` is harsher
  when the jobs ran longer than their target and safer when they ran
  shorter; the sign is read from ``work_ratio_to_target``.
* A **neutral** note moves no verdict (a CPU figure that could not be read,
  a ``work_ms`` that a function without units ignores).

A code not declared here is treated as safer: an unknown caveat never
passes a rule. The analysis reads this table; the engine raises the codes
(``wsblock/engine/checks.py``); this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

HARSHER = "harsher"
"""Can only make a cell look worse than it is."""

SAFER = "safer"
"""Could make a cell look better (safer) than it is."""

OF_FIGURE = "of a figure"
"""Concerns one figure's samples: judged by that figure's own sample count."""

BY_SIGN = "by sign"
"""Harsher or safer depending on the sign of a measured ratio."""

NEUTRAL = "neutral"
"""Moves no verdict."""

DIRECTIONS = (HARSHER, SAFER, OF_FIGURE, BY_SIGN, NEUTRAL)

MOVES: dict[str, tuple[str, ...]] = {
    HARSHER: ("drops connections", "slow loop"),
    SAFER: ("safe",),
    OF_FIGURE: ("safe",),
    NEUTRAL: (),
}
"""Direction -> the verdicts a condition in that direction could have produced falsely.

A harsher condition can make a strategy look as if it drops connections or
slows the loop when it would not on a quiet machine; a safer one (or a
figure from too few samples) can make it look ``safe`` when it is not. A
:data:`BY_SIGN` code moves as the direction its sign gives."""


@dataclass(frozen=True)
class Caveat:
    """One warning code and the direction in which it can move a verdict.

    Attributes:
        code: The warning code, as records carry it.
        direction: One of :data:`DIRECTIONS`.
        harsher: Why it makes a cell harsher, in words that follow
            "measured with ..." (empty when it never does).
        safer: Why it could make a cell look safer, in words (empty when it
            never does).
        window_survival_only: It concerns only survival as the window
            observed it, so a survival predicted from the measured stalls
            (``wsblock advise`` at long keepalive settings) does not rest on
            it.
    """

    code: str
    direction: str
    harsher: str = ""
    safer: str = ""
    window_survival_only: bool = False

    def moves(self, ratio_to_target: float | None = None) -> tuple[str, ...]:
        """The verdicts this caveat could have produced falsely (:data:`MOVES`), given the drift's sign."""
        return MOVES[direction(self.code, ratio_to_target)]

    @property
    def blocks_safe(self) -> bool:
        """Whether its presence alone (whatever the figures) can stop a ``safe``."""
        return self.direction == SAFER


CAVEATS: tuple[Caveat, ...] = (
    Caveat("oversubscribed", HARSHER,
           harsher="every core of the machine busy (the cell's processes competed for the CPU)"),
    Caveat("background_load", HARSHER,
           harsher="lower-priority background load keeping the cores busy"),
    Caveat("stalled_at_window_start", HARSHER,
           harsher="the loop still stalled by the harness's own set-up when the window opened"),
    # The cell's own work running when the window opened (a warm-up job
    # reaching into it) is what the strategy does: it counts in the window
    # like any other stall, and is no condition of the measurement.
    Caveat("busy_at_window_start", NEUTRAL),
    Caveat("stray_processes", HARSHER,
           harsher="processes a user's function left running, which shared the machine with the cell"),
    Caveat("calibration_drift", BY_SIGN,
           harsher="jobs longer than their target",
           safer="its jobs ran shorter than their target, so the work the cell names was not all done"),
    Caveat("load_saturated", SAFER,
           safer="the load sent fewer echoes and pings than it offered, so the server was tested less"),
    Caveat("foreign_connections", SAFER,
           safer="connections that were not the load's were served, and their work is in no measurement"),
    Caveat("handler_errors", SAFER,
           safer="the handler could not serve some messages, so some work was never done"),
    Caveat("window_bounded", SAFER,
           safer="the window was cut to its maximum, so fewer keepalive cycles and jobs were observed than "
                 "planned"),
    Caveat("inconclusive_window", SAFER,
           safer="the window was too short to show a keepalive timeout", window_survival_only=True),
    Caveat("legacy_record", SAFER,
           safer="an older record, measured before exposure, stall clipping and original connections were "
                 "recorded"),
    Caveat("few_samples", OF_FIGURE,
           safer="a figure from too few samples can miss what the rest of the window held"),
    Caveat("cpu_unmeasured", NEUTRAL),
    Caveat("work_ms_ignored", NEUTRAL),
)
"""Every warning code a record can carry, with its direction."""

BY_CODE: dict[str, Caveat] = {c.code: c for c in CAVEATS}

UNKNOWN_SAFER = "a warning this version does not know, which could have made the cell look safer"
"""Why an undeclared code blocks ``safe``: an unknown caveat never passes a rule."""


def caveat(code: str) -> Caveat:
    """The declaration of a code; an undeclared code is :data:`SAFER` (fail closed)."""
    return BY_CODE.get(code) or Caveat(code, SAFER, safer=UNKNOWN_SAFER)


def direction(code: str, ratio_to_target: float | None = None, *, limit: float = 0.15) -> str:
    """The direction of one occurrence of a code: :data:`HARSHER`, :data:`SAFER`, :data:`OF_FIGURE` or :data:`NEUTRAL`.

    Args:
        code: The warning code.
        ratio_to_target: For :data:`BY_SIGN` codes, the measured job time
            over its target in the cell (``None`` or NaN: unknown).
        limit: How far from 1 the ratio must be to count as drift (the
            engine's ``DRIFT_LIMIT``).

    Returns:
        The direction; a :data:`BY_SIGN` code whose sign is unknown is
        :data:`SAFER` (fail closed).
    """
    declared = caveat(code)
    if declared.direction != BY_SIGN:
        return declared.direction
    if ratio_to_target is None or ratio_to_target != ratio_to_target:
        return SAFER
    if ratio_to_target > 1.0 + limit:
        return HARSHER
    if ratio_to_target < 1.0 - limit:
        return SAFER
    # Within the limit in this aggregate (e.g. a median over repeats): no drift to speak of.
    return NEUTRAL


def at_window_start_warning(at_start: Mapping[str, Any]) -> dict[str, str]:
    """The warning for a stall going on when the window opened, by whose it was.

    A stall of the harness's set-up is ``stalled_at_window_start``: left out
    of the window's stall figures, but connections lost early in the window
    may be its doing, which can only make the cell look worse. A stall of
    the warm-up (the load connected, the cell's first jobs running) is the
    strategy's own work: ``busy_at_window_start``, a note that moves no
    verdict, since the stall counts in the window like any other.

    Args:
        at_start: ``stalls.before_window.at_window_start`` of a record
            (``phase``, ``began_ms_before``, ``ms_into_window``, ``site``).
    """
    began = f"{at_start['began_ms_before']:,.0f} ms before it"
    into = f"{at_start['ms_into_window']:,.0f} ms into it"
    site = f" (at {at_start['site']})" if at_start.get("site") else ""
    if at_start.get("phase") == "setup":
        return {"code": "stalled_at_window_start", "message":
                f"the server's loop was stalled when the window opened: a stall that began {began}, "
                f"during the harness's own set-up (left out of the window's stall figures), lasted "
                f"{into}{site}; connections lost early in the window may be its doing"}
    return {"code": "busy_at_window_start", "message":
            f"the cell's own work held the loop when the window opened: a stall that began {began}, "
            f"during the warm-up with the load connected, lasted {into}{site}; it counts from the "
            "window's start like any other stall of the cell"}


__all__ = ["BY_CODE", "at_window_start_warning", "BY_SIGN", "CAVEATS", "Caveat", "DIRECTIONS", "HARSHER", "MOVES", "NEUTRAL", "OF_FIGURE", "SAFER",
           "UNKNOWN_SAFER", "caveat", "direction"]
