"""Run one cell end to end: calibrate, start server and load, measure, stop.

The runner is the only place that knows the whole sequence:

1. validate the cell, size the work from the calibration and the window
   from the question the cell asks (unless ``duration`` is given);
2. prepare input data (outside any window);
3. start the server process and the load process side by side; wait until
   the server is bound and its pool is warm, and the load is ready;
4. (the load does nothing until step 5, so starting it early changes no
   measurement; it only takes its start-up off the critical path);
5. pick the window (now + warm-up, for ``duration`` seconds) and send it to
   both, with the server's address to the load; the load connects at once,
   so the window opens on a steady state;
6. wait for the load to write its results, then stop the server, which
   writes its own;
7. stop both process groups whatever happened, and assemble the record
   (verdict, warnings, ``failed`` when nothing was measured).

Each process gets a typed config file (:mod:`wsblock.engine.process_config`)
that carries the whole cell, so each process applies the axes and settings
that concern it, and a per-cell token, with which the load's connections
identify themselves.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

import psutil

import workloads
from wsblock import paths
from wsblock.engine import meta
from wsblock.engine import calibration, sizing
from wsblock.engine import assemble
from wsblock.engine import strategies
from wsblock.engine.ahead import LOAD_MODULE, SERVER_MODULE
from wsblock.engine.ahead import child as _child
from wsblock.engine import reaper, user_workloads
from wsblock.engine.resources import TreeCpu, machine_busy, machine_niced_cores, tree_cpu, window_cpu
from wsblock.engine.config import CellConfig
from wsblock.errors import CellFailed, HarnessError, UsageError
from wsblock.engine.proc import Child
from wsblock.engine.process_config import JobConfig, LoadConfig, ServerConfig
from wsblock.engine.reports import LoadReport, ServerReport
from wsblock.schema.keepalive import Keepalive

READY_TIMEOUT_S = 120.0
"""How long a server may take to bind and warm its pool."""

USER_OUTPUT_BYTES = 4096
"""How much of what a user's function wrote (the end of stdout and of stderr) a record keeps."""

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def check_port(host: str, port: int) -> None:
    """Fail early, with a usage error, if ``host:port`` cannot be bound.

    Port 0 is checked too: it proves the host is an address of this machine.

    Raises:
        UsageError: If ``host:port`` cannot be bound, with the reason.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use") from None
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UsageError(f"cannot bind {host}:{port}: {reason}") from None


def size_work(cell: CellConfig, progress: Progress = _quiet) -> dict[str, Any]:
    """Turn the cell's target duration into fixed units of work.

    A user's function that takes no ``units`` is not calibrated: it is
    called once here (a trial that pays its imports), then once more and
    timed, and each job is one call.

    Args:
        cell: A validated cell.
        progress: Receives progress messages.

    Returns:
        The ``work`` section of the record.

    Raises:
        UsageError: A user's function failed on its trial call or its
            calibration (one line naming it and the cause).
    """
    workload = workloads.get(cell.workload)
    function = user_workloads.describe(workload)
    if function is not None and not function["calibrated"]:
        expected = user_workloads.trial(cell, progress)
        return {
            "target_ms": None,
            "units": 1,
            "unit": workload.unit,
            "chunk_units": 1,
            "warm_units": 1,
            "expected_ms": round(expected, 3),
            "calibration": None,
            "function": function,
            "ignored_work_ms": cell.ignored_work_ms,
        }
    if function is not None:
        # In a process of its own, under the trial limit, like every call
        # of a user's function before the server's.
        cal = user_workloads.calibrate(cell, progress)
    else:
        cal = calibration.get(cell.workload, cell.workload_params, up_to_ms=cell.work_ms, progress=progress)
    assert cell.work_ms is not None  # validate() refuses a calibrated workload without it
    units = cal.units_for(cell.work_ms)
    work = {
        "target_ms": cell.work_ms,
        "units": units,
        "unit": workload.unit,
        "chunk_units": calibration.chunk_units(cal, cell.chunk_ms, units),
        "warm_units": cal.units_for(min(cell.work_ms, 20.0)),
        "expected_ms": round(cal.overhead_ms + cal.ms_per_unit * units, 3),
        "calibration": {
            "overhead_ms": round(cal.overhead_ms, 4),
            "ms_per_unit": cal.ms_per_unit,
            "fit": cal.fit,
            "points": cal.points,
            "residuals_pct": cal.residuals_pct,
            "extrapolation": round(cell.work_ms / cal.largest_ms, 2) if cal.largest_ms else None,
            "measured_at": cal.measured_at,
            "loadavg": cal.loadavg,
            "busy_cores": cal.busy_cores,
            "cpus": cal.cpus,
            "key": cal.key,
        },
    }
    if function is not None:
        work["function"] = function
    return work


def _job_ms(cell: CellConfig, work: dict[str, Any] | None) -> float:
    # The longer of the target and the calibrated (or measured) job.
    if work is None:
        return cell.work_ms if cell.work_ms is not None else 1000.0
    return max(work["expected_ms"], cell.work_ms or 0.0)


def plan_window(cell: CellConfig, work: dict[str, Any] | None) -> sizing.WindowPlan:
    """Choose the cell's window from its parameters and its calibrated job length.

    Args:
        cell: A validated cell.
        work: The record's ``work`` section; ``None`` plans from the target
            job length alone (an estimate before the calibration is read).
    """
    workload = workloads.get(cell.workload)
    job_ms = _job_ms(cell, work)
    return sizing.plan(
        requested_s=cell.duration,
        warmup_s=cell.warmup,
        strategy=cell.strategy,
        job_s=job_ms / 1000.0,
        job_connections=cell.job_connections,
        workers=cell.pool_size,
        cpus=psutil.cpu_count() or 1,
        releases_gil=workload.gil.startswith("released"),
        cycle_s=Keepalive(cell.ping_interval, cell.ping_timeout, cell.client_pings,
                          cell.handler_ping_timeout).cycle_s,
        ping_interval=cell.ping_interval,
        min_cycles=cell.min_cycles,
        max_s=cell.max_window,
    )


def _machine_cpu(before: Any, after: Any, elapsed: float) -> dict[str, Any]:
    share, _ = machine_busy(before, after)
    cpus = psutil.cpu_count() or 1
    # Lower-priority work counts only when the cell itself is not running
    # at a lower priority: then the cell's own time would be in it too.
    niced = machine_niced_cores(before, after) if os.getpriority(os.PRIO_PROCESS, 0) <= 0 else 0.0
    return {
        "cpus": cpus,
        "util": round(share, 3),
        "busy_cores": round(share * cpus, 3),
        "niced_cores": round(niced, 3),
        "interval_s": round(elapsed, 3),
    }




def run_cell(cell: CellConfig, *, progress: Progress = _quiet,
             on_measured: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one cell and return its record.

    Args:
        cell: The cell; validated here.
        progress: Receives one-line progress messages.
        on_measured: Called once the window has ended and the load's
            results are read, before the server writes its measurements
            (of the window alone) and the record is assembled: from then on
            nothing this cell does is measured.

    Returns:
        The record (see ``docs/record.md``), with ``timing``: where the
        cell's wall time went outside the warm-up and the window.

    Raises:
        UsageError: Bad parameters, an unsupported pair, a port in use.
        HarnessError: A process of the harness failed or hung.
    """
    began = time.monotonic()
    strays_before = reaper.ended()
    cell.validate()
    check_port(cell.host, cell.port)
    user_workloads.check_for_strategy(cell)
    sizing_began = time.monotonic()
    work = size_work(cell, progress)
    calibrate_s = time.monotonic() - sizing_began
    # Whatever the trial calls started and left running would share the
    # machine with the window.
    reaper.end_strays()
    workload = workloads.get(cell.workload)
    if work["units"] > workload.max_units:
        raise UsageError(
            f"work_ms {cell.work_ms:g} is {work['units']} {workload.unit} on this machine, more than "
            f"the {cell.workload} maximum of {workload.max_units}"
        )
    data_dir = str(paths.data_dir())
    workload.prepare(work["units"], cell.workload_params, data_dir)
    environment = meta.environment()
    window_plan = plan_window(cell, work)
    duration = window_plan.duration_s
    progress(sizing.describe(window_plan, warmup_s=cell.warmup))
    measured = run_processes(cell, work, duration, progress=progress, on_measured=on_measured)
    # What the cell started outside its process groups (a user's function's
    # children in sessions of their own, its daemons); if the cell failed,
    # the command's guardian ends them as the command ends.
    reaper.end_strays()
    # The server module is the engine's here (not a self-test's, which may
    # write other keys): its stats file must be a server report.
    server_stats = ServerReport.from_dict(measured.server, source="the server")
    load_results = measured.load
    if load_results.job_errors:
        raise HarnessError(f"the server refused jobs: {load_results.last_error}")
    machine = _machine_cpu(measured.cpu_before, measured.cpu_after, measured.window_cpu_s)
    rec = assemble.build(
        params=cell.to_dict(),
        window=window_plan.to_dict(),
        work=work,
        server=server_stats,
        load=load_results,
        machine=machine,
        meta=environment,
        processes=reaper.record_section(since=strays_before),
    )
    rec["timing"] = {**measured.timing(began, time.monotonic()), "calibrate_s": round(calibrate_s, 3)}
    if workloads.is_user(cell.workload):
        rec["user_output"] = measured.user_output
    return rec


