"""The loop's stall pattern under each strategy, predicted from a profile of the call.

How each strategy lets the call stop the server's event loop follows from
the call's own figures (:mod:`wsblock.advise.profile`), with ``N`` calls at
once (one per job connection, each sent again as soon as it is answered):

* **inline**: the call runs on the loop. The N requests that arrived during
  one loop iteration are all run in the next one, back to back, so the loop
  reads no socket for ``N x call`` at a time, and it does little else: the
  loop is stalled nearly all the time (``docs/design.md``, "two
  iterations"; ``results/reference/FINDINGS.md``, section 8).
* **chunked**: the call runs on the loop one step at a time, and the loop
  runs one step of each of the N calls per iteration: ``N x`` a step (the
  99th percentile of the steps' lengths) at a time, nearly all the time.
* **thread**: the call runs in a pool thread and the loop waits only for the
  GIL: for as long as the call holds it at once (the probe's hold, seen in
  at least two calls), or, where it is longer, for as long as an event loop
  beside the call stalled (the loop probe's stall, seen in at least two
  calls). The second is what a call that holds the GIL in switch-interval
  slices (pure Python) does to a loop: the loop waits about one switch
  interval after each of its system calls (each releases the GIL), and the
  waits of one iteration can add up (the convoy effect), which one probe's
  lateness does not show. A call that releases the GIL predicts a small
  stall. The GIL-holding parts of N calls run one after another, so the
  share of time stalled is N times one call's share in long stalls (at most
  all of it).
* **process**: the call runs in another process and the loop is free, except
  that the server unpickles each result in its own process, holding the
  GIL: a stall of the unpickling time per result (plus the job's pickling,
  usually tiny), N results per call, pickling and unpickling time. A pool
  of more workers than the machine has cores left over takes cores from the
  loop too (not modelled).

Under every strategy the handler gets the result back on the loop and drops
it when it has replied: freeing a large result (many objects) is the loop's
own work, a stall of its own under ``thread`` and part of the block under
the others.

A stall shorter than the stall threshold is not a stall (a record would not
count it). The keepalive outcome at the user's settings follows from the
pattern through the boundary model (:func:`wsblock.advise.predict.forecast`,
which the pattern is handed to as the record it predicts a cell would write).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wsblock.advise import predict

WINDOW_S = 60.0
"""Window of the record a pattern is written as (the forecast rescales it to its horizon)."""


@dataclass(frozen=True)
class Call:
    """The figures of one call the prediction rests on, in ms.

    Attributes:
        p50: Median call time.
        max: Longest call time.
        step_max: Longest step (the whole call when it does not yield).
        hold_max: Longest GIL hold at once (the probe's lateness).
        over_share: Share of the call spent in holds longer than the threshold.
        over_per_call: Holds longer than the threshold per call.
        unpickle_p50: Median time to unpickle the result (``None``: no process pool can run it).
        unpickle_max: Longest time to unpickle the result.
        job_pickle: Time to pickle the job.
        result_pickle: Time to pickle the result (in the worker, after the call).
        free_max: Longest time to free a result (the handler drops it, on the loop).
        loop_stall: Longest stall of an event loop beside the call in a thread (``None``: not measured).
        loop_over_share: Share of the call that loop spent in stalls longer than the threshold.
        loop_over_per_call: That loop's stalls longer than the threshold per call.
    """

    p50: float
    max: float
    step_max: float
    hold_max: float
    over_share: float
    over_per_call: float
    unpickle_p50: float | None = None
    unpickle_max: float | None = None
    job_pickle: float = 0.0
    result_pickle: float = 0.0
    free_max: float = 0.0
    loop_stall: float | None = None
    loop_over_share: float = 0.0
    loop_over_per_call: float = 0.0


@dataclass(frozen=True)
class Stalls:
    """The predicted stall pattern of one strategy.

    Attributes:
        strategy: Strategy name.
        longest_ms: Longest time a socket waits for the loop.
        share: Share of the time the loop is stalled (stalls over the threshold only).
        typical_ms: Mean length of a stall over the threshold (0: none).
        heartbeat_ms: Longest stall as the loop's heartbeat would record it
            (``inline``, ``chunked``: one job or step more than a socket sees).
        mechanism: What stalls the loop, in words.
        threshold_ms: The stall threshold.
    """

    strategy: str
    longest_ms: float
    share: float
    typical_ms: float
    heartbeat_ms: float
    mechanism: str
    threshold_ms: float

    @property
    def stalls(self) -> bool:
        """Whether any stall goes over the threshold."""
        return self.share > 0 and self.heartbeat_ms > self.threshold_ms


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pattern(strategy: str, call: Call, *, concurrency: int, threshold_ms: float) -> Stalls:
    """The stall pattern of one strategy (see the module's description).

    Args:
        strategy: ``inline``, ``chunked``, ``thread`` or ``process``.
        call: The call's figures.
        concurrency: Calls at once (job connections).
        threshold_ms: The stall threshold.

    Raises:
        ValueError: An unknown strategy.
    """
    n = max(1, concurrency)
    free = call.free_max
    if strategy == "inline":
        each = call.p50 + free  # the handler frees the result before the loop moves on
        longest = (n - 1) * each + call.max + free
        beat = longest + call.p50
        share = 1.0 if beat > threshold_ms else 0.0
        said = f"runs on the loop: blocked for the whole call, {_plural(n, 'call')} per iteration"
        return Stalls(strategy, longest, share, (n + 1) * each, beat, said, threshold_ms)
    if strategy == "chunked":
        longest = max(n * call.step_max, free)
        beat = longest + call.step_max
        share = 1.0 if beat > threshold_ms else 0.0
        said = f"runs on the loop step by step: blocked per step, {_plural(n, 'step')} per iteration"
        return Stalls(strategy, longest, share, beat, beat, said, threshold_ms)
    if strategy == "thread":
        # The loop beside the call stalls at least as long as the call holds
        # the GIL at once; where it stalled longer, its waits convoyed.
        loop = call.loop_stall if call.loop_stall is not None else 0.0
        convoy = loop > call.hold_max
        wait = loop if convoy else call.hold_max
        over_share, over_per_call = ((call.loop_over_share, call.loop_over_per_call) if convoy
                                     else (call.over_share, call.over_per_call))
        holds, frees = wait > threshold_ms, free > threshold_ms
        share = (n * over_share if holds else 0.0) + (n * free / (call.p50 + free) if frees else 0.0)
        if holds:
            typical = (over_share * call.p50 / over_per_call) if over_per_call > 0 else wait
        else:
            typical = free
        longest = max(wait, free)
        if frees and free >= wait:
            said = "the handler frees the large result on the loop"
        elif holds and convoy and call.hold_max <= threshold_ms:
            said = "the loop waits for the GIL after each of its system calls (convoy)"
        elif holds:
            said = "the loop waits for the GIL: the longest hold at once"
        else:
            said = "no long GIL hold: the loop waits only briefly"
        return Stalls(strategy, longest, min(1.0, share), typical, longest, said, threshold_ms)
    if strategy == "process":
        if call.unpickle_max is None:
            raise ValueError("process needs the result's unpickling time")
        # The pool's thread unpickles the result holding the GIL; the loop
        # then wakes into the handler, which frees it: one block.
        longest = call.unpickle_max + call.job_pickle + free
        typical = (call.unpickle_p50 or 0.0) + call.job_pickle + free
        # One result per connection per call, pickling and unpickling:
        # the workers run side by side, the server unpickles one at a time.
        period = call.p50 + call.result_pickle + typical
        share = min(1.0, n * typical / period) if longest > threshold_ms else 0.0
        said = "loop free but for unpickling each result (GIL held)"
        return Stalls(strategy, longest, share, typical, longest, said, threshold_ms)
    raise ValueError(f"no stall model for strategy {strategy!r}")


def as_record(stalls: Stalls, *, call_p50_ms: float, concurrency: int, ping_interval: float | None,
              ping_timeout: float | None, window_s: float = WINDOW_S) -> dict[str, Any]:
    """The record a cell with this stall pattern would write, as far as the boundary model reads one.

    The heartbeat's stalls are written as a record keeps them (count,
    total, longest); ``inline`` jobs' length goes with them, because the
    model reads an inline heartbeat stall as one job longer than its block.
    """
    if stalls.stalls:
        total = stalls.share * window_s * 1000.0
        count = max(1, int(round(total / max(stalls.typical_ms, stalls.threshold_ms))))
        summary = {"count": count, "total_ms": total, "max_ms": stalls.heartbeat_ms}
    else:
        summary = {"count": 0, "total_ms": 0.0, "max_ms": 0.0}
    return {
        "status": "ok",
        "params": {"strategy": stalls.strategy, "ping_interval": ping_interval, "ping_timeout": ping_timeout,
                   "client_pings": True, "handler_ping_timeout": None, "job_connections": concurrency,
                   "duration": window_s},
        "window": {"duration_s": window_s},
        "job_ms": {"completed_p50": call_p50_ms},
        "stalls": summary,
    }


@dataclass(frozen=True)
class Predicted:
    """One strategy's predicted stall pattern and keepalive outcome.

    Attributes:
        stalls: The stall pattern.
        forecast: P(a connection is lost in the horizon) at the user's settings.
    """

    stalls: Stalls
    forecast: predict.Forecast | None


def predict_all(call: Call, strategies: list[str], *, concurrency: int, threshold_ms: float,
                ping_interval: float | None, ping_timeout: float | None,
                checked: predict.CheckedRange | None) -> list[Predicted]:
    """The stall pattern and keepalive forecast of every strategy, in the order given."""
    out = []
    for strategy in strategies:
        s = pattern(strategy, call, concurrency=concurrency, threshold_ms=threshold_ms)
        record = as_record(s, call_p50_ms=call.p50, concurrency=concurrency, ping_interval=ping_interval,
                           ping_timeout=ping_timeout)
        out.append(Predicted(s, predict.forecast([record], ping_interval=ping_interval, ping_timeout=ping_timeout,
                                                 checked=checked)))
    return out


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.2g} ms"


def table(predicted: list[Predicted]) -> list[str]:
    """Strategy, predicted longest stall, stalled share, P(loss) over the horizon, checked range, mechanism."""
    header = ["strategy", "longest stall", "stalled", f"P(loss in {predict.HORIZON_S / 3600:g} h)", "model", "why"]
    rows = []
    for p in predicted:
        s, f = p.stalls, p.forecast
        longest = _ms(s.longest_ms) if s.stalls else f"{_ms(s.longest_ms)} (under {s.threshold_ms:g} ms: none)"
        if f is None or not math.isfinite(f.horizon_s):
            chance, where = "0 (no timeout)", "–"
        else:
            chance = f"{f.p:.2f} [{f.low:.2f}, {f.high:.2f}]"
            where = "extrapolated" if f.extrapolated else "checked range"
        rows.append([s.strategy, longest, f"{s.share * 100:.0f} %", chance, where, s.mechanism])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]


__all__ = ["Call", "Predicted", "Stalls", "WINDOW_S", "as_record", "pattern", "predict_all", "table"]
