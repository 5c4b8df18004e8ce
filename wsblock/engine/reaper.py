"""Nothing a command starts outlives it, even processes that leave its process groups.

A user's function may start processes of its own: a plain child, one in a
session of its own (``setsid``), a daemon that forks twice so that its
parent is gone at once. Ending the cell's process groups does not reach the
last two, and a parent killed outright (SIGKILL) runs no cleanup at all.
Two kernel features (Linux) close both gaps:

* a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a process whose
  descendants, when orphaned, become its children instead of init's, so
  they stay in its process tree and can be found there (``/proc/*/stat``,
  field ``PPid``) and ended (:func:`end_descendants`);
* the parent-death signal (``PR_SET_PDEATHSIG``), with which a process
  learns that its parent has died.

A process that is killed outright cannot end anything, so the command's
process (the one its caller sees) splits in three at its start
(:func:`guard`): the *front* keeps the command's pid, waits and passes its
exit status on; the *guardian*, a subreaper that runs no code of the suite
or of the user, is the parent of the *worker*, which carries on as the
command. When the worker ends, the guardian ends whatever it left; when
the front dies (SIGKILL included), the guardian ends the worker and every
process below it, then exits. The worker is a subreaper too, so that a
cell ends its own strays and counts them in its record (:func:`end_strays`).

Elsewhere than on Linux nothing splits: processes still in the command's
tree are ended, and the record says that the others could not be found
(:func:`record_section`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Callable, Iterable

SUBREAPER_NOTE = ("processes that left the cell's process tree could not be followed (the runner is a "
                  "subreaper only as the wsblock command on Linux); only those still in it were ended")
"""The record's note when the runner could not become a subreaper."""

OUTSIDE_NOTE = ("the cell ran inside another program (called from Python), whose other processes are not "
                "the cell's: no stray was looked for")
"""The record's note when the runner is not the command's own process."""

GUARDED_COMMANDS = frozenset({"run", "matrix", "advise", "boundary", "calibrate", "selftest"})
"""Commands that start processes, and so run under a guardian (:func:`guard`)."""

GRACE_S = 0.5
"""Seconds between SIGTERM and SIGKILL for a stray process."""

DUPLICATE_S = 2.0
"""A signal the front passes on this soon after the guardian got its own copy is a duplicate."""

GIVE_UP_S = 10.0
"""Longest :func:`end_descendants` keeps finding and killing processes."""

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_SI_KERNEL = 0x80  # si_code of a signal the kernel sent (a terminal's Ctrl-C), not kill()

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals the front and the guardian pass on to the worker when a process sent them."""

_subreaper = False
_owner = False  # this process is the command's worker: everything below it is the command's
_ended = 0


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux).

    Returns:
        Whether it is one now.
    """
    global _subreaper
    prctl = _prctl()
    if prctl is not None and prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
        _subreaper = True
    return _subreaper


def is_subreaper() -> bool:
    """Whether :func:`become_subreaper` succeeded in this process."""
    return _subreaper


def _set_parent_death_signal(signum: int) -> None:
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


# --- the process table -------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int] | None:
    # (ppid, state, start time in clock ticks) from /proc/PID/stat; the
    # command name (field 2) may hold spaces and parentheses, so split after
    # its last ")".
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[1]), fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _table() -> dict[int, tuple[int, str, int]]:
    # pid -> (ppid, state, start) of every process this user can see.
    table = {}
    if os.path.isdir("/proc/self"):
        for name in os.listdir("/proc"):
            if name.isdigit():
                entry = _stat(int(name))
                if entry is not None:
                    table[int(name)] = entry
        return table
    import psutil

    for proc in psutil.process_iter(["ppid", "status", "create_time"]):
        info = proc.info
        if info.get("ppid") is None:
            continue
        state = "Z" if info.get("status") == psutil.STATUS_ZOMBIE else "R"
        table[proc.pid] = (info["ppid"], state, int((info.get("create_time") or 0) * 100))
    return table


def _tree(root: int, table: dict[int, tuple[int, str, int]],
          excluded: Iterable[int]) -> dict[int, tuple[int, str, int]]:
    # Every descendant of root, less the subtrees of the excluded pids.
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    skip = set(excluded)
    found = {}
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in skip and kid not in found and kid != root:
                found[kid] = table[kid]
                todo.append(kid)
    return found


