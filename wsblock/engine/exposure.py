"""Keepalive exposure: could this window have seen a connection die?

A keepalive failure needs a ping and the expiry of its timeout. websockets
sends a connection's first ping ``ping_interval`` after it opened, and each
next one ``ping_interval`` after the previous pong; a ping's timeout expires
``ping_timeout`` after it was sent. A stall longer than ``ping_interval +
ping_timeout`` therefore always covers a whole ping-and-timeout, wherever it
falls: that span is one keepalive *cycle*.

A connection is *at risk* from its first ping (``opened + ping_interval``)
until it ends; only the part of that span inside the window counts, since a
death outside the window is not recorded. Its *complete cycles* are that
time divided by the cycle, rounded down. The verdict over a cell's original
connections (one per load slot, see :func:`originals`) is

* ``lost``: at least one of them disconnected inside the window;
* ``kept``: none did, and every one was at risk for at least ``min_cycles``
  complete cycles;
* ``inconclusive``: none did, but at least one was at risk for fewer cycles,
  so the window could not have shown its death: never read as "kept";
* ``not_applicable``: no keepalive can fail a connection of this cell
  (``ping_interval`` or both sides' ``ping_timeout`` are none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from wsblock.schema.keepalive import Keepalive

DEFAULT_MIN_CYCLES = 3
"""Complete cycles every original connection needs before a cell says ``kept``."""

VERDICTS = ("lost", "kept", "inconclusive", "not_applicable")


def cycle_for_params(params: dict[str, Any]) -> float | None:
    """The keepalive cycle (:attr:`Keepalive.cycle_s`) of a record's ``params``."""
    return Keepalive.of(params).cycle_s


@dataclass(frozen=True)
class Lifetime:
    """One connection of the load, on the window's time axis.

    Attributes:
        kind: ``job`` or ``observer``.
        slot: Index of the load slot within its kind.
        opened_s: Seconds from the window start to the opening (negative in
            the warm-up).
        ended_s: Seconds from the window start to the end, or ``None`` if it
            was still open when the window closed.
        end: ``disconnect`` (abnormal close), ``closed`` (normal close) or
            ``window`` (still open at the window end: censored).
    """

    kind: str
    slot: int
    opened_s: float
    ended_s: float | None
    end: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lifetime":
        return cls(data["kind"], int(data["slot"]), float(data["opened_s"]),
                   None if data.get("ended_s") is None else float(data["ended_s"]), data["end"])


def originals(lifetimes: Iterable[Lifetime], window_s: float) -> list[Lifetime]:
    """The original connection of each slot: its first one open inside the window.

    A slot's connection that died in the warm-up is not original; the one
    that replaced it is. Later connections of a slot are reconnects.
    """
    first: dict[tuple[str, int], Lifetime] = {}
    for c in sorted(lifetimes, key=lambda c: c.opened_s):
        if c.opened_s >= window_s or (c.ended_s is not None and c.ended_s < 0):
            continue
        first.setdefault((c.kind, c.slot), c)
    return sorted(first.values(), key=lambda c: (c.kind, c.slot))


def at_risk_s(c: Lifetime, *, ping_interval: float, window_s: float) -> float:
    """Seconds of the window in which ``c`` had a ping that could time out."""
    start = max(c.opened_s + ping_interval, 0.0)
    end = min(window_s if c.ended_s is None else c.ended_s, window_s)
    return max(0.0, end - start)


def survival(
    lifetimes: list[dict[str, Any]],
    *,
    params: dict[str, Any],
    window_s: float,
    min_cycles: int = DEFAULT_MIN_CYCLES,
) -> dict[str, Any]:
    """The record's ``survival`` section.

    Args:
        lifetimes: The load's connections (:class:`Lifetime` as dicts).
        params: The cell's parameters.
        window_s: Window length.
        min_cycles: Complete cycles needed for ``kept``.

    Returns:
        ``verdict``, ``reason``, ``cycle_s``, ``min_cycles``,
        ``cycles_observed``, ``originals`` and per-connection details.
    """
    conns = [Lifetime.from_dict(d) for d in lifetimes]
    first = originals(conns, window_s)
    cycle = cycle_for_params(params)
    interval = params.get("ping_interval")
    rows = []
    cycles: list[int] = []
    for c in first:
        risk = at_risk_s(c, ping_interval=interval, window_s=window_s) if cycle else None
        n = int(math.floor(risk / cycle + 1e-9)) if cycle and risk is not None else None
        if n is not None:
            cycles.append(n)
        rows.append({
            "kind": c.kind, "slot": c.slot,
            "opened_s": round(c.opened_s, 3),
            "ended_s": None if c.ended_s is None else round(c.ended_s, 3),
            "lifetime_s": round(min(window_s, c.ended_s if c.ended_s is not None else window_s)
                                - max(0.0, c.opened_s), 3),
            "end": "disconnect" if c.end == "disconnect" and c.ended_s is not None and c.ended_s < window_s
            else ("window" if c.ended_s is None or c.ended_s >= window_s else c.end),
            "at_risk_s": None if risk is None else round(risk, 3),
            "cycles": n,
        })
    lost = [r for r in rows if r["end"] == "disconnect"]
    observed = min(cycles) if cycles else None
    if not rows:
        verdict, reason = None, "no load connection was open inside the window"
    elif lost:
        verdict = "lost"
        reason = f"{len(lost)} of {len(rows)} original connections disconnected inside the window"
    elif cycle is None:
        verdict = "not_applicable"
        reason = "no keepalive can fail a connection of this cell (ping_interval or ping_timeout none)"
    elif observed is not None and observed >= min_cycles:
        verdict = "kept"
        reason = (f"every original connection was at risk for at least {observed} complete "
                  f"keepalive cycles of {cycle:g} s")
    else:
        verdict = "inconclusive"
        reason = (f"an original connection was at risk for only {observed} complete keepalive "
                  f"cycles of {cycle:g} s (at least {min_cycles} are needed to say kept)")
    return {
        "verdict": verdict,
        "reason": reason,
        "cycle_s": cycle,
        "min_cycles": min_cycles,
        "cycles_observed": observed,
        "originals": len(rows),
        "original_lost": len(lost),
        "connections": rows,
    }
