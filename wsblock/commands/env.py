"""``wsblock env``: the environment every record of this machine carries."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add ``env`` to the ``wsblock`` command."""
    env = subparsers.add_parser(
        "env", help="print the machine and software environment a record carries",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print what every record measured here states about its environment (its 'meta'): "
                    "the machine, its cores and load, the interpreter and its switch interval, the "
                    "versions of the libraries that decide the results, and the wsblock commit. Quote it "
                    "beside numbers measured on this machine.",
        epilog="examples:\n  wsblock env\n  wsblock env --json > env.json")
    env.add_argument("--json", action="store_true", help="print it as JSON (the record's layout)")


def lines(environment: dict[str, Any]) -> list[str]:
    """The environment in plain words, one fact a line."""
    python, cpu, git = environment["python"], environment["cpu"], environment["git"]
    platform = environment["platform"]
    load = cpu.get("loadavg_before")
    commit = git.get("commit") or "unknown (not a git checkout)"
    out = [
        f"machine: {platform['system']} {platform['release']} {platform['machine']}, {cpu['model']}",
        f"cores: {cpu['count']} ({cpu['affinity']} usable by this process); "
        f"load average {' '.join(f'{x:g}' for x in load) if load else 'unknown'}",
        f"memory: {environment['memory_gib']:g} GiB",
        f"python: {python['implementation']} {python['version']} ({'GIL' if python['gil_enabled'] else 'free-threaded'}), "
        f"switch interval {environment['switch_interval_s'] * 1000:g} ms",
        f"wsblock commit: {commit}{' (with uncommitted changes)' if git.get('dirty') else ''}",
        "packages: " + ", ".join(f"{name} {version or 'not installed'}"
                                 for name, version in environment["packages"].items()),
    ]
    if environment.get("env"):
        out.append("environment variables: " + ", ".join(f"{k}={v}" for k, v in environment["env"].items()))
    return out


def run(args: argparse.Namespace) -> int:
    """Print the environment (``--json``: as the record holds it)."""
    from wsblock.engine import meta

    environment = meta.environment()
    if args.json:
        print(json.dumps(environment, indent=2, allow_nan=False))
    else:
        print("\n".join(lines(environment)))
    return 0
