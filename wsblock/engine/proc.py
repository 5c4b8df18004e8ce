"""Child processes that always end: the runner's side and the child's side.

Runner side: :class:`Child` starts a process in its own session (so its pid
is also its process-group id and everything it starts, pool workers included,
shares that group), reads its JSON event lines, and on :meth:`Child.stop`
closes its stdin, waits a bounded time, then signals the whole group.

Events travel on a pipe of their own (its descriptor is named by
:data:`EVENTS_ENV`), not on standard output: what a user's function prints,
at import or in a job, goes to the child's stdout, which is kept in a file
(:meth:`Child.stdout_tail`) and can neither hide nor forge an event.

Child side: :class:`Lifeline` reads control lines from stdin, treats EOF on stdin as "stop" (the
runner closed it, or the runner died) and enforces a hard deadline by killing
the child's own group. It also asks the kernel to kill the child the moment
its runner dies (``PR_SET_PDEATHSIG``, Linux), so nothing outlives a run even
if the runner is killed with SIGKILL while the child's loop is blocked.

Children start with ``python -P`` (and ``PYTHONSAFEPATH=1`` for their own
children): the working directory is not on their ``sys.path``, so a file such
as ``inspect.py`` where the user happens to stand cannot replace a module.

Every process started here is registered, so that :func:`stop_all` can stop
and then *verify* that nothing of the run is left.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, IO

import psutil

from wsblock.errors import HarnessError

PARENT_ENV = "WSBLOCK_PARENT_PID"
"""Environment variable naming the runner a child must die with."""

EVENTS_ENV = "WSBLOCK_EVENTS_FD"
"""Environment variable naming the descriptor a child writes its event lines to."""

_events_fd = os.environ.pop(EVENTS_ENV, None)
"""Child side: the events descriptor (taken from the environment, so that nothing the child starts sees it)."""
_events_lock = threading.Lock()

_children: list["Child"] = []
_popens: list[subprocess.Popen[Any]] = []


def python_command(*argv: str) -> list[str]:
    """The command line of a child Python process, isolated from the cwd.

    ``-P`` keeps the working directory off ``sys.path`` (``PYTHONPATH`` is
    still honoured).
    """
    return [sys.executable, "-P", *argv]


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process started by wsblock.

    ``PYTHONSAFEPATH=1`` carries the ``-P`` isolation to processes the child
    starts in turn (a pool's workers). If this process found wsblock only
    through the working directory (run from a checkout without installing),
    that directory, and only it, is put on the child's ``PYTHONPATH``, so the
    child runs the same code.

    The directory users' modules are loaded from goes along too (as it is
    now, should the child's working directory ever differ).

    Args:
        extra: Variables to add.
    """
    from workloads import locate

    env = {**os.environ, "PYTHONSAFEPATH": "1", PARENT_ENV: str(os.getpid()),
           locate.DIR_ENV: str(locate.function_dir()), **(extra or {})}
    root = Path(__file__).resolve().parents[2]
    if not sys.flags.safe_path and sys.path and Path(sys.path[0] or ".").resolve() == root:
        others = {str(Path(p).resolve()) for p in sys.path[1:] if p}
        if str(root) not in others:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def track(popen: subprocess.Popen[Any]) -> None:
    """Register a child started without :class:`Child`, for :func:`stop_all`."""
    _popens.append(popen)


def untrack(popen: subprocess.Popen[Any]) -> None:
    """Forget a child that has ended (see :func:`track`)."""
    if popen in _popens:
        _popens.remove(popen)


def registered_pids() -> set[int]:
    """Pids of the registered children that still run (the suite's own processes, in use)."""
    pids = {child.proc.pid for child in _children if child.proc.poll() is None}
    return pids | {popen.pid for popen in _popens if popen.poll() is None}


