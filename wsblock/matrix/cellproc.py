"""One cell's process (:mod:`wsblock.engine.cell_main`), started when its turn comes or just before.

A matrix runs each cell in a fresh process of its own, which measures it as
``wsblock run`` does. Its interpreter
start and imports take a few tenths of a second that measure nothing, so a
serial matrix starts the next cell's process *ahead*, in standby, once the
cell before it has ended its window and read the load's results (the
process says so on a pipe of its own, not on stdout): nothing after a window's end is recorded (see
:mod:`wsblock.engine.cutoff` and :mod:`wsblock.engine.jobs`). The standby
process imports what a cell needs, reads its cell and then waits on stdin:
it starts no server, no load, no pool, calibrates nothing and sends no
traffic until it is given ``go``, which the matrix sends only after the
previous cell's processes have all ended and its record is written. Its
start-up thus overlaps only the previous cell's teardown (the server
finishing a job it cannot drop and writing its measurements of the window,
the process groups ending, the record assembled and written), never a
warm-up or a window. End of input instead of ``go`` makes it exit without
running anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from wsblock import paths
from wsblock.engine.proc import EVENTS_ENV, child_environment, die_with_parent, python_command, track, untrack
from wsblock.matrix.spec import PlannedCell

WAKE_S = 0.5
"""Longest the matrix sleeps between checks while a cell runs (it wakes at once on an event)."""


def _pinned(cores: list[int]) -> Callable[[], None]:
    # Runs in the child between fork and exec: the cell's process, and every
    # process it starts (server, load, pool workers), inherits the affinity.
    def setup() -> None:
        die_with_parent()
        os.sched_setaffinity(0, cores)

    return setup


class CellProcess:
    """A cell's process, writing its record into a temporary directory.

    Start it from a thread that lives as long as the process should: it dies
    with that thread (``PR_SET_PDEATHSIG``).

    Args:
        planned: The cell.
        cores: Cores to pin the process, and all it starts, to (``None``: not pinned).
        standby: Start it ahead of its turn: it waits for :meth:`go`.
    """

    def __init__(self, planned: PlannedCell, cores: list[int] | None = None, *, standby: bool = False) -> None:
        self.planned = planned
        self.standby = standby
        self.measured = threading.Event()
        self._wake = threading.Event()  # set on the "measured" event line and at the exit
        self._exited = threading.Event()
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(paths.run_temp_dir("wsblock-matrix-"))
        self.record_path = Path(tmp) / "record.json"
        cell_path = Path(tmp) / "cell.json"
        cell_path.write_text(json.dumps(planned.cell.to_dict()))
        self._stderr = self._stack.enter_context(tempfile.TemporaryFile(dir=tmp))
        cmd = python_command("-m", "wsblock.engine.cell_main", "--events", "--cell", str(cell_path),
                             "--out", str(self.record_path), *(["--standby"] if standby else []))
        # Its events come on a pipe of their own, never on stdout: what a
        # user's module prints there (at import, say) cannot pass for one.
        events_read, events_write = os.pipe()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr, pass_fds=(events_write,),
                                         preexec_fn=die_with_parent if cores is None else _pinned(cores),
                                         env=child_environment({**paths.temp_env(tmp), EVENTS_ENV: str(events_write)}))
        except BaseException:
            os.close(events_read)
            raise
        finally:
            os.close(events_write)
        track(self.proc)
        threading.Thread(target=self._read_events, args=(os.fdopen(events_read, "rb"),), name="cell-events",
                         daemon=True).start()
        threading.Thread(target=self._reap, name="cell-exit", daemon=True).start()

    def _read_events(self, events: Any) -> None:
        with events:
            for line in events:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == "measured":
                    self.measured.set()
                    self._wake.set()

    def _reap(self) -> None:
        # Reaped here, so that the waiting thread wakes the moment it has gone.
        self.proc.wait()
        self._exited.set()
        self._wake.set()

    def go(self) -> None:
        """Give a standby process its turn (it runs its cell now)."""
        if self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        except OSError:
            pass  # it has died: wait() reports how

    def wait(self, timeout: float, on_measured: Callable[[], None] | None = None) -> int | None:
        """Wait for the process to end; call ``on_measured`` (in this thread) once its measurements are in.

        Returns:
            Its exit code, or ``None`` after ``timeout`` seconds.
        """
        # Sleeps on events the output reader sets, never in a polling loop:
        # the matrix's process stays idle while the cell measures.
        end = time.monotonic() + timeout
        pending = on_measured
        while True:
            if pending is not None and self.measured.is_set():
                pending, call = None, pending
                call()
            if self._exited.is_set():
                return self.proc.returncode
            left = end - time.monotonic()
            if left <= 0:
                return None
            (self._wake if pending is not None else self._exited).wait(min(WAKE_S, left))

    def terminate(self, grace: float) -> None:
        """SIGTERM (the cell then stops its own processes), SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stderr_text(self) -> str:
        """What the process wrote to stderr."""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def record(self) -> dict[str, Any] | None:
        """The record it wrote, or ``None``."""
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def cancel(self) -> None:
        """End a process that will not get its turn (a standby one exits at end of input)."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.terminate(2.0)
        self.close()

    def close(self) -> None:
        """Forget the ended process and remove its temporary directory."""
        if self._exited.wait(1.0) or self.proc.poll() is not None:
            untrack(self.proc)
        self._stack.close()
