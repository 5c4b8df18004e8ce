"""A model of keepalive survival: P(an original connection is lost in a window).

The derivation, its assumptions and its limits are in ``docs/boundary-model.md``.
In short: the server's loop alternates between *blocks* (times it reads no
socket) and free time. websockets answers a ping inside the socket's read
callback, so

* a **client** ping that arrives ``u`` seconds into a block of length ``b``
  is answered ``b - u`` later; the client (whose loop is free) gives up when
  ``b - u > ping_timeout``;
* a **server** ping is written when the server's keepalive task runs, that is
  when its loop is free; it is lost only if the loop starts another block of
  more than ``ping_timeout`` before it reads the pong (a race, probability
  ``race``), because when the pong's read and the expired timeout fall in the
  same loop iteration the timeout wins (``asyncio.timeout`` has already
  cancelled the task by the time it resumes).

Pings of one side follow websockets' keepalive loop: the next ping is sent
``max(ping_interval, latency)`` after the previous one. The probability is
averaged over the phase of the ping train against the blocks, on a fixed
grid, so every function here is deterministic.

The blocks of a cell come from its record (:func:`pattern_from_record`):
heartbeat stalls (count, total, longest) and, for ``inline``, the job length,
because the lag probe's heartbeat sees one job more than a socket does
(``docs/design.md``, "two iterations").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from wsblock.schema.keepalive import Keepalive

PHASES = 400
"""Phases of the ping train averaged over (a grid over one ping interval)."""

RACE = 0.5
"""Point estimate of the chance that a server ping's pong misses the select
before a back-to-back block (not derivable from records; 0 and 1 bound it)."""

BACK_TO_BACK_S = 0.002
"""A gap shorter than this between blocks leaves no time to read a pong."""


@dataclass(frozen=True)
class Blocks:
    """Times the server's loop reads no socket, laid out over a window.

    Attributes:
        lengths: Block lengths in seconds, in time order.
        gaps: Free time after each block, seconds (same length as ``lengths``).
        window_s: The window the blocks cover.
        source: How the lengths were obtained, in words.
    """

    lengths: tuple[float, ...]
    gaps: tuple[float, ...]
    window_s: float
    source: str = ""

    def spans(self, offset: float = 0.0) -> list[tuple[float, float]]:
        """``(start, end)`` of each block, starting at ``offset``, repeated to cover the window."""
        out: list[tuple[float, float]] = []
        period = sum(self.lengths) + sum(self.gaps)
        if not self.lengths or period <= 0:
            return out
        t = offset - period
        while t < self.window_s + period:
            for length, gap in zip(self.lengths, self.gaps):
                out.append((t, t + length))
                t += length + gap
        return out


@dataclass(frozen=True)
class Prediction:
    """Predicted probability that one original connection is lost in the window.

    Attributes:
        p: Point estimate.
        low: Lower end (optimistic block lengths, server race 0).
        high: Upper end (pessimistic block lengths, server race 1).
        client: Point estimate of the client channel alone.
        server: Point estimate of the server channel alone.
        basis: What the prediction rests on, in words.
    """

    p: float
    low: float
    high: float
    client: float
    server: float
    basis: str = ""
    notes: tuple[str, ...] = field(default=())


def _block_at(spans: Sequence[tuple[float, float]], t: float, start: int) -> tuple[int, tuple[float, float] | None]:
    # Spans are sorted; walk from the last index used (pings only move forward).
    i = start
    while i < len(spans) and spans[i][1] <= t:
        i += 1
    if i < len(spans) and spans[i][0] <= t < spans[i][1]:
        return i, spans[i]
    return i, None


def client_train_lost(spans: Sequence[tuple[float, float]], *, first_ping: float, ping_interval: float,
                      ping_timeout: float, window_s: float) -> bool:
    """Whether one client ping train fails against the blocks.

    The client's loop is free, so its timeout fires ``ping_timeout`` after
    each ping in real time; the server writes the pong when its current
    block ends.

    Args:
        spans: Sorted ``(start, end)`` of the server's blocks.
        first_ping: Time of the first ping.
        ping_interval: Seconds from a ping to the next (after a fast pong).
        ping_timeout: The client's timeout.
        window_s: Pings at or after this time are not counted.

    Returns:
        ``True`` when some ping sent from 0 on waits longer than
        ``ping_timeout`` and its timeout fires before ``window_s``.
    """
    t = first_ping
    idx = 0
    while t < window_s:
        idx, span = _block_at(spans, t, idx)
        latency = 0.0 if span is None else span[1] - t
        if latency > ping_timeout:
            # Lost when the timeout fires, which must be inside the window.
            return 0.0 <= t and t + ping_timeout < window_s
        t += max(ping_interval, latency)
    return False


def server_train_loss(spans: Sequence[tuple[float, float]], *, first_ping: float, ping_interval: float,
                      ping_timeout: float, window_s: float, race: float) -> float:
    """Probability that one server ping train fails against the blocks.

    The keepalive task wakes from a timer, so a ping due inside a block is
    written when the block ends; the pong comes back at once from a free
    client. It is lost only when the next block starts before the loop reads
    the pong (gap under :data:`BACK_TO_BACK_S`, then with probability
    ``race``) and lasts longer than ``ping_timeout``.

    Args:
        spans: Sorted ``(start, end)`` of the server's blocks.
        first_ping: Time the first ping is due.
        ping_interval: Seconds from a pong to the next ping.
        ping_timeout: The server's timeout.
        window_s: Pings at or after this time are not counted.
        race: Probability that the pong misses the select before a back-to-back block.

    Returns:
        The probability that some ping times out inside ``[0, window_s)``.
    """
    survive = 1.0
    t = first_ping
    idx = 0
    while t < window_s:
        idx, span = _block_at(spans, t, idx)
        sent = t if span is None else span[1]
        nxt = idx + 1 if span is not None else idx
        if span is None and nxt < len(spans) and spans[nxt][0] <= sent:
            nxt += 1
        if sent >= 0.0 and sent + ping_timeout < window_s and nxt < len(spans):
            start, end = spans[nxt]
            if start - sent < BACK_TO_BACK_S and end - start > ping_timeout:
                survive *= 1.0 - race
                if survive <= 0.0:
                    return 1.0
                # The ping survived the race: the pong was read before the block.
        t = sent + ping_interval
    return 1.0 - survive


def loss_probability(blocks: Blocks, keepalive: Keepalive, *, race: float = RACE,
                     phases: int = PHASES) -> tuple[float, float, float]:
    """Probability that one connection is lost, averaged over its ping phase.

    The two sides' ping trains start together (both keepalive tasks start
    when the connection opens) and are treated as independent channels:
    ``1 - (1 - client) (1 - server)``.

    Args:
        blocks: The server's blocks over the window.
        keepalive: The connection's settings.
        race: See :func:`server_train_loss`.
        phases: Grid of phases averaged over.

    Returns:
        ``(total, client, server)`` probabilities.
    """
    if not keepalive.can_fail or not blocks.lengths:
        return 0.0, 0.0, 0.0
    interval = keepalive.ping_interval
    assert interval is not None
    client = server = 0.0
    spans = blocks.spans()
    for k in range(phases):
        # The phase of the ping train against the blocks: shifting the first
        # ping over one interval covers every relative position.
        first = (k + 0.5) / phases * interval
        if keepalive.client_timeout is not None:
            client += client_train_lost(spans, first_ping=first, ping_interval=interval,
                                        ping_timeout=keepalive.client_timeout, window_s=blocks.window_s)
        if keepalive.server_timeout is not None:
            server += server_train_loss(spans, first_ping=first, ping_interval=interval,
                                        ping_timeout=keepalive.server_timeout, window_s=blocks.window_s,
                                        race=race)
    client /= phases
    server /= phases
    return 1.0 - (1.0 - client) * (1.0 - server), client, server


def certain_loss_job_s(keepalive: Keepalive) -> float | None:
    """The block length that kills every client-pinging connection: ``ping_interval + ping_timeout``."""
    if keepalive.ping_interval is None or keepalive.client_timeout is None:
        return None
    return keepalive.ping_interval + keepalive.client_timeout


def first_loss_job_s(keepalive: Keepalive) -> float | None:
    """The block length below which no ping can time out: the shortest timeout."""
    timeouts = [t for t in (keepalive.client_timeout, keepalive.server_timeout) if t is not None]
    if keepalive.ping_interval is None or not timeouts:
        return None
    return min(timeouts)


# --- records -> blocks -------------------------------------------------------

INLINE_LIKE = ("inline",)
"""Strategies whose jobs run as callbacks on the loop (one job per block)."""


def heartbeat_stalls(stalls: Mapping[str, Any]) -> list[float]:
    """Rebuild the stall lengths (s) a record summarises.

    A record keeps the count, the total and the longest stall, not each
    stall: the longest is kept as is and the rest share the remaining total
    equally (the least informative split with those three numbers).

    Args:
        stalls: The record's ``stalls``.

    Returns:
        Stall lengths in seconds, longest in the middle.
    """
    count = int(stalls.get("count") or 0)
    if count <= 0:
        return []
    longest = float(stalls.get("max_ms") or 0.0) / 1000.0
    total = float(stalls.get("total_ms") or 0.0) / 1000.0
    if count == 1:
        return [longest]
    rest = max(0.0, total - longest) / (count - 1)
    rest = min(rest, longest)
    others = [rest] * (count - 1)
    half = len(others) // 2
    return others[:half] + [longest] + others[half:]


def job_length_s(record: Mapping[str, Any]) -> float | None:
    """A cell's job length (s) as the model reads it: the median completed job, else the target."""
    job = record.get("job_ms") or {}
    for key in ("completed_p50", "p50", "max"):
        value = job.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return float(value) / 1000.0
    work = record.get("params", {}).get("work_ms")
    return float(work) / 1000.0 if isinstance(work, (int, float)) else None