def _signal(pid: int, start: int, signum: int) -> None:
    # Only the process that was found: a pid freed and used again since
    # has another start time.
    entry = _stat(pid) if os.path.isdir("/proc/self") else None
    if entry is not None and entry[2] != start:
        return
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pids: Iterable[int]) -> None:
    # Collect orphans that died as this process's children (a subreaper's
    # duty). Only the pids given: a child that a Popen object owns is waited
    # for by that object.
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def end_descendants(root: int | None = None, *, exclude: Callable[[], Iterable[int]] = tuple,
                    grace: float | None = GRACE_S, give_up_s: float = GIVE_UP_S) -> int:
    """End every descendant of ``root``: SIGTERM, ``grace`` seconds, then SIGKILL, until none remains.

    The tree is read again and again (a process may start others while it
    is being ended; orphans come back to a subreaper), and every process
    found in it is signalled, until a reading finds none alive or
    ``give_up_s`` has passed. Zombies among this process's own children are
    collected.

    Args:
        root: The process whose descendants are ended (default: this one).
        exclude: Returns pids whose subtrees are left alone (processes of
            the suite that still have work to do), asked at each reading.
        grace: Seconds between SIGTERM and SIGKILL; ``None``: SIGKILL at once.
        give_up_s: Longest time spent.

    Returns:
        How many processes were found alive and signalled.
    """
    me = os.getpid()
    root = me if root is None else root
    seen: set[tuple[int, int]] = set()
    began = time.monotonic()
    termed: dict[tuple[int, int], float] = {}
    while True:
        tree = _tree(root, _table(), exclude())
        _reap(pid for pid, (ppid, state, _) in tree.items() if ppid == me and state in "ZX")
        living = {(pid, start) for pid, (_, state, start) in tree.items() if state not in "ZX"}
        if not living:
            break
        now = time.monotonic()
        for key in living:
            seen.add(key)
            if grace is None:
                _signal(*key, signal.SIGKILL)
            elif key not in termed:
                termed[key] = now
                _signal(*key, signal.SIGTERM)
                _signal(*key, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
            elif now - termed[key] >= grace:
                _signal(*key, signal.SIGKILL)
        if now - began > give_up_s:
            break
        time.sleep(0.02)
    return len(seen)


# --- within a command --------------------------------------------------------


def end_strays() -> int:
    """End what this process's descendants left running, apart from the suite's own processes.

    Called when a step's processes have ended (the trial calls of a user's
    function, a cell's server and load): anything still below this process
    that is not a process the suite registered (:mod:`wsblock.engine.proc`)
    and still uses is a stray, such as a child a user's function started
    in a new session, or a daemon. Only in the command's own worker
    (:func:`guard`): in a program that called the suite from Python, the
    other processes are that program's. Never raises.

    Returns:
        How many were ended (also added to :func:`ended`).
    """
    global _ended
    from wsblock.engine.proc import registered_pids

    if not _owner:
        return 0
    try:
        count = end_descendants(exclude=registered_pids)
    except Exception:  # noqa: BLE001 - ending strays must never fail a cell that ran
        return 0
    _ended += count
    return count


def ended() -> int:
    """How many strays :func:`end_strays` has ended in this process so far."""
    return _ended


def record_section(since: int = 0) -> dict[str, object]:
    """The record's ``processes`` section: strays ended since ``since`` (a value of :func:`ended`).

    ``note`` says why strays may have been missed: the runner was not a
    subreaper, or not the command's own process (then none was looked for).
    """
    section: dict[str, object] = {"strays_ended": _ended - since, "subreaper": _subreaper}
    if not _owner:
        section["note"] = OUTSIDE_NOTE
    elif not _subreaper:
        section["note"] = SUBREAPER_NOTE
    return section


def die_with_me() -> Callable[[], None]:
    """A ``preexec_fn`` that makes a helper process die (SIGKILL) with this one (Linux).

    For short helper processes (a check that imports a user's module) that
    have nothing to clean up.
    """
    from wsblock.engine.proc import die_with_parent

    me = os.getpid()

    def setup() -> None:
        die_with_parent(signal.SIGKILL, parent=me)

    return setup


# --- the guardian --------------------------------------------------------------


def guard(argv: list[str]) -> None:
    """Split this command into front, guardian and worker (see this module's description).

    Returns in the worker, which carries on as the command; the front and
    the guardian never return (they exit with the worker's status). A
    command that starts no processes (not in :data:`GUARDED_COMMANDS`) is
    left as it is; off Linux, or if the split fails, this process only
    tries to become a subreaper and carries on alone.

    Args:
        argv: The command's arguments (``sys.argv[1:]``).
    """
    global _owner
    if not argv or argv[0] not in GUARDED_COMMANDS:
        return
    _owner = True
    if not hasattr(signal, "sigwaitinfo") or _prctl() is None:
        become_subreaper()
        return
    front = os.getpid()
    waited = {signal.SIGCHLD, *_FORWARDED}
    original = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        report_read, report_write = os.pipe()
        guardian = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, original)
        become_subreaper()
        return
    if guardian:
        os.close(report_write)
        _run_front(guardian, report_read)
    os.close(report_read)
    _set_parent_death_signal(signal.SIGUSR1)
    waited.add(signal.SIGUSR1)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    if os.getppid() != front:
        os._exit(1)  # the front died before the request took effect: nothing was started
    guardian_pid = os.getpid()
    try:
        worker = os.fork()
    except OSError:
        worker = -1
    if worker == 0:
        os.close(report_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, original)
        become_subreaper()
        # The worker stops (SIGTERM: its interrupt path) if the guardian dies.
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != guardian_pid:
            os.kill(os.getpid(), signal.SIGTERM)
        return
    _run_guardian(front, worker, report_write, waited)


