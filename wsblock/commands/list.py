"""``wsblock list``: the workloads and the strategies."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add ``list`` to the ``wsblock`` command."""
    subparsers.add_parser("list", help="list workloads and strategies",
                   description="List the workloads (with their parameters) and the strategies, "
                               "and which pairs are unsupported.")


def run(args: argparse.Namespace) -> int:
    """Print the workloads, with their parameters, and the strategies."""
    import workloads
    from wsblock.engine import strategies

    print("workloads:")
    for w in workloads.all_workloads():
        print(f"  {w.name:<12} {w.description}")
        print(f"  {'':<12} unit: {w.unit}; GIL: {w.gil}")
        for p in w.params:
            print(f"  {'':<12} --param {p.name}=N  {p.help} (default {p.default}, {p.minimum}..{p.maximum})")
    print("  or your own function: --workload package.module:function [--param key=value ...]")
    print("strategies:")
    for name in strategies.names():
        cls = strategies.get(name)
        refused = [w.name for w in workloads.all_workloads() if cls.unsupported_reason(w)]
        extra = f" (not for: {', '.join(refused)})" if refused else ""
        print(f"  {name:<12} {cls.description}{extra}")
    return 0
