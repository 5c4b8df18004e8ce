"""The cell record: one versioned JSON document per cell.

The layout is documented in ``docs/record.md``. Tools that read records
(matrix tables, reports, asv) go through :func:`load`, which brings an older
record to the current layout (:func:`upgrade`) and checks the keys they rely
on (:func:`validate`); nothing else needs to know about older layouts.

Versions:

* 1: the first layout. Records written under it grew over time: the oldest
  lack ``ticker_lag_ms``, ``job_cpu_ms``, ``disconnects.by_initiator``,
  ``stalls.sampled``/``stalls.stalled_share``, ``job_ms.in_flight_at_stop``
  and the keepalive variants ``params.client_pings`` and
  ``params.handler_ping_timeout``.
* 2: every key above is present (``null`` where nothing was measured);
  failed records are written by :func:`failed`.
* 3: what a cell could observe: ``window``, ``survival``, ``warnings``,
  ``io_lag_ms``, ``load``, ``server``, echo and job censoring,
  ``work.ratio_to_target``; ``params.duration`` may be ``null`` (sized
  window); ``stalls.max_ms`` is clipped to the window; ``disconnects.share``
  counts original connections (``disconnects.share_basis``).
* 4: nothing of the harness inside the window, and results that travel:
  ``stalls.before_window`` (stalls before the window, by phase, set-up ones
  never charged to the strategy), ``result`` (what the handler got back:
  type, pickled size, unpickling time in the server) and ``server.setup``.

``user_output`` (what a user's function wrote, see ``docs/record.md``) is
optional in any version: a record without it was written before it existed
or of a built-in workload.

``params`` holds every axis (:mod:`wsblock.schema.axes`). An axis added
later declares as its default what every cell did before it existed, so a
record without it ran at that default: reading fills it in
(:func:`upgrade`), in any version, and a new axis needs no new version.
"""

from __future__ import annotations

import copy
import typing
from typing import Any, Callable, Mapping

from wsblock.schema import caveats

SCHEMA_VERSION = 5
KIND = "wsblock.cell"

REQUIRED: dict[str, tuple[str, ...]] = {
    "": ("schema_version", "params", "disconnects", "loop_lag_ms", "stalls", "throughput",
         "echo_latency_ms", "job_ms", "job_latency_ms", "resources", "meta",
         "ticker_lag_ms", "job_cpu_ms"),
    "disconnects": ("total", "share", "by_code", "by_initiator", "first_s"),
    "loop_lag_ms": ("p50", "p90", "p99", "p999", "max", "samples"),
    "stalls": ("count", "max_ms", "total_ms"),
    "throughput": ("jobs_per_s", "echo_per_s"),
    "echo_latency_ms": ("p50", "p99", "max"),
    "job_ms": ("p50", "max"),
    "job_latency_ms": ("p50", "p99"),
    "params": ("workload", "work_ms", "strategy", "ping_interval", "ping_timeout", "duration",
               "client_pings", "handler_ping_timeout"),
}
REQUIRED_FAILED: dict[str, tuple[str, ...]] = {"": ("params", "error"), "params": REQUIRED["params"]}


def _v1_to_v2(record: dict[str, Any]) -> None:
    # Keys a v1 record may lack take the value they had before they existed:
    # not measured (null), no initiator counted, the keepalive defaults.
    params = record.setdefault("params", {})
    if isinstance(params, dict):
        params.setdefault("client_pings", True)
        params.setdefault("handler_ping_timeout", None)
    record.setdefault("kind", KIND)
    if record.get("status", "ok") == "ok":
        record.setdefault("ticker_lag_ms", None)
        record.setdefault("job_cpu_ms", None)
        disconnects = record.get("disconnects")
        if isinstance(disconnects, dict):
            disconnects.setdefault("by_initiator", {})


LEGACY_WARNING = "legacy_record"
"""Warning code of a record upgraded from before version 3."""


