"""What machine and software produced a run, as the report states it."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from wsblock.schema.record import get_path as _get

Record = Mapping[str, Any]


def base_meta(manifest: Mapping[str, Any] | None, records: Iterable[Record]) -> dict[str, Any]:
    """The run's environment: the manifest's, else the first record's meta."""
    env = _get(manifest, "environment")
    if isinstance(env, Mapping) and env:
        return dict(env)
    for record in records:
        meta = record.get("meta")
        if isinstance(meta, Mapping):
            return dict(meta)
    return {}


def switch_interval_s(records: Iterable[Record], default: float = 0.005) -> float:
    """``sys.getswitchinterval()`` as the server saw it (first record that has it)."""
    for record in records:
        value = _get(record, "meta", "switch_interval_s")
        if isinstance(value, (int, float)):
            return float(value)
    return default


def switch_intervals_s(records: Iterable[Record], default: float = 0.005) -> list[float]:
    """Every distinct ``sys.getswitchinterval()`` the servers of ``records`` saw, sorted."""
    seen = {float(v) for r in records if isinstance(v := _get(r, "meta", "switch_interval_s"), (int, float))}
    return sorted(seen) or [default]


def _blas(records: Iterable[Record]) -> str:
    for record in records:
        pools = _get(record, "meta", "blas")
        if isinstance(pools, list) and pools:
            parts = []
            for pool in pools:
                if isinstance(pool, Mapping):
                    threads = pool.get("num_threads")
                    plural = "" if threads == 1 else "s"
                    parts.append(f"{pool.get('internal_api', '?')} {pool.get('version', '')}".strip()
                                 + f", {threads} thread{plural}")
            if parts:
                return "; ".join(parts)
    return "not reported"


def _start_method(records: list[Record]) -> str:
    methods = sorted({str(m) for r in records if (m := _get(r, "meta", "start_method"))})
    if methods:
        return ", ".join(methods) + " (process strategy)"
    return "not used (no process-strategy cell was measured)"


def _dates(manifest: Mapping[str, Any] | None, records: list[Record]) -> str:
    start, end = _get(manifest, "started_utc"), _get(manifest, "finished_utc")
    if not start:
        stamps = sorted(str(t) for r in records if (t := _get(r, "meta", "timestamp_utc")))
        if stamps:
            start, end = stamps[0], stamps[-1]
    if not start:
        return "unknown"
    return f"{start} to {end}" if end and end != start else str(start)


def describe(manifest: Mapping[str, Any] | None, records: Iterable[Record]) -> list[tuple[str, str]]:
    """The environment as ``(label, value)`` rows for the report.

    Args:
        manifest: The run's manifest, if any.
        records: The run's records (used when there is no manifest and for
            what only the server knows: BLAS, switch interval, start method).

    Returns:
        Rows in a fixed order; unknown values say so.
    """
    records = list(records)
    meta = base_meta(manifest, records)
    packages = meta.get("packages") or {}
    py = meta.get("python") or {}
    cpu = meta.get("cpu") or {}
    plat = meta.get("platform") or {}
    git = meta.get("git") or {}
    gil = py.get("gil_enabled")
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (uncommitted changes)"
    affinity = cpu.get("affinity")
    cpus = f"{cpu.get('count', '?')}" + (f" (usable by this process: {affinity})"
                                          if affinity not in (None, cpu.get("count")) else "")
    return [
        ("Python", f"{py.get('version', '?')} {py.get('implementation', '')}".strip()
         + ("" if gil is None else f", GIL {'enabled' if gil else 'disabled'}")),
        ("websockets", str(packages.get("websockets") or "?")),
        ("numpy", str(packages.get("numpy") or "?")),
        ("pandas", str(packages.get("pandas") or "?")),
        ("wsblock", str(packages.get("wsblock") or "?")),
        ("OS", " ".join(str(plat.get(k, "")) for k in ("system", "release", "machine")).strip() or "?"),
        ("CPU model", str(cpu.get("model") or "?")),
        ("CPUs", cpus),
        ("memory", f"{meta['memory_gib']} GiB" if meta.get("memory_gib") is not None else "?"),
        ("switch interval", f"{switch_interval_s(records) * 1000:g} ms (sys.getswitchinterval)"),
        ("BLAS", _blas(records)),
        ("start method", _start_method(records)),
        ("git commit", commit),
        ("date (UTC)", _dates(manifest, records)),
    ]


def one_line(manifest: Mapping[str, Any] | None, records: Iterable[Record]) -> str:
    """A one-line description for a comparison header."""
    rows = dict(describe(manifest, records))
    return (f"websockets {rows['websockets']}, Python {rows['Python']}, "
            f"{rows['CPU model']} x {rows['CPUs']} CPUs, {rows['memory']}, "
            f"git {rows['git commit'][:12]}, {rows['date (UTC)']}")


def differences(records: Iterable[Record]) -> list[str]:
    """Environment facts that differ between records of one run.

    A run should be one environment; if it is not, the reader must know.
    """
    records = list(records)
    checks = {
        "Python": ("python", "version"),
        "websockets": ("packages", "websockets"),
        "host": ("platform", "hostname"),
        "git commit": ("git", "commit"),
        "CPU count": ("cpu", "count"),
    }
    out = []
    for label, path in checks.items():
        values = sorted({str(_get(r, "meta", *path)) for r in records if _get(r, "meta", *path) is not None})
        if len(values) > 1:
            out.append(f"{label} differs between records: {', '.join(values)}")
    return out
