"""A user's function called in a process of its own, under a time limit.

Before any server starts, a user's function is imported, called on trial,
calibrated and timed. None of this happens in the process that asked: a
function may call ``sys.exit`` or ``os._exit``, raise ``KeyboardInterrupt``
or another ``BaseException``, never return, change the working directory or
print anything, at import or when called. Each request runs in a fresh
interpreter (``python -P -m wsblock.engine.contained``) in a session of its
own, with a time limit (:func:`limit_s`, ``--trial-timeout``); whatever the
function does there ends as one line naming it and the cause
(:class:`~wsblock.errors.UsageError`: the function is bad input), and its
process group is ended with it.

The child writes JSON lines to a pipe of its own (never its stdout, which,
like its stderr, goes to a discarded file): ``{"progress": ...}`` while it
works, then one ``{"result": ...}`` or ``{"refused": ...}``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from wsblock.errors import UsageError

LIMIT_ENV = "WSBLOCK_TRIAL_TIMEOUT"
"""Environment variable that carries ``--trial-timeout`` to the processes of a run."""

DEFAULT_LIMIT_S = 60.0
"""Longest a user's function may take to import, or to return on a trial call or a calibration."""

MAX_LIMIT_S = 3600.0
"""Largest ``--trial-timeout``."""

MODULE = "wsblock.engine.contained"


def check_limit(value: float) -> float:
    """Check a ``--trial-timeout`` value.

    Raises:
        UsageError: Unless it is a number of seconds from 0.1 to :data:`MAX_LIMIT_S`.
    """
    if not (isinstance(value, (int, float)) and 0.1 <= value <= MAX_LIMIT_S):
        raise UsageError(f"--trial-timeout must be 0.1 to {MAX_LIMIT_S:g} seconds, got {value!r}")
    return float(value)


def add_option(parser: Any) -> None:
    """Add ``--trial-timeout SECONDS`` to a command's argument parser."""
    parser.add_argument("--trial-timeout", type=float, default=None, metavar="S",
                        help=f"longest a user's function may take to import, or to return on a trial call "
                             f"or its calibration, each in a process of its own (default {DEFAULT_LIMIT_S:g} s); "
                             f"past it, the function is refused")


def set_limit(seconds: float) -> None:
    """Use ``seconds`` as the limit in this process and every process it starts."""
    os.environ[LIMIT_ENV] = repr(check_limit(seconds))


def limit_s() -> float:
    """The time limit in force (:data:`LIMIT_ENV`, else :data:`DEFAULT_LIMIT_S`)."""
    try:
        return check_limit(float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT_S)))
    except (ValueError, UsageError):
        return DEFAULT_LIMIT_S


def call(request: dict[str, Any], *, name: str, when: str, limit: float | None = None,
         progress: Callable[[str], None] | None = None) -> Any:
    """Carry out ``request`` in a child process; return its result.

    Args:
        request: ``{"op": ..., ...}`` (see :data:`_OPS`).
        name: The function's name, for messages.
        when: What was being done (``on a trial call``), for messages.
        limit: Seconds allowed (default :func:`limit_s`).
        progress: Receives the child's progress messages.

    Raises:
        UsageError: One line naming the function and the cause: it raised
            (``SystemExit`` and ``KeyboardInterrupt`` included), ended or
            crashed its process, or did not finish within the limit.
    """
    from wsblock.engine.proc import child_environment, python_command, track, untrack

    seconds = limit_s() if limit is None else limit
    read_end, write_end = os.pipe()
    try:
        with tempfile.TemporaryFile() as output:
            # The child finds the function where this process would: its
            # own sys.path, then the directories added to this one's (not
            # the working directory, which the child keeps off its path).
            here = os.getcwd()
            request = {**request, "path": [p for p in sys.path if p and os.path.abspath(p) != here]}
            try:
                popen = subprocess.Popen(
                    python_command("-m", MODULE, str(write_end), json.dumps(request)),
                    stdin=subprocess.DEVNULL, stdout=output, stderr=output, pass_fds=(write_end,),
                    start_new_session=True, env=child_environment())
            finally:
                os.close(write_end)
            track(popen)
            try:
                messages, timed_out = _collect(popen, read_end, seconds, progress)
            finally:
                _end_group(popen)
                untrack(popen)
    finally:
        os.close(read_end)
    if timed_out:
        raise UsageError(f"{name} did not finish within {seconds:g} s ({when}); "
                         f"a slower function needs a longer --trial-timeout")
    for message in messages:
        if "refused" in message:
            raise UsageError(str(message["refused"]))
        if "result" in message:
            return message["result"]
    code = popen.returncode
    if code is not None and code < 0:
        try:
            how = f"signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"signal {-code}"
        raise UsageError(f"{name} killed its process with {how} ({when})")
    raise UsageError(f"{name} ended its process with exit status {code} ({when}): os._exit, or a crash")


def check_import(spec: str) -> None:
    """Import a user's module in a child process first (for :func:`workloads.functions.check_imports_with`).

    Raises:
        WorkloadError: If the import fails there in any way, or takes longer than the limit.
    """
    from workloads import WorkloadError

    try:
        call({"op": "import", "name": spec, "when": "at import"}, name=spec, when="at import")
    except UsageError as exc:
        raise WorkloadError(str(exc)) from None


