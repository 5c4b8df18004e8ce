"""Classify how a websocket connection ended, from either side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NORMAL_CODES = {1000, 1001}
ABNORMAL_CLOSURE = 1006  # no close frame went either way: the TCP link died


@dataclass(frozen=True)
class CloseInfo:
    """How one connection ended.

    Attributes:
        code: Close code of the side that closed first (1006 when no close
            frame was exchanged).
        reason: Its close reason.
        initiator: ``"client"``, ``"server"`` or ``"none"`` (no close frame).
        abnormal: ``True`` unless the code is 1000 or 1001.
    """

    code: int
    reason: str
    initiator: str
    abnormal: bool

    def event(self, seconds: float, **extra: Any) -> dict[str, Any]:
        """The record's form of this close: ``t`` (s since the window start), code, reason, initiator."""
        return {"t": round(seconds, 3), **extra, "code": self.code, "reason": self.reason,
                "initiator": self.initiator}


def classify(rcvd: Any, sent: Any, rcvd_then_sent: bool | None, *, side: str) -> CloseInfo:
    """Say who closed a connection first and with which code.

    Args:
        rcvd: The close frame received (``websockets.frames.Close``) or None.
        sent: The close frame sent, or None.
        rcvd_then_sent: Whether the received frame came first, when both exist.
        side: ``"client"`` or ``"server"``: which side is asking.

    Returns:
        The classification.
    """
    peer = "server" if side == "client" else "client"
    if sent is not None and (rcvd is None or not rcvd_then_sent):
        frame, initiator = sent, side
    elif rcvd is not None:
        frame, initiator = rcvd, peer
    else:
        return CloseInfo(ABNORMAL_CLOSURE, "", "none", True)
    code = int(frame.code)
    return CloseInfo(code, str(frame.reason), initiator, code not in NORMAL_CODES)


def from_exception(exc: Any, *, side: str) -> CloseInfo:
    """Classify from a ``websockets.exceptions.ConnectionClosed``."""
    return classify(exc.rcvd, exc.sent, exc.rcvd_then_sent, side=side)


def from_connection(connection: Any, *, side: str) -> CloseInfo:
    """Classify from a closed ``websockets`` connection object."""
    protocol = connection.protocol
    return classify(
        protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent, side=side
    )