def _group_members(pgids: set[int]) -> set[int]:
    """Live (not zombie) processes in any of the process groups ``pgids``."""
    found = set()
    if not pgids:
        return found
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in pgids and proc.status() != psutil.STATUS_ZOMBIE:
                found.add(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return found


def _alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.add(pid)
        except psutil.NoSuchProcess:
            pass
    return left


def stop_all(grace: float = 1.0, *, verify_for: float = 3.0) -> list[int]:
    """Stop every process this process started, and check that they are gone.

    Used when a run is interrupted. Registered children get ``grace`` seconds
    after stdin closes or SIGTERM, then SIGKILL, with their process groups
    and every descendant seen alive when this was called. Interrupts are
    ignored meanwhile, so a second Ctrl-C cannot cut the check short.

    Args:
        grace: Seconds between the polite stop and SIGKILL.
        verify_for: Seconds to wait for killed processes to disappear.

    Returns:
        Pids still alive afterwards (empty when everything was stopped).
    """
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        pids: set[int] = set()
        groups: set[int] = set()
        for popen in list(_popens):
            if popen.poll() is None:
                pids.add(popen.pid)
                try:
                    for kid in psutil.Process(popen.pid).children(recursive=True):
                        pids.add(kid.pid)
                        try:
                            groups.add(os.getpgid(kid.pid))
                        except ProcessLookupError:
                            pass
                except psutil.NoSuchProcess:
                    pass
                try:
                    popen.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        # Never the group of this process (a run started by hand shares the
        # shell's group).
        groups.discard(os.getpgid(0))
        for child in list(_children):
            groups.add(child.proc.pid)
            child.stop(grace)
        deadline = time.monotonic() + grace
        for popen in list(_popens):
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in _alive(pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for popen in list(_popens):
            try:
                popen.wait(verify_for)
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic() + verify_for
        while True:
            left = _alive(pids) | _group_members(groups)
            if not left or time.monotonic() > end:
                break
            time.sleep(0.05)
        for popen in list(_popens):
            if popen.poll() is not None:
                untrack(popen)
        return sorted(left)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


AWAIT_ARG = "--await-config"
"""A child's only argument when it is started ahead: its arguments come later, on stdin."""


def awaited_argv(argv: list[str]) -> list[str] | None:
    """Child side: the arguments, read from stdin if the child was started ahead.

    A child started with :data:`AWAIT_ARG` (see :meth:`Child.ahead`),
    followed by the modules to import ahead, imports them and does nothing
    else until its runner sends
    one line, ``{"argv": [...], "env": {...}}``: the arguments it would have
    been started with and environment variables to add (its temporary
    directory). It reads that line byte by byte, so that nothing after it
    (the control lines its :class:`Lifeline` reads) is consumed. It dies
    with its runner meanwhile.

    Args:
        argv: The arguments the child was started with.

    Returns:
        ``argv`` itself, or the arguments sent; ``None`` if stdin ended first
        (the runner no longer needs it).
    """
    if argv[:1] != [AWAIT_ARG]:
        return argv
    bind_to_runner()
    for module in argv[1:]:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the configured run imports it again and says what is wrong
    line = bytearray()
    while (byte := os.read(0, 1)) != b"\n":
        if not byte:
            return None
        line += byte
    message = json.loads(line)
    os.environ.update(message.get("env") or {})
    tempfile.tempdir = None  # found again from TMPDIR when first needed
    return [str(arg) for arg in message["argv"]]


class Child:
    """A child Python process in its own process group.

    Args:
        name: Name used in error messages.
        argv: Arguments after ``python``.
        env: Extra environment variables.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._stdout: IO[bytes] = tempfile.TemporaryFile()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        events_read, events_write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                python_command(*argv),
                stdin=subprocess.PIPE,
                stdout=self._stdout,
                stderr=self._stderr,
                start_new_session=True,
                pass_fds=(events_write,),
                # Unbuffered: what the work printed is in the file even if
                # the child is killed (it is, once its measurements are in).
                env=child_environment({**(env or {}), EVENTS_ENV: str(events_write), "PYTHONUNBUFFERED": "1"}),
            )
        except BaseException:
            os.close(events_read)
            raise
        finally:
            os.close(events_write)
        self._events_in = os.fdopen(events_read, "rb")
        _children.append(self)
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    @classmethod
    def ahead(cls, name: str, module: str, preload: tuple[str, ...] = ()) -> "Child":
        """Start ``python -m module`` ahead of its turn: it imports its modules, then waits.

        It binds no socket, starts no pool and reads no config until
        :meth:`configure` gives it its arguments (see :func:`awaited_argv`);
        closing its stdin, or this process's death, ends it.

        Args:
            name: Name used in error messages.
            module: The module it runs.
            preload: Modules it would import once configured, imported now.
        """
        return cls(name, ["-m", module, AWAIT_ARG, *preload])

    @property
    def waiting(self) -> bool:
        """Started ahead and not yet configured."""
        return self.argv[2:3] == [AWAIT_ARG]

    def configure(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Give a child started ahead the arguments after its module, and environment variables to add."""
        self.send({"argv": argv, "env": env or {}})
        self.argv = [*self.argv[:2], *argv]

    def _read_events(self) -> None:
        for raw in self._events_in:
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

    def output_tail(self, limit: int) -> dict[str, Any]:
        """The last ``limit`` bytes the child (and its process group) wrote to stdout and stderr.

        Returns:
            ``stdout`` and ``stderr`` (text, invalid UTF-8 replaced) and
            ``truncated`` (whether either held more).
        """
        tails: dict[str, Any] = {"truncated": False}
        for key, handle in (("stdout", self._stdout), ("stderr", self._stderr)):
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            tails[key] = handle.read().decode("utf-8", "replace")
            tails["truncated"] = tails["truncated"] or size > limit
        return tails

    def request_stop(self) -> None:
        """Ask the child to stop cleanly (close its stdin) without waiting."""
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass

    def kill(self, settle: float = 2.0) -> None:
        """End the child now (SIGKILL), then the rest of its process group.

        For a child whose results are already in hand: whatever it would
        still do is not worth waiting for. Only the child itself is killed
        first: its pool workers die with it (they ask for that), and
        ``multiprocessing``'s resource tracker, which outlives them by design,
        then removes the semaphores they leave in shared memory and exits.
        Whatever of the group is still there after ``settle`` seconds is
        killed.
        """
        self.request_stop()
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.wait(5.0)
        # Zombies count as gone: orphans are reaped by init, in its own time.
        pids = {kid.pid for kid in kids}
        end = time.monotonic() + settle
        while _alive(pids) and time.monotonic() < end:
            time.sleep(0.01)
        self._signal_group(signal.SIGKILL)
        if self.proc.poll() is not None and not _group_members({self.proc.pid}):
            if self in _children:
                _children.remove(self)

    def stop(self, grace: float) -> None:
        """End the child and its whole process group.

        Closes stdin (the child's signal to stop cleanly), waits up to
        ``grace`` seconds, then sends SIGTERM and finally SIGKILL to the group.
        Safe to call more than once.
        """
        self.request_stop()
        if self.wait(grace) is None:
            self._signal_group(signal.SIGTERM)
            if self.wait(2.0) is None:
                self._signal_group(signal.SIGKILL)
                self.wait(5.0)
        # The leader has exited; members it left behind (a pool worker stuck
        # in a job) still carry its group id.
        self._signal_group(signal.SIGKILL)
        if self.proc.poll() is not None and not _group_members({self.proc.pid}):
            if self in _children:
                _children.remove(self)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def die_with_parent(signum: int = signal.SIGTERM, *, parent: int | None = None) -> None:
    """Ask the kernel to send this process ``signum`` when its parent dies.

    For a process whose parent may be killed outright (SIGKILL), where no
    ``finally`` runs. SIGTERM (the default) lets this process stop its own
    children; SIGKILL ends it at once, even while a blocked event loop or a C
    call holding the GIL keeps Python from running any handler. Linux only
    (``PR_SET_PDEATHSIG``); elsewhere it does nothing. Usable as a
    ``preexec_fn`` (it survives ``exec``) or called in the process itself.

    The "parent" is the thread that started this process; start children
    from a thread that lives as long as they should.

    Args:
        signum: The signal to receive.
        parent: Pid of the parent this process must die with; if it is no
            longer the parent (it died before the request took effect), the
            signal is sent at once. Default: the current parent.
    """
    if not sys.platform.startswith("linux"):
        return
    if _prctl is None:
        return
    expected = os.getppid() if parent is None else parent
    try:
        _prctl(1, int(signum))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != expected:
        os.kill(os.getpid(), signum)


def _load_prctl() -> Callable[[int, int], int]:
    # Resolved once at import, so that a preexec_fn only calls it.
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]


try:
    _prctl = _load_prctl() if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # pragma: no cover - no libc prctl
    _prctl = None


def bind_to_runner() -> None:
    """Die (SIGKILL) with the runner that started this process, if one did.

    The runner's pid is in :data:`PARENT_ENV`, set by :class:`Child`.
    """
    pid = os.environ.get(PARENT_ENV)
    if pid and pid.isdigit():
        die_with_parent(signal.SIGKILL, parent=int(pid))


def emit(event: dict[str, Any]) -> None:
    """Write one JSON event line to the runner (child side).

    On the events pipe (:data:`EVENTS_ENV`) when the child was started with
    one, else on stdout (a process started by hand).
    """
    line = (json.dumps(event) + "\n").encode()
    if _events_fd is None or not _events_fd.isdigit():
        sys.stdout.write(line.decode())
        sys.stdout.flush()
        return
    with _events_lock:
        view = memoryview(line)
        while view:
            view = view[os.write(int(_events_fd), view):]


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
        bind_to_runner()
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