@dataclass
class Measured:
    """What the server and load processes of one cell wrote, and when.

    Attributes:
        server: The server's measurements (its stats file, as written: a
            self-test's server writes keys of its own; :func:`run_cell`
            reads the engine's server's as a :class:`ServerReport`).
        load: The load's results, checked.
        cpu_before: ``psutil.cpu_times()`` when the window opened.
        cpu_after: The same when it closed.
        window_cpu_s: Monotonic seconds between those two readings.
        started: Monotonic time the server process was started.
        window_start: Monotonic time the window opened (after the warm-up).
        window_end: Monotonic time it closed.
        stopped: Monotonic time both processes had ended.
        warmup_s: The warm-up, in seconds.
        load_exited: Monotonic time the load process had exited.
        stats_written: Monotonic time the server's stats file was found.
        user_output: What the server's processes wrote (:func:`user_output`).
    """

    server: dict[str, Any]
    load: LoadReport
    cpu_before: Any
    cpu_after: Any
    window_cpu_s: float
    started: float
    window_start: float
    window_end: float
    stopped: float
    warmup_s: float
    load_exited: float | None = None
    stats_written: float | None = None
    user_output: dict[str, Any] | None = None

    def timing(self, began: float, finished: float) -> dict[str, Any]:
        """Where a cell's wall time went, from ``began`` to ``finished`` (monotonic).

        ``overhead_s`` is everything outside the warm-up and the window:
        set-up (``setup_s``: validation, calibration lookup, input data,
        environment), process start-up (``startup_s``: until the window
        was sent), and teardown (``teardown_s``: from the window's end
        until the record is assembled), and its parts: ``load_exit_s``
        (from the window's end until the load process had closed its
        connections and exited), ``server_stats_s`` (from then until the
        server's measurements were written) and ``server_end_s`` (from
        then until both process groups were gone).
        """
        sent = self.window_start - self.warmup_s
        wall = finished - began
        measured = self.window_end - sent
        parts: dict[str, Any] = {}
        if self.load_exited is not None and self.stats_written is not None:
            parts = {
                "load_exit_s": round(self.load_exited - self.window_end, 3),
                "server_stats_s": round(self.stats_written - self.load_exited, 3),
                "server_end_s": round(self.stopped - self.stats_written, 3),
            }
        return {
            "wall_s": round(wall, 3),
            "setup_s": round(self.started - began, 3),
            "startup_s": round(sent - self.started, 3),
            "warmup_s": round(self.warmup_s, 3),
            "window_s": round(self.window_end - self.window_start, 3),
            "teardown_s": round(finished - self.window_end, 3),
            "overhead_s": round(wall - measured, 3),
            **parts,
        }


