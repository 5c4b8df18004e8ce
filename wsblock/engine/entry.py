"""How a ``wsblock`` process runs its work and ends: one exit code per kind of outcome.

Both the ``wsblock`` command (:func:`wsblock.cli.main`) and a matrix's cell
process (:mod:`wsblock.engine.cell_main`) run their work through
:func:`run_main`, so that bad input, a harness failure, Ctrl-C and SIGTERM
end them the same way: 2 with one ``error:`` line for bad input, 1 when the
harness failed, 130 when interrupted (after stopping every process the work
started); otherwise the work's own exit code.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Callable

from wsblock.errors import HarnessError, UsageError


class Terminated(Exception):
    """Raised in the main thread on SIGTERM: the work stops as on Ctrl-C."""


def contain_user_functions(trial_timeout: float | None) -> None:
    """Import a user's module in a process of its own first, under the trial limit.

    Nothing the module does at import can then end or hang the process that
    imports it next.

    Args:
        trial_timeout: The limit (``--trial-timeout``), or ``None`` for the
            one in force.
    """
    from workloads import functions
    from wsblock.engine import contained

    if trial_timeout is not None:
        contained.set_limit(trial_timeout)
    functions.check_imports_with(contained.check_import)


def run_main(work: Callable[[], int], *, guard_argv: list[str] | None = None) -> int:
    """Run ``work`` and return the process's exit code.

    Args:
        work: Does the process's job; returns its exit code, raises
            :class:`UsageError` for bad input and :class:`HarnessError` (or
            ``OSError``) when the harness failed.
        guard_argv: The command line of a process started as a command (not
            a call from Python): a guardian process then ends whatever it
            starts, even if it is killed outright
            (:func:`wsblock.engine.reaper.guard`).
    """
    if guard_argv is not None:
        from wsblock.engine.reaper import guard

        guard(guard_argv)

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must stop a run even when started from a context that ignores
    # SIGINT (a background job of a script, for example).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Set by an option or a matrix file for this command only (main may be called again in one process).
    from workloads import locate

    inherited = locate.stdlib_allowed()
    try:
        return work()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (HarnessError, OSError) as exc:
        # The harness could not finish: a write that failed under the
        # command (a full disk, a file system gone read-only) says where.
        # Cells still in flight (a parallel matrix) end with the command.
        from wsblock.engine.proc import stop_all
        from wsblock.inputs import describe_os_error

        stop_all(grace=1.0)
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"error: harness failure: {reason}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated):
        from wsblock.engine.proc import stop_all

        left = stop_all(grace=1.0)
        if left:
            print(f"error: interrupted; {len(left)} processes of the run are still running "
                  f"(pids {' '.join(map(str, left))})", file=sys.stderr)
        else:
            print("error: interrupted; every process of the run was stopped", file=sys.stderr)
        return 130
    finally:
        if not inherited:
            locate.allow_stdlib(None)