def _window_s(record: Mapping[str, Any]) -> float:
    window = record.get("window") or {}
    value = window.get("duration_s") or record.get("params", {}).get("duration")
    return float(value) if value else 0.0


def blocks_from_record(record: Mapping[str, Any], *, shade: str = "point") -> Blocks:
    """The socket-visible blocks of a cell, from its record.

    Inline jobs are callbacks on the loop: the lag probe's heartbeat gap
    spans the jobs of two loop iterations where a socket sees those of one,
    so a heartbeat stall ``h`` is read as a block of ``h - job`` (at least one
    job). Other strategies block the loop only through the GIL or short
    steps: a heartbeat stall is read as a block of its own length.

    Args:
        record: A record in the current layout.
        shade: ``point`` (as above), ``low`` (inline: one job per block),
            ``high`` (every heartbeat stall read as a block whole) or
            ``paired`` (inline: the jobs of every job connection in one
            block, round after round).

    Returns:
        The blocks, with the busy share of the record's stalls.
    """
    params = record.get("params", {})
    window = _window_s(record)
    stalls = record.get("stalls") or {}
    heart = heartbeat_stalls(stalls)
    if not heart or window <= 0:
        return Blocks((), (), window, "no stall over the stall threshold")
    total = sum(heart)
    busy = min(1.0, float(stalls.get("total_ms") or total * 1000.0) / 1000.0 / window)
    if params.get("strategy") in INLINE_LIKE:
        job = job_length_s(record) or 0.0
        if shade == "paired":
            # Every job connection's job read in one poll and run in one
            # iteration, round after round: blocks of N jobs.
            n = max(1, int(params.get("job_connections") or 1))
            if job <= 0:
                return Blocks((), (), window, "no job length")
            block = n * job
            count = max(1, int(round(busy * window / block)))
            gap = max(0.0, window * (1.0 - busy)) / count
            return Blocks((block,) * count, (gap,) * count, window,
                          f"{n} jobs ({job * 1000:.0f} ms each) per block")
        if shade == "low":
            lengths = [job] * max(1, int(round(total / job))) if job > 0 else heart
            source = f"one job ({job * 1000:.0f} ms) per block"
        elif shade == "high":
            lengths = heart
            source = "heartbeat stalls whole"
        else:
            lengths = [max(job, h - job) for h in heart]
            source = f"heartbeat stalls less one job ({job * 1000:.0f} ms)"
    else:
        lengths = heart
        source = "heartbeat stalls"
    used = sum(lengths)
    # Free time spread evenly after each block so the busy share matches.
    free = max(0.0, window - busy * window) if busy < 1.0 else 0.0
    scale = used / total if total > 0 else 1.0
    free = free * scale
    gaps = [free / len(lengths)] * len(lengths)
    return Blocks(tuple(lengths), tuple(gaps), window, source)