def run_processes(
    cell: CellConfig,
    work: dict[str, Any],
    duration: float,
    *,
    progress: Progress = _quiet,
    server_module: str = SERVER_MODULE,
    server_args: tuple[str, ...] = (),
    on_measured: Callable[[], None] | None = None,
) -> Measured:
    """Start the server and load processes of a cell, measure one window, stop both.

    Args:
        cell: A validated cell.
        work: The record's ``work`` section (:func:`size_work`).
        duration: The window, in seconds.
        progress: Receives progress messages.
        server_module: The module the server process runs; another one
            must speak the same protocol (a ``ready`` event with its port,
            the window on stdin, its stats file written when stdin closes).
        server_args: Extra arguments after the server's config file.
        on_measured: Called once the window has ended and the load's results
            and the window's CPU times are read: nothing after that is
            recorded, the server's measurements being of the window alone.

    Returns:
        What both processes wrote, with the window's timing.

    Raises:
        UsageError: The port is in use.
        HarnessError: A process of the harness failed or hung.
    """
    data_dir = str(paths.data_dir())
    job_ms_bound = _job_ms(cell, work) / 1000.0
    # Time the server may need to notice "stop": a job in flight on the loop
    # (inline) must end first, on a machine that may be twice as slow.
    stop_grace = 3 * job_ms_bound + cell.close_timeout + 10.0

    # Identifies the load's connections, so that any other client is counted
    # apart and kept out of the measurements.
    token = secrets.token_hex(16)
    chunked = strategies.has(cell.strategy, "chunks")
    # The one job the load sends; the server runs no other (nor a larger one).
    load_job = JobConfig(cell.workload, work["units"], work["chunk_units"] if chunked else work["units"],
                         dict(cell.workload_params))
    with paths.run_temp_dir("wsblock-cell-") as tmp:
        server_cfg = ServerConfig(
            cell=cell,
            data_dir=data_dir,
            warm_job=JobConfig(cell.workload, work["warm_units"], work["warm_units"], dict(cell.workload_params)),
            stats_path=os.path.join(tmp, "server.json"),
            deadline=time.time() + READY_TIMEOUT_S + 60.0,
            token=token,
            expected_job_ms=float(work["expected_ms"]),
            load_job=load_job,
        )
        server_cfg_path = os.path.join(tmp, "server-config.json")
        server_cfg.write(server_cfg_path)
        load_cfg = LoadConfig(
            cell=cell,
            uri="",  # sent with the window, once the server has bound its port
            open_timeout=max(10.0, 2 * job_ms_bound + 5.0),
            job=load_job,
            results_path=os.path.join(tmp, "load.json"),
            deadline=time.time() + READY_TIMEOUT_S + 60.0,
            token=token,
        )
        load_cfg_path = os.path.join(tmp, "load-config.json")
        load_cfg.write(load_cfg_path)
        server: Child | None = None
        load: Child | None = None
        failure: BaseException | None = None
        output: dict[str, Any] | None = None
        try:
            progress(f"starting server ({cell.strategy}, {cell.workload}) and load")
            started = time.monotonic()
            server = _child("server", server_module, [server_cfg_path, *server_args], paths.temp_env(tmp))
            # The load starts beside the server rather than after it: it only
            # connects once the window is sent, so nothing it does before
            # then can touch a measurement, and its start-up no longer adds
            # to the server's.
            load = _child("load", LOAD_MODULE, [load_cfg_path], paths.temp_env(tmp))
            event = server.next_event(READY_TIMEOUT_S)
            if event is None or event.get("event") != "ready":
                _server_failed(server, event, cell.workload if workloads.is_user(cell.workload) else None)
            port = event["port"]
            host = f"[{cell.host}]" if ":" in cell.host else cell.host
            event = load.next_event(READY_TIMEOUT_S)
            if event is None or event.get("event") != "ready":
                raise HarnessError(f"load process failed to start:\n{load.stderr_tail()}")

            start = time.time() + cell.warmup
            end = start + duration
            # The same instants on the monotonic clock (system-wide, so the
            # server's and the load's too): for the timing, and for reading
            # the CPU times on time.
            mono_start = start + (time.monotonic() - time.time())
            mono_end = mono_start + duration
            deadline = end + stop_grace + 30.0
            window = {"window_start": start, "window_end": end, "deadline": deadline}
            server.send(window)
            load.send({**window, "uri": f"ws://{host}:{port}/"})
            progress(
                f"warm-up {cell.warmup:g} s, then measuring for {duration:g} s "
                + (f"(work {cell.work_ms:g} ms = {work['units']} {work['unit']})" if cell.work_ms is not None
                   else f"(one call per job, about {work['expected_ms']:.0f} ms)")
            )
            cpu_before = cpu_after = None
            t_before = t_after = 0.0
            # The server's CPU is read here, outside it: a thread inside it
            # cannot read on time while a C call holds the GIL.
            tree_before: TreeCpu | None = None
            tree_after: TreeCpu | None = None
            tree_missing: str | None = None
            while True:
                due = mono_start if cpu_before is None else mono_end if cpu_after is None else None
                wait_s = 0.05 if due is None else min(0.05, max(0.0, due - time.monotonic()))
                exited = load.wait(wait_s) is not None
                mono = time.monotonic()
                if cpu_before is None and mono >= mono_start:
                    tree_before, tree_missing = _read_tree(server.proc.pid, tree_missing)
                    cpu_before, t_before = psutil.cpu_times(), time.monotonic()
                if cpu_after is None and mono >= mono_end:
                    tree_after, tree_missing = _read_tree(server.proc.pid, tree_missing)
                    cpu_after, t_after = psutil.cpu_times(), time.monotonic()
                event = server.poll_event()
                if event is not None and event.get("event") == "fatal":
                    raise CellFailed(f"server: {event.get('message')}")
                if server.proc.poll() is not None:
                    if workloads.is_user(cell.workload):
                        raise CellFailed(f"the server ended during the run (exit {server.proc.returncode}) "
                                         f"while running {cell.workload}: os._exit, or a crash")
                    raise HarnessError(
                        f"server exited during the run (exit {server.proc.returncode}):\n{server.stderr_tail()}"
                    )
                if exited:
                    break
                if mono > mono_end + cell.close_timeout + 30.0:
                    raise HarnessError("load process did not finish after the window")
            if cpu_before is None or cpu_after is None:
                raise HarnessError(
                    f"load process ended {mono_end - time.monotonic():.1f} s before the window end "
                    f"(exit {load.proc.returncode}):\n{load.stderr_tail()}"
                )
            load_exited = time.monotonic()
            try:
                with open(load_cfg.results_path, encoding="utf-8") as handle:
                    load_json = json.load(handle)
            except (OSError, ValueError):
                raise HarnessError(f"load process wrote no results:\n{load.stderr_tail()}") from None
            # Checked here, as the configs are where the children read them:
            # a results file of the wrong shape names its field.
            load_results = LoadReport.from_dict(load_json, source="the load process")
            if on_measured is not None:
                # Nothing after the window's end is recorded (the server's
                # measurements are of the window alone, whenever it writes
                # them), so what follows may share the machine.
                on_measured()
            progress("window closed; stopping server")
            # The stop is requested when the load has gone, as before: when
            # it arrives decides which of the jobs in flight at the window's
            # end complete and which are censored, so it must not move.
            server.request_stop()
            _wait_for_file(server, server_cfg.stats_path, stop_grace)
            stats_written = time.monotonic()
            try:
                with open(server_cfg.stats_path, encoding="utf-8") as handle:
                    server_stats = json.load(handle)
            except (OSError, ValueError):
                hung = server.proc.poll() is None
                server.stop(min(5.0, stop_grace))
                if hung and workloads.is_user(cell.workload):
                    # The time limit of a job: the window's end plus the
                    # stop's grace (three expected jobs and the close timeout).
                    raise CellFailed(f"a job of {cell.workload} had not returned {stop_grace:.0f} s after the "
                                     f"window's end, so the server could not stop") from None
                raise HarnessError(
                    f"server wrote no measurements (exit {server.proc.returncode}):\n{server.stderr_tail()}"
                ) from None
            server_stats["resources"] = {
                **(server_stats.get("resources") or {}),
                **window_cpu(tree_before, tree_after, start=mono_start, end=mono_end, missing=tree_missing),
            }
            # Its measurements are in hand: nothing the server does from now
            # on is recorded (closing handshakes with a load that has gone, a
            # thread still running a job, the pool's shutdown, interpreter
            # exit), so it is ended at once instead of waited for.
            server.kill()
        except BaseException as exc:
            # Interrupted or failed: a server blocked in a job is not waited
            # for (SIGTERM, then SIGKILL after a short grace).
            stop_grace = 0.5
            failure = exc
            raise
        finally:
            if load is not None:
                load.stop(min(5.0, stop_grace))
            if server is not None:
                server.stop(stop_grace)
                output = user_output(server)
                if isinstance(failure, CellFailed):
                    failure.user_output = output

    return Measured(server=server_stats, load=load_results, cpu_before=cpu_before, cpu_after=cpu_after,
                    window_cpu_s=t_after - t_before, started=started, window_start=mono_start,
                    window_end=mono_end, stopped=time.monotonic(), warmup_s=cell.warmup,
                    load_exited=load_exited, stats_written=stats_written, user_output=output)