def _v2_to_v3(record: dict[str, Any]) -> None:
    # Version 2 measured less than version 3 describes. What can be derived
    # from the old keys is; what cannot is null, never a guess. Above all, no
    # survival verdict is invented: a record that lost a connection says
    # "lost", one that did not is "inconclusive", because its exposure to
    # keepalive timeouts was never measured.
    if record.get("status", "ok") != "ok":
        record.setdefault("warnings", [])
        return
    params = record.get("params") or {}
    duration = params.get("duration")
    record.setdefault("window", {
        "duration_s": duration, "requested_s": duration, "sized": False, "keepalive_s": None,
        "jobs_s": None, "needed_s": None, "bounded": False, "keepalive_observable": None,
        "jobs_observable": None, "job_period_s": None,
    })
    disconnects = record.get("disconnects")
    if isinstance(disconnects, dict):
        # The old share counted every connection, reconnects included.
        disconnects.setdefault("share_basis", "all_connections")
    keepalive = params.get("ping_interval") is not None and (
        params.get("ping_timeout") is not None or params.get("handler_ping_timeout") not in (None, "none"))
    lost = isinstance(disconnects, dict) and (disconnects.get("total") or 0) > 0
    if "survival" not in record:
        verdict = "lost" if lost else ("inconclusive" if keepalive else "not_applicable")
        record["survival"] = {
            "verdict": verdict,
            "reason": "recorded before keepalive exposure was measured (schema version 2 or older)",
            "cycles_observed": None, "originals": None, "original_lost": None, "connections": None,
        }
    echo = record.get("echo_latency_ms")
    if isinstance(echo, dict) and "censored" not in echo:
        echo["censored"] = echo.pop("unanswered", None)
        echo.setdefault("missed", None)
        waiting = (echo.get("lost") or 0) + (echo.get("censored") or 0)
        echo.setdefault("lower_bound", waiting > 0)
    stalls = record.get("stalls")
    if isinstance(stalls, dict):
        # Version 2 stalls were whole, not clipped to the window.
        stalls.setdefault("max_whole_ms", stalls.get("max_ms"))
        samples = (record.get("loop_lag_ms") or {}).get("samples")
        share = stalls.get("stalled_share")
        stalls.setdefault("primary", (samples is not None and samples < 100)
                          or (share is not None and share >= 0.05))
    record.setdefault("io_lag_ms", None)
    warnings = record.setdefault("warnings", [])
    if isinstance(warnings, list):
        warnings.append({"code": LEGACY_WARNING, "message":
                         "recorded before schema version 3, before keepalive exposure, "
                         "sample counts and load checks were measured"})


def _v3_to_v4(record: dict[str, Any]) -> None:
    # Version 3 saw no stall before the window and dropped every job's
    # result: not measured (null). Its server imported a user's module on
    # the first job, so a stall of that import may be in its window figures.
    if record.get("status", "ok") != "ok":
        return
    stalls = record.get("stalls")
    if isinstance(stalls, dict):
        stalls.setdefault("before_window", None)
    record.setdefault("result", None)
    server = record.get("server")
    if isinstance(server, dict):
        server.setdefault("setup", None)


def _v4_to_v5(record: dict[str, Any]) -> None:
    # Version 4 raised stalled_at_window_start for any stall going on when
    # the window opened; a warm-up stall is the cell's own work, now the
    # note busy_at_window_start (it moves no verdict).
    at_start = ((record.get("stalls") or {}).get("before_window") or {}).get("at_window_start")
    warnings = record.get("warnings")
    if not isinstance(at_start, dict) or not isinstance(warnings, list):
        return
    for i, w in enumerate(warnings):
        if isinstance(w, dict) and w.get("code") == "stalled_at_window_start":
            warnings[i] = caveats.at_window_start_warning(at_start)