def _quiet_std_streams(keep_stderr: bool) -> None:
    # The front and the guardian read nothing and print (almost) nothing:
    # the worker's output alone ends when it exits.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if keep_stderr else (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _run_front(guardian: int, report: int) -> None:
    # The command's own pid: passes signals sent to it on to the guardian
    # (which passes them on to the worker), then exits as the worker did.
    # A terminal's Ctrl-C reaches the worker directly (same process group),
    # so a signal the kernel sent is not passed on twice.
    _quiet_std_streams(keep_stderr=True)
    waited = {signal.SIGCHLD, *_FORWARDED}
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo == signal.SIGCHLD:
            try:
                pid, status = os.waitpid(guardian, os.WNOHANG)
            except ChildProcessError:
                pid, status = guardian, 0
            if pid == guardian:
                break
        elif info.si_code != _SI_KERNEL:
            try:
                os.kill(guardian, info.si_signo)
            except ProcessLookupError:
                pass
    with os.fdopen(report, "r", encoding="ascii", errors="replace") as handle:
        text = handle.read().split()
    code = _front_exit(text, status)
    sys.stderr.flush()
    os._exit(code)


def _front_exit(report: list[str], guardian_status: int) -> int:
    # The exit status the command ends with, from the guardian's report
    # ``CODE SIGNAL STRAYS``, saying on stderr what the worker could not.
    try:
        code, killed_by, strays = (int(word) for word in report[:3])
    except ValueError:
        cause = (f"signal {os.WTERMSIG(guardian_status)}" if os.WIFSIGNALED(guardian_status)
                 else f"exit {os.waitstatus_to_exitcode(guardian_status)}")
        sys.stderr.write(f"error: harness failure: the command's guardian process ended ({cause})\n")
        sys.stderr.flush()
        return 1
    if strays:
        sys.stderr.write(f"warning: ended {strays} process{'es' if strays != 1 else ''} the command left "
                         f"running (started by a user's function, they had left its process groups)\n")
    if killed_by:
        try:
            name = signal.Signals(killed_by).name
        except ValueError:
            name = "?"
        sys.stderr.write(f"error: harness failure: the command's process was killed by signal "
                         f"{killed_by} ({name})\n")
        return 1
    return code


def _run_guardian(front: int, worker: int, report: int, waited: set[int]) -> None:
    # A subreaper and the worker's parent: runs no code of the suite's
    # commands or of the user. Ends with the worker (after ending whatever
    # it left) or, if the front dies, ends everything below it at once.
    _quiet_std_streams(keep_stderr=False)
    become_subreaper()
    status: int | None = None
    group_wide: dict[int, float] = {}
    if worker < 0:
        os.write(report, b"1 0 0\n")
        os._exit(0)
    while status is None:
        info = signal.sigwaitinfo(waited)
        if os.getppid() != front:
            # The command was killed outright: so is everything it started,
            # at once, as if it had all been one process. Nothing is cut
            # half-way through its cleanup (a temporary directory keeps its
            # owner marker, and the next run removes it).
            end_descendants(grace=None)
            os._exit(0)
        if info.si_signo == signal.SIGCHLD:
            while True:
                try:
                    pid, wait_status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid == worker:
                    status = wait_status
        elif info.si_pid == front and info.si_code != _SI_KERNEL:
            # Passed on by the front. Unless the same signal reached this
            # process by itself just before (sent to the whole process
            # group, the worker included), it was meant for the command.
            if time.monotonic() - group_wide.get(info.si_signo, float("-inf")) >= DUPLICATE_S:
                try:
                    os.kill(worker, info.si_signo)
                except ProcessLookupError:
                    pass
        else:
            group_wide[info.si_signo] = time.monotonic()
    strays = end_descendants()
    killed_by = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    os.write(report, f"{code} {killed_by} {strays}\n".encode())
    os._exit(0)
