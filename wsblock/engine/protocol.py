"""Messages between the load process and the server, and their validation.

Requests are JSON objects in text frames:

* ``{"op": "echo", "seq": N, "sent": T}``: answered at once with
  ``{"op": "echo", "seq": N}``. ``sent`` (optional) is the sender's
  ``time.time()`` just before sending; the server uses it to time how long
  the message waited for its handler.
* ``{"op": "job", "id": N, "workload": W, "units": U, "chunk_units": C,
  "params": {...}}``: the server runs the work through the cell's strategy
  and answers ``{"op": "done", "id": N, "wall_ms": ..., "cpu_ms": ...}``.

A request that is valid JSON but not a valid request (unknown op, wrong
types, out-of-range values) gets ``{"op": "error", "error": "..."}``. Anything
else breaks the protocol and the server closes the connection with a code for
bad data: 1003 (unsupported data) for binary frames, 1007 (invalid payload
data) for text that is not a JSON object, including JSON nested too deeply
to parse; frames over :data:`MAX_MESSAGE_BYTES` are closed by websockets with
1009. Client input never selects code or files: the workload is looked up in
the catalogue and data paths are the server's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import workloads
from workloads import Job

MAX_MESSAGE_BYTES = 16 * 1024
"""Largest frame the server accepts; larger ones are closed with 1009."""


UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed.

    Attributes:
        kind: What was wrong (``binary``, ``not_json``, ``too_deep``,
            ``not_object``), for the record.
        code: The close code to send.
    """

    def __init__(self, message: str, *, kind: str, code: int = INVALID_DATA) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


class RequestError(Exception):
    """A well-formed request that cannot be served; answered with an error."""


@dataclass(frozen=True)
class Echo:
    """An echo request.

    Attributes:
        seq: Sequence number, echoed back.
        sent: The sender's ``time.time()`` at sending, if given.
    """

    seq: int
    sent: float | None = None


def _int(data: dict[str, Any], key: str, minimum: int, maximum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{key} must be an integer")
    if not minimum <= value <= maximum:
        raise RequestError(f"{key} must be between {minimum} and {maximum}")
    return value


def parse(message: str | bytes, data_dir: str, *, allowed: str | None = None) -> Echo | tuple[int, Job]:
    """Validate one incoming message.

    Args:
        message: The frame's payload.
        data_dir: The server's data directory, put into jobs.
        allowed: The one workload outside the catalogue that jobs may name
            (the cell's own function); a client never makes the server
            import anything else.

    Returns:
        An :class:`Echo`, or ``(job id, Job)``.

    Raises:
        ProtocolError: For frames that are not JSON objects in text (binary,
            not JSON, nested too deeply, not an object).
        RequestError: For a JSON object that is not a valid request.
    """
    if isinstance(message, bytes):
        raise ProtocolError("binary frames are not accepted", kind="binary", code=UNSUPPORTED_DATA)
    try:
        data = json.loads(message)
    except RecursionError:
        # The decoder recurses once per level of nesting: 16 KB of "[" is
        # enough to exhaust the stack. It is bad input, not a server fault.
        raise ProtocolError("frames must not be nested this deeply", kind="too_deep") from None
    except ValueError:
        raise ProtocolError("frames must be JSON objects", kind="not_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("frames must be JSON objects", kind="not_object")
    op = data.get("op")
    if op == "echo":
        sent = data.get("sent")
        if sent is not None and (isinstance(sent, bool) or not isinstance(sent, (int, float))
                                 or not math.isfinite(sent)):
            raise RequestError("sent must be a number")
        return Echo(_int(data, "seq", 0, 2**62), None if sent is None else float(sent))
    if op != "job":
        raise RequestError(f"unknown op {op!r}")
    job_id = _int(data, "id", 0, 2**62)
    name = data.get("workload")
    if not isinstance(name, str) or (name not in workloads.names() and name != allowed):
        raise RequestError(f"unknown workload {name!r}")
    workload = workloads.get(name)
    units = _int(data, "units", 1, workload.max_units)
    chunk = _int(data, "chunk_units", 1, workload.max_units) if "chunk_units" in data else units
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise RequestError("params must be an object")
    try:
        resolved = workload.resolve_params(params)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return job_id, Job(name, units, chunk_units=chunk, params=resolved, data_dir=data_dir)


def job_request(job_id: int, job: Job) -> str:
    """Encode a job request (the data directory is never sent)."""
    return json.dumps(
        {
            "op": "job",
            "id": job_id,
            "workload": job.workload,
            "units": job.units,
            "chunk_units": job.chunk_units,
            "params": dict(job.params),
        }
    )