def predict_record(record: Mapping[str, Any], *, race: float = RACE, phases: int = PHASES) -> Prediction:
    """Predict the loss probability of one original connection of a cell.

    Args:
        record: A record in the current layout (``wsblock.schema.record.load``).
        race: Point estimate of the server race (see :func:`server_train_loss`).
        phases: Grid of phases averaged over.

    Returns:
        The prediction with its low and high ends.
    """
    keepalive = Keepalive.of(record.get("params", {}))
    if not keepalive.can_fail:
        return Prediction(0.0, 0.0, 0.0, 0.0, 0.0, "no keepalive can fail")
    point = blocks_from_record(record, shade="point")
    p, client, server = loss_probability(point, keepalive, race=race, phases=phases)
    low, _, _ = loss_probability(blocks_from_record(record, shade="low"), keepalive, race=0.0, phases=phases)
    high, _, _ = loss_probability(blocks_from_record(record, shade="high"), keepalive, race=1.0, phases=phases)
    if record.get("params", {}).get("strategy") in INLINE_LIKE:
        paired, _, _ = loss_probability(blocks_from_record(record, shade="paired"), keepalive, race=1.0,
                                        phases=phases)
        high = max(high, paired)
    lo, hi = min(low, p, high), max(low, p, high)
    return Prediction(p, lo, hi, client, server, point.source)


