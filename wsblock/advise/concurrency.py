"""For how many calls at once a recommendation holds.

``--concurrency N`` is the number of calls the user's server runs at once;
advise measures with N job connections, each keeping one call in flight.
Beyond the measured N, the reference study's boundary gives an estimate
(``results/reference/FINDINGS.md``, section 8): N calls that each block the
loop for L lose connections near ``N x L = ping_timeout``, and some were
lost already at ``ping_timeout = 2 x N x L``, so the rule of thumb is
``ping_timeout > MARGIN x N x L``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

MARGIN = 3.0
"""FINDINGS section 8's rule of thumb: ``ping_timeout`` must exceed this many times N x L."""


@dataclass(frozen=True)
class Reach:
    """How far a strategy's verdict reaches in concurrent calls.

    Attributes:
        strategy: The strategy.
        measured: Calls at once in the cells (``--concurrency``).
        ping_timeout: The user's ``ping_timeout`` (``None``: none).
        block_ms: Longest time one call blocked the loop under this strategy
            (``None``: no stall over the stall threshold).
        stall_ms: The stall threshold (shorter blocks are not recorded).
        up_to: Largest N with ``ping_timeout > MARGIN x N x L`` (``None``: no
            timeout, so no keepalive boundary).
        lower_bound: Whether ``up_to`` is only a lower bound (L was under the threshold).
    """

    strategy: str
    measured: int
    ping_timeout: float | None
    block_ms: float | None
    stall_ms: float
    up_to: int | None
    lower_bound: bool


def longest_block_ms(records: Sequence[Mapping[str, Any]], strategy: str) -> float | None:
    """The longest loop stall of any ok repeat of ``strategy`` (``None`` when none exceeded the threshold).

    A stall measured with N calls at once may hold several calls' blocks;
    read whole as one call's, it makes the reach shorter, never longer.
    An ``inline`` call blocks the loop for all of its length, so its longest
    job counts too.
    """
    ok = [r for r in records if r.get("status") == "ok" and (r.get("params") or {}).get("strategy") == strategy]
    values = [float(((r.get("stalls") or {}).get("max_ms")) or 0.0) for r in ok]
    if strategy == "inline":
        values += [float(((r.get("job_ms") or {}).get("max")) or 0.0) for r in ok]
    longest = max(values, default=0.0)
    return longest if longest > 0 else None


def reach(strategy: str, records: Sequence[Mapping[str, Any]], *, measured: int, ping_timeout: float | None,
          stall_ms: float) -> Reach:
    """How many calls at once ``strategy``'s verdict would still hold for, by FINDINGS section 8."""
    block = longest_block_ms(records, strategy)
    if ping_timeout is None:
        return Reach(strategy, measured, None, block, stall_ms, None, False)
    length = block if block is not None else stall_ms
    up_to = int(math.floor(ping_timeout * 1000.0 / (MARGIN * length)))
    return Reach(strategy, measured, ping_timeout, block, stall_ms, up_to, block is None)


def _calls(n: int) -> str:
    return f"{n} call{'' if n == 1 else 's'}"


def lines(r: Reach | None, measured: int, *, recommended: bool = True, searched: str = "") -> list[str]:
    """The concurrency the recommendation holds for, in words.

    Args:
        r: The reach of the recommended strategy, or (``recommended`` false)
            of the closest one when none qualifies; ``None``: nothing to say.
        measured: Calls at once in the cells.
        recommended: Whether ``r`` is the recommendation's.
        searched: Where the boundary was measured, in words (``2 calls at
            once, ping_timeout 0.5-2 s``), named beside an estimate.
    """
    none = f"concurrency: no strategy qualifies with {_calls(measured)} at once (--concurrency {measured})"
    if r is None:
        return [none]
    if recommended:
        head = (f"concurrency: {r.strategy} holds for {_calls(r.measured)} at once (--concurrency {r.measured}, "
                f"measured)")
    else:
        head = none + f"; for the closest, {r.strategy}:"
    if r.up_to is None:
        return [head + ("; without" if recommended else " without")
                + " a ping_timeout no keepalive drops a connection, whatever the concurrency"]
    block = (f"each call blocked the loop for up to {r.block_ms:,.0f} ms" if r.block_ms is not None
             else f"no call blocked the loop for over {r.stall_ms:g} ms")
    bound = "at least " if r.lower_bound else "about "
    subject = "it" if recommended else f"{r.strategy}'s connections"
    if r.up_to < r.measured:
        tail = (f"by that rule even {_calls(r.measured)} at once are too many ({block}): expect losses over "
                f"longer runs than the cells'")
    elif r.up_to == r.measured:
        tail = f"{block}, so {_calls(r.measured)} at once is the most {subject} would hold by that rule"
    else:
        where = f"; the boundary was measured at {searched}" if searched else ""
        tail = (f"{block}, so {subject} would still hold up to {bound}{_calls(r.up_to)} at once (an estimate for "
                f"keepalive alone beyond {r.measured}, not measured{where})")
    return [head, f"  FINDINGS section 8: N calls that each block the loop for L lose connections near N x L = "
                  f"ping_timeout; keep ping_timeout ({r.ping_timeout:g} s) above {MARGIN:g} x N x L: {tail}"]


def margin_line(records: Sequence[Mapping[str, Any]], strategies: Sequence[str], *, ping_timeout: float | None,
                stall_ms: float) -> str | None:
    """How far each strategy's longest loop block is from ``ping_timeout``, in one line (``None`` without a timeout).

    A connection can be lost only when the loop is blocked for longer than
    ``ping_timeout`` at once (``docs/boundary-model.md``); at long timeouts
    this says how much longer a production call could be.
    """
    if ping_timeout is None:
        return None
    parts = []
    for strategy in strategies:
        block = longest_block_ms(records, strategy)
        parts.append(f"{strategy} {block:,.0f} ms ({block / (ping_timeout * 1000.0):.0%} of it)" if block is not None
                     else f"{strategy} none over {stall_ms:g} ms")
    return (f"margin: a connection can be lost only when the loop is blocked for longer than ping_timeout "
            f"({ping_timeout:g} s) at once; the longest block measured: {', '.join(parts)}")


__all__ = ["MARGIN", "Reach", "lines", "longest_block_ms", "margin_line", "reach"]
