"""Child processes that always end: the runner's side and the child's side.

Runner side: :class:`Child` starts a process in its own session (so its pid
is also its process-group id and everything it starts, pool workers included,
shares that group), reads its JSON event lines, and on :meth:`Child.stop`
closes its stdin, waits a bounded time, then signals the whole group.

Child side: :class:`Lifeline` reads control lines from stdin, treats EOF on stdin as "stop" (the
runner closed it, or the runner died) and enforces a hard deadline by killing
the child's own group, so nothing outlives a run even if the runner is killed
with SIGKILL.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, IO

from wsblock.errors import HarnessError


class Child:
    """A child Python process in its own process group.

    Args:
        name: Name used in error messages.
        argv: Arguments after ``python``.
        env: Extra environment variables.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._events.put(event)
        self._events.put(None)

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """Wait for the next event line; ``None`` if the child ended first.

        Raises:
            HarnessError: If nothing arrives within ``timeout`` seconds.
        """
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            raise HarnessError(f"{self.name} gave no sign of life within {timeout:.0f} s") from None

    def poll_event(self) -> dict[str, Any] | None:
        """Return the next pending event line without waiting, if any."""
        try:
            return self._events.get_nowait()
        except queue.Empty:
            return None

    def wait(self, timeout: float) -> int | None:
        """Wait for exit; return the exit code, or ``None`` on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send(self, message: dict[str, Any]) -> None:
        """Send one control message (a JSON line) to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def stderr_tail(self, lines: int = 15) -> str:
        """Last lines the child wrote to stderr."""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, grace: float) -> None:
        """End the child and its whole process group.

        Closes stdin (the child's signal to stop cleanly), waits up to
        ``grace`` seconds, then sends SIGTERM and finally SIGKILL to the group.
        Safe to call more than once.
        """
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.wait(grace) is None:
            self._signal_group(signal.SIGTERM)
            if self.wait(2.0) is None:
                self._signal_group(signal.SIGKILL)
                self.wait(5.0)
        # The leader has exited; members it left behind (a pool worker stuck
        # in a job) still carry its group id.
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies.

    For a process whose parent may be killed outright (SIGKILL), where no
    ``finally`` runs: the SIGTERM lets this process stop its own children.
    Linux only (``PR_SET_PDEATHSIG``); elsewhere it does nothing. Usable as a
    ``preexec_fn`` (it survives ``exec``) or called in the process itself.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was gone before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def emit(event: dict[str, Any]) -> None:
    """Write one JSON event line to stdout (child side)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def kill_own_group() -> None:
    """Kill this process's group if this process leads it, else just exit.

    Only a process started by :class:`Child` leads its own group; one started
    by hand shares the shell's group, which must not be touched.
    """
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(70)


class Lifeline:
    """Child side: control lines on stdin and a hard deadline (daemon threads).

    Each stdin line is a JSON object handed to ``on_message``; EOF (the runner
    closed stdin, or died) calls ``on_eof``. If the process is still alive at
    the deadline, its whole group is killed, whatever it is doing.

    Args:
        deadline: Initial ``time.time()`` deadline.
        on_message: Called from a thread with each control message.
        on_eof: Called from a thread when stdin ends.
    """

    def __init__(
        self,
        deadline: float,
        on_message: Callable[[dict[str, Any]], None],
        on_eof: Callable[[], None],
    ) -> None:
        self.deadline = deadline
        self._on_message = on_message
        self._on_eof = on_eof
        threading.Thread(target=self._watch_stdin, name="lifeline-stdin", daemon=True).start()
        threading.Thread(target=self._watch_deadline, name="lifeline-deadline", daemon=True).start()

    def _watch_stdin(self) -> None:
        # Raw reads on fd 0: a daemon thread blocked inside a buffered reader
        # would make interpreter shutdown abort ("could not acquire lock").
        pending = b""
        try:
            while chunk := os.read(0, 4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(message, dict):
                        self._on_message(message)
        except OSError:
            pass
        self._on_eof()

    def _watch_deadline(self) -> None:
        while time.time() < self.deadline:
            time.sleep(min(0.5, max(0.01, self.deadline - time.time())))
        sys.stderr.write("hard deadline reached; killing the process group\n")
        sys.stderr.flush()
        kill_own_group()