UPGRADES: dict[int, Callable[[dict[str, Any]], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4,
                                                         4: _v4_to_v5}
"""Version -> the step that brings a record of that version to the next."""


def upgrade(record: Any) -> dict[str, Any]:
    """Bring a record of any known version to the current layout.

    Args:
        record: A parsed JSON document.

    Returns:
        A copy in the current layout (the input is left alone), with each
        axis its params lack at its default; a current record with every
        axis comes back as it is.

    Raises:
        ValueError: If it is not a JSON object or its version is unknown.
    """
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    version = record.get("schema_version")
    if isinstance(version, bool):
        raise ValueError(f"unsupported schema_version {version!r} (expected 1 to {SCHEMA_VERSION})")
    if version != SCHEMA_VERSION and version not in UPGRADES:
        raise ValueError(f"unsupported schema_version {version!r} (expected 1 to {SCHEMA_VERSION})")
    missing = _missing_axes(record.get("params"))
    if version == SCHEMA_VERSION and not missing:
        return record
    out = copy.deepcopy(record)
    while version != SCHEMA_VERSION:
        try:
            UPGRADES[version](out)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A value of the wrong type in an older record: damaged, not a crash.
            raise ValueError(f"cannot bring a version {version} record up to date: "
                             f"{type(exc).__name__}: {exc}") from None
        version += 1
        out["schema_version"] = version
    params = out.get("params")
    if isinstance(params, dict):
        for name, default in _missing_axes(params).items():
            params[name] = default
    return out


def _missing_axes(params: Any) -> dict[str, Any]:
    # The axes added after the record's version, absent from its params,
    # with the defaults they ran at (a required key stays required).
    from wsblock.schema import axes

    if not isinstance(params, dict):
        return {}
    from wsblock.schema import settings

    missing = {a.name: a.default for a in axes.AXES
               if a.default is not axes.REQUIRED and a.name not in params and a.name not in REQUIRED["params"]}
    # Settings added after records existed, at the default every cell had.
    missing.update({s.name: s.default for s in settings.SETTINGS if s.backfill and s.name not in params})
    return missing


def validate(record: Any) -> None:
    """Check that a record (of any known version) has the keys tools rely on.

    Args:
        record: A parsed JSON document.

    Raises:
        ValueError: Naming the first missing or wrong key.
    """
    current = upgrade(record)
    status = current.get("status", "ok")
    if status == "failed":
        required = REQUIRED_FAILED
    elif status == "ok":
        required = REQUIRED
    else:
        raise ValueError(f"unknown status {status!r}")
    for section, keys in required.items():
        container = current if not section else current.get(section)
        if not isinstance(container, dict):
            raise ValueError(f"missing section {section!r}")
        for key in keys:
            if key not in container:
                raise ValueError(f"missing key {section + '.' if section else ''}{key}")
    check_types(current)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers_in(section: Any, where: str) -> None:
    # A table of counts (``disconnects.by_code``): every value a number.
    if section is None:
        return
    if not isinstance(section, dict):
        raise ValueError(f"{where}: {section!r} is not a table")
    for key, value in section.items():
        if value is not None and not _number(value):
            raise ValueError(f"{where}.{key}: {value!r} is not a number")


def _kind_text(kinds: tuple[Any, ...]) -> str:
    words = {str: "a text", bool: "true or false", int: "a number", float: "a number", type(None): "null"}
    return " or ".join(dict.fromkeys(words.get(k, str(k)) for k in kinds))


ENVIRONMENT_TABLES = ("packages", "python", "cpu", "platform", "git")
"""Tables of a record's ``meta`` (and a manifest's ``environment``) that readers look into."""


def check_environment(env: Any, where: str) -> None:
    """Check the types of an environment description (a record's ``meta``, a manifest's ``environment``).

    Raises:
        ValueError: Naming the first value of the wrong type.
    """
    if env is None:
        return
    if not isinstance(env, dict):
        raise ValueError(f"{where}: {env!r} is not a table")
    for key in ENVIRONMENT_TABLES:
        if env.get(key) is not None and not isinstance(env[key], dict):
            raise ValueError(f"{where}.{key}: {env[key]!r} is not a table")
    for key in ("memory_gib", "switch_interval_s"):
        if env.get(key) is not None and not _number(env[key]):
            raise ValueError(f"{where}.{key}: {env[key]!r} is not a number")
    commit = (env.get("git") or {}).get("commit")
    if commit is not None and not isinstance(commit, str):
        raise ValueError(f"{where}.git.commit: {commit!r} is not a text")
    blas = env.get("blas")
    if blas is not None and not (isinstance(blas, list) and all(isinstance(p, dict) for p in blas)):
        raise ValueError(f"{where}.blas: {blas!r} is not a list of tables")


def check_user_output(output: Any) -> None:
    """Check a record's ``user_output``: ``null``, or texts ``stdout`` and ``stderr`` and ``truncated``.

    Raises:
        ValueError: Naming the first value of the wrong type.
    """
    if output is None:
        return
    if not isinstance(output, dict):
        raise ValueError(f"user_output: {output!r} is not a table")
    for key in ("stdout", "stderr"):
        if not isinstance(output.get(key), str):
            raise ValueError(f"user_output.{key}: {output.get(key)!r} is not a text")
    if not isinstance(output.get("truncated"), bool):
        raise ValueError(f"user_output.truncated: {output.get('truncated')!r} is not true or false")


def check_types(record: dict[str, Any]) -> None:
    """Check that every value tools read has the type the schema gives it.

    A number that is text (``"disconnects": {"total": "abc"}``) would be
    read as "nothing measured" and pass for a measurement; a record like
    that is refused whole.

    Args:
        record: A record in the current layout.

    Raises:
        ValueError: Naming the first value of the wrong type.
    """
    from wsblock.schema import axes, metrics

    status = record.get("status", "ok")
    if not isinstance(status, str):
        raise ValueError(f"status: {status!r} is not a text")
    params = record.get("params")
    if isinstance(params, dict):
        for axis in axes.AXES:
            if axis.name not in params:
                continue
            value = params[axis.name]
            kinds = typing.get_args(axis.kind) or (axis.kind,)
            fits = any(value is None if k is type(None) else _number(value) if k in (int, float)
                       else isinstance(value, k) for k in kinds)
            if not fits and not (isinstance(value, str) and axis.none_text is not None
                                 and value.lower() in ("none", axis.none_text)):
                raise ValueError(f"params.{axis.name}: {value!r} is not {_kind_text(kinds)}")
        workload_params = params.get("workload_params")
        if workload_params is not None and not isinstance(workload_params, dict):
            raise ValueError(f"params.workload_params: {workload_params!r} is not a table")
    tag = record.get("matrix")
    if tag is not None:
        if not isinstance(tag, dict):
            raise ValueError(f"matrix: {tag!r} is not a table")
        if tag.get("cell_id") is not None and not isinstance(tag["cell_id"], str):
            raise ValueError(f"matrix.cell_id: {tag['cell_id']!r} is not a text")
        repeat = tag.get("repeat", 0)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
            raise ValueError(f"matrix.repeat: {repeat!r} is not a whole number from 0")
    check_environment(record.get("meta"), "meta")
    check_user_output(record.get("user_output"))
    if status == "failed":
        if not isinstance(record.get("error"), str):
            raise ValueError(f"error: {record.get('error')!r} is not a text")
        return
    for metric in metrics.METRICS:
        if getattr(metric, "derive", None) is not None:
            continue  # computed from other values, which are checked as themselves
        node: Any = record
        for depth, key in enumerate(metric.path):
            if node is None:
                break
            if not isinstance(node, dict):
                raise ValueError(f"{'.'.join(metric.path[:depth])}: {node!r} is not a table")
            if key not in node:
                node = None
                break
            node = node[key]
        if node is not None and not _number(node):
            raise ValueError(f"{'.'.join(metric.path)}: {node!r} is not a number")
    processes = record.get("processes")
    if processes is not None:
        if not isinstance(processes, dict):
            raise ValueError(f"processes: {processes!r} is not a table")
        strays = processes.get("strays_ended")
        if strays is not None and not _number(strays):
            raise ValueError(f"processes.strays_ended: {strays!r} is not a number")
    disconnects = record.get("disconnects")
    if isinstance(disconnects, dict):
        _numbers_in(disconnects.get("by_code"), "disconnects.by_code")
        _numbers_in(disconnects.get("by_initiator"), "disconnects.by_initiator")
    for label in metrics.LABELS:
        value = get_path(record, *label.path)
        if value is None:
            continue
        if label.column == "warnings":
            if not isinstance(value, list) or not all(isinstance(w, dict) for w in value):
                raise ValueError(f"warnings: {value!r} is not a list of warnings")
        elif label.column.endswith(("_bound", "_primary")):
            if not isinstance(value, bool):
                raise ValueError(f"{'.'.join(label.path)}: {value!r} is not true or false")
        elif not isinstance(value, str):
            raise ValueError(f"{'.'.join(label.path)}: {value!r} is not a text")


def load(record: Any) -> dict[str, Any]:
    """Upgrade and validate a record just read.

    Returns:
        The record in the current layout.

    Raises:
        ValueError: Naming what is wrong.
    """
    current = upgrade(record)
    validate(current)
    return current


def get_path(data: Any, *keys: str) -> Any:
    """Walk nested mappings (a record, a manifest); ``None`` when any step is missing."""
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def is_ok(record: Any) -> bool:
    """Whether a record holds a measurement (``status`` ``ok``)."""
    return isinstance(record, dict) and record.get("status", "ok") == "ok"


def failed(
    *, params: dict[str, Any], error: str, exit_code: int | None, stderr_tail: list[str], meta: dict[str, Any]
) -> dict[str, Any]:
    """The record of a cell that could not be measured.

    Args:
        params: The cell (``CellConfig.to_dict()``).
        error: One line saying why (without ``error: ``).
        exit_code: The cell process's exit status, if it ended.
        stderr_tail: Its last lines of standard error.
        meta: Environment metadata.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "status": "failed",
        "params": params,
        "error": error.removeprefix("error: "),
        "exit_code": exit_code,
        "stderr_tail": stderr_tail,
        "meta": meta,
    }