def _collect(popen: subprocess.Popen[Any], fd: int, seconds: float,
             progress: Callable[[str], None] | None) -> tuple[list[dict[str, Any]], bool]:
    # Reads the child's lines until it has exited and the pipe is drained (a
    # process the function started may hold the pipe open: the exit decides),
    # or until the limit. Returns the final messages and whether time ran out.
    deadline = time.monotonic() + seconds
    pending = b""
    messages: list[dict[str, Any]] = []
    os.set_blocking(fd, False)
    exited = False
    while True:
        if time.monotonic() > deadline:
            return messages, True
        ready, _, _ = select.select([fd], [], [], 0.05)
        chunk = b""
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = b""
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "progress" in message:
                    if progress is not None:
                        progress(str(message["progress"]))
                else:
                    messages.append(message)
            continue
        if exited or (ready and not chunk):
            # Drained after the exit, or the pipe closed: wait for the exit.
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return messages, True
            return messages, False
        if popen.poll() is not None:
            exited = True  # one more read drains what it wrote last


def _end_group(popen: subprocess.Popen[Any]) -> None:
    # The child leads its own session: whatever the function started in it
    # ends with it, and the child itself is reaped.
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        popen.wait(5.0)
    except subprocess.TimeoutExpired:
        pass


# Child side.


def cause(exc: BaseException) -> str:
    """An exception as a message names it: ``SystemExit(0)``, ``ValueError: first line``."""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _job(request: dict[str, Any], units: int) -> Any:
    from workloads import Job
    from wsblock import paths

    return Job(request["name"], units, chunk_units=units, params=dict(request.get("params") or {}),
               data_dir=str(paths.data_dir()))


def _import(request: dict[str, Any], out: Callable[[dict[str, Any]], None]) -> Any:
    import workloads

    try:
        workloads.lookup(request["name"])
    except workloads.WorkloadError as exc:
        return {"refused": str(exc)}
    return {"result": True}


def _calls(request: dict[str, Any], out: Callable[[dict[str, Any]], None]) -> Any:
    # ``count`` calls with ``units``; ``whens`` names each call for messages
    # (the last name serves the rest). The result of each call must pickle
    # when a process pool will hand it back.
    import pickle

    import workloads

    name = request["name"]
    whens = list(request.get("whens") or ["on a trial call"])
    try:
        workloads.lookup(name)
    except workloads.WorkloadError as exc:
        return {"refused": str(exc)}
    job = _job(request, int(request.get("units", 1)))
    times = []
    for index in range(int(request.get("count", 1))):
        when = whens[min(index, len(whens) - 1)]
        try:
            timing = workloads.execute(job)
        except BaseException as exc:  # noqa: BLE001 - anything the function raises is its cause
            return {"refused": f"{name} raised {cause(exc)} ({when})"}
        if request.get("pickled"):
            try:
                pickle.dumps(timing.result, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - any object may refuse to pickle
                return {"refused": f"{name} returns {type(timing.result).__qualname__}, which cannot be "
                                   f"pickled, so a process pool cannot hand it back to the server "
                                   f"({type(exc).__name__}: {exc})"}
        times.append(timing.wall_ms)
    return {"result": times}


def _calibrate(request: dict[str, Any], out: Callable[[dict[str, Any]], None]) -> Any:
    from dataclasses import asdict

    from wsblock.engine import calibration

    try:
        found = calibration.get(request["name"], request.get("params") or {}, up_to_ms=request.get("up_to_ms"),
                                progress=lambda text: out({"progress": text}))
    except BaseException as exc:  # noqa: BLE001 - anything the function raises is its cause
        return {"refused": f"{request['name']} raised {cause(exc)} (while calibrating)"}
    return {"result": asdict(found)}


_OPS: dict[str, Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], Any]] = {
    "import": _import, "calls": _calls, "calibrate": _calibrate,
}
"""What a child can be asked: import the function; call it; calibrate it."""


def main(argv: list[str]) -> None:
    """Child side: carry out the request ``argv[1]`` and write the outcome to descriptor ``argv[0]``.

    Ends with ``os._exit``, so that nothing the function left behind (an
    ``atexit`` hook, a thread that never ends) runs after the answer.
    """
    from wsblock.engine.proc import bind_to_runner

    bind_to_runner()
    fd = int(argv[0])

    def out(message: dict[str, Any]) -> None:
        line = memoryview((json.dumps(message) + "\n").encode())
        while line:
            line = line[os.write(fd, line):]

    request = json.loads(argv[1])
    name = str(request.get("name"))
    sys.path += [p for p in request.get("path") or [] if p not in sys.path]
    try:
        answer = _OPS[request["op"]](request, out)
    except BaseException as exc:  # noqa: BLE001 - at import: SystemExit, KeyboardInterrupt, anything
        answer = {"refused": f"{name} raised {cause(exc)} ({request.get('when', 'at import')})"}
    try:
        out(answer)
    except (TypeError, ValueError) as exc:
        out({"refused": f"{name}: its answer could not be sent ({exc})"})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or replaced stream
            pass
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