def _read_tree(pid: int, missing: str | None) -> tuple[TreeCpu | None, str | None]:
    # The server's CPU times now, or None and why not.
    try:
        return tree_cpu(pid), missing
    except psutil.Error as exc:
        return None, missing or f"the server's CPU times could not be read ({type(exc).__name__})"


STATS_POLL_S = 0.01
"""How often the runner looks for the server's stats file while it stops."""


def _wait_for_file(child: Child, path: str, timeout: float) -> None:
    # The file is written atomically (renamed into place), so once it exists
    # it is whole. Returns when it exists, when the child has exited, or after
    # ``timeout`` seconds; the caller reads the file and says what is missing.
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if child.wait(STATS_POLL_S) is not None or time.monotonic() > end:
            return


def user_output(child: Child) -> dict[str, Any] | None:
    """The end of what a child and its process group wrote (a user's function prints there).

    Returns:
        ``stdout`` and ``stderr`` (the last :data:`USER_OUTPUT_BYTES` of
        each) and ``truncated``; ``None`` when both are empty.
    """
    tails = child.output_tail(USER_OUTPUT_BYTES)
    return tails if tails["stdout"] or tails["stderr"] else None


def _server_failed(server: Child, event: dict[str, Any] | None, function: str | None) -> None:
    # ``function``: the cell's user's function, if it is one (its set-up
    # call in the server may have ended the process).
    if event is not None and event.get("kind") == "port_in_use":
        server.stop(5.0)
        raise UsageError(event.get("message", "port in use"))
    if event is not None and event.get("event") == "fatal":
        raise CellFailed(f"server: {event.get('message')}")
    if event is None and function is not None:
        code = server.wait(5.0)
        raise CellFailed(f"the server ended before it was ready (exit {code}) while importing or first calling "
                         f"{function}: os._exit, or a crash")
    server.stop(5.0)
    raise HarnessError(f"server failed to start:\n{server.stderr_tail()}")
