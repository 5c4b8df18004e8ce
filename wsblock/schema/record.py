"""The cell record: one versioned JSON document per cell.

The layout is documented in ``docs/record.md``. Tools that read records
(matrix tables, reports, asv) rely on the keys checked by :func:`validate`.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 3

REQUIRED: dict[str, tuple[str, ...]] = {
    "": ("schema_version", "params", "disconnects", "loop_lag_ms", "stalls", "throughput",
         "echo_latency_ms", "job_ms", "job_latency_ms", "resources", "meta"),
    "disconnects": ("total", "share", "by_code", "first_s"),
    "loop_lag_ms": ("p50", "p90", "p99", "p999", "max", "samples"),
    "stalls": ("count", "max_ms", "total_ms"),
    "throughput": ("jobs_per_s", "echo_per_s"),
    "echo_latency_ms": ("p50", "p99", "max"),
    "job_ms": ("p50", "max"),
    "job_latency_ms": ("p50", "p99"),
    "params": ("workload", "work_ms", "strategy", "ping_interval", "ping_timeout", "duration"),
}


def validate(record: Any) -> None:
    """Check that a record has the keys tools rely on.

    Args:
        record: A parsed JSON document.

    Raises:
        ValueError: Naming the first missing or wrong key.
    """
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    version = record.get("schema_version")
    if isinstance(version, bool) or version not in range(1, SCHEMA_VERSION + 1):
        raise ValueError(f"unsupported schema_version {version!r} (expected 1 to {SCHEMA_VERSION})")
    status = record.get("status", "ok")
    if status == "failed":
        required = {"": ("params", "error"), "params": REQUIRED["params"]}
    elif status == "ok":
        required = REQUIRED
    else:
        raise ValueError(f"unknown status {status!r}")
    for section, keys in required.items():
        container = record if not section else record.get(section)
        if not isinstance(container, dict):
            raise ValueError(f"missing section {section!r}")
        for key in keys:
            if key not in container:
                raise ValueError(f"missing key {section + '.' if section else ''}{key}")
