"""How a job's result comes back to the handler, as in a real server.

A real handler calls its blocking function and builds its reply from what the
function returned. The server does the same: every strategy hands the return
value back to the handler (which then drops it: the reply is the job's
timing). Where that costs the server something, it is measured:

* ``inline``, ``chunked``, ``thread``: the value is the object itself, in the
  server's own memory; nothing is copied.
* ``process``: the worker pickles the value and the server unpickles it,
  through the pool's own result channel (the pool's thread in the server
  does the unpickling, and unpickling holds the GIL, so the loop's thread
  waits meanwhile). :class:`Carried` wraps the value in the worker so that
  its pickled size and the time the server spent unpickling it are known:
  the pool pickles it as it would the value, and the server's unpickling
  calls :func:`_delivered`, which times :func:`pickle.loads` of the value.

:class:`ResultLedger` keeps what the record says about results: the type of
the results, their pickled size, and the unpickling time in the server for
the load's jobs inside the window, and the same of the set-up call made
before the window.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from wsblock.engine.stats import LatencyHistogram


def type_name(value: Any) -> str:
    """The qualified name of a value's type (``builtins.dict``, ``pandas.core.frame.DataFrame``)."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class Returned:
    """A job's result as the handler receives it.

    Attributes:
        value: The work's return value (``None`` for built-in workloads).
        type: Its type's qualified name.
        pickled_bytes: Its pickled size, when it was pickled to reach the
            handler (``process``); ``None`` when it stayed in the server.
        pickle_ms: Time the worker spent pickling it (``process``).
        transfer_ms: Time the server spent unpickling it (``process``),
            with the GIL held.
    """

    value: Any
    type: str
    pickled_bytes: int | None = None
    pickle_ms: float | None = None
    transfer_ms: float | None = None


def in_process(value: Any) -> Returned:
    """A result that never left the server's process."""
    if isinstance(value, Returned):
        return value
    return Returned(value, type_name(value))


class Carried:
    """A worker's result on its way to the server (pickled by the pool like any result).

    Args:
        value: The work's return value.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Runs in the worker, when the pool pickles the result. The value is
        # pickled here, once, so that its size is known; the server's side
        # unpickles it in _delivered, timed.
        started = time.perf_counter()
        blob = pickle.dumps(self.value, protocol=pickle.HIGHEST_PROTOCOL)
        pickle_ms = (time.perf_counter() - started) * 1000.0
        return _delivered, (blob, type_name(self.value), pickle_ms)


def _delivered(blob: bytes, kind: str, pickle_ms: float) -> Returned:
    # Runs in the server, where the pool unpickles the worker's result.
    started = time.perf_counter()
    value = pickle.loads(blob)
    transfer_ms = (time.perf_counter() - started) * 1000.0
    return Returned(value, kind, len(blob), pickle_ms, transfer_ms)


def pickled_size(value: Any) -> int | None:
    """The pickled size of ``value``, or ``None`` when it cannot be pickled."""
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - any object may refuse to pickle
        return None


class ResultLedger:
    """What the handler got back: types, pickled sizes, transfer times.

    Thread safe (the threaded server's handler threads share it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.types: Counter[str] = Counter()
        self.transfer = LatencyHistogram()
        self.transfer_total_ms = 0.0
        self.largest = 0
        self.setup: dict[str, Any] | None = None

    def set_up(self, returned: Returned, *, out_of_process: bool) -> None:
        """Note the set-up call's result (made before the window).

        For a result that stayed in the server, its pickled size is measured
        here, before the window, so the record says what ``process`` would
        have to carry.
        """
        size = returned.pickled_bytes if out_of_process else pickled_size(returned.value)
        self.setup = {
            "type": returned.type,
            "pickled_bytes": size,
            "transfer_ms": None if returned.transfer_ms is None else round(returned.transfer_ms, 3),
        }

    def record(self, returned: Returned) -> None:
        """Note the result of one of the load's jobs inside the window."""
        with self._lock:
            self.types[returned.type] += 1
            if returned.pickled_bytes is not None:
                self.largest = max(self.largest, returned.pickled_bytes)
            if returned.transfer_ms is not None:
                self.transfer.record(returned.transfer_ms / 1000.0)
                self.transfer_total_ms += returned.transfer_ms

    def summary(self, *, pickled: bool) -> dict[str, Any]:
        """The record's ``result`` section.

        Args:
            pickled: Whether results crossed a process boundary
                (``process``): only then are sizes and transfer times
                measured per job.
        """
        with self._lock:
            common = self.types.most_common(1)
            return {
                "transfer": "pickled" if pickled else "none",
                "jobs": sum(self.types.values()),
                "type": common[0][0] if common else (self.setup or {}).get("type"),
                "types": dict(sorted(self.types.items())),
                "pickled_bytes_max": self.largest if pickled and self.types else None,
                "transfer_ms": self.transfer.summary() if pickled else None,
                "transfer_total_ms": round(self.transfer_total_ms, 3) if pickled else None,
                "setup_call": self.setup,
            }


__all__ = ["Carried", "Returned", "ResultLedger", "in_process", "pickled_size", "type_name"]