def measured_loss(records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Original connections lost and counted over the repeats of one cell.

    Version 3 records count original connections (``disconnects.original``).
    Older records counted reconnects too; for them each kind's original
    connections are its slots (``job_connections``, ``observers``) and the
    lost ones are estimated as ``min(disconnects of that kind, slots)``: a
    4 s window rarely lost a reconnect before every original of its kind.
    """
    lost = total = 0
    for rec in records:
        d = rec.get("disconnects") or {}
        original = d.get("original")
        if isinstance(original, Mapping) and original.get("connections"):
            lost += int(original.get("lost") or 0)
            total += int(original["connections"])
            continue
        params = rec.get("params") or {}
        by_kind = d.get("by_kind") or {}
        for kind, slots_key in (("job", "job_connections"), ("observer", "observers")):
            slots = int(params.get(slots_key) or 0)
            lost += min(int(by_kind.get(kind) or 0), slots)
            total += slots
    return lost, total


def agrees(prediction: Prediction, low: float, high: float) -> bool:
    """Whether a prediction's point lies in the measured interval ``[low, high]``."""
    return not (math.isnan(low) or math.isnan(high)) and low <= prediction.p <= high


def overlaps(prediction: Prediction, low: float, high: float) -> bool:
    """Whether the prediction's range meets the measured interval."""
    return not (math.isnan(low) or math.isnan(high)) and prediction.low <= high and prediction.high >= low


__all__ = ["BACK_TO_BACK_S", "Blocks", "PHASES", "Prediction", "RACE", "agrees",
           "blocks_from_record", "certain_loss_job_s", "client_train_lost", "first_loss_job_s",
           "heartbeat_stalls", "job_length_s", "loss_probability", "measured_loss", "overlaps",
           "predict_record", "server_train_loss"]
