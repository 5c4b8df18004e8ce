"""The server's CPU over the window, from snapshots taken outside it."""

from __future__ import annotations

import os

from wsblock.engine.resources import TreeCpu, tree_cpu, window_cpu


def test_snapshots_on_time_give_cpu_over_the_interval_between_them() -> None:
    before = TreeCpu(t=10.001, own=1.0, descendants={(7, 1.0): 2.0})
    after = TreeCpu(t=12.002, own=2.5, descendants={(7, 1.0): 3.0, (8, 11.0): 0.5})
    out = window_cpu(before, after, start=10.0, end=12.0)
    assert out["cpu_s"] == 1.5 and out["workers_cpu_s"] == 1.5
    assert abs(out["cpu_util"] - 1.5 / 2.001) < 1e-3
    assert out["interval_s"] == 2.001 and out["cpu_missing"] is None
    assert out["cpu_late_ms"] == {"start": 1.0, "end": 2.0}


def test_a_late_snapshot_gives_no_figure_and_says_why() -> None:
    before = TreeCpu(t=11.0, own=1.0, descendants={})
    after = TreeCpu(t=12.0, own=1.1, descendants={})
    out = window_cpu(before, after, start=10.0, end=12.0)
    assert out["cpu_s"] is None and out["cpu_util"] is None and out["interval_s"] is None
    assert "1000 ms from the window's start" in out["cpu_missing"]


def test_a_missing_snapshot_or_an_ended_worker_withholds_what_it_hides() -> None:
    out = window_cpu(None, None, start=0.0, end=1.0, missing="the server had gone")
    assert out["cpu_s"] is None and out["cpu_missing"] == "the server had gone"
    before = TreeCpu(t=0.0, own=0.0, descendants={(7, 1.0): 2.0})
    after = TreeCpu(t=1.0, own=0.5, descendants={})
    out = window_cpu(before, after, start=0.0, end=1.0)
    assert out["cpu_s"] == 0.5 and out["workers_cpu_s"] is None
    assert "ended during the window" in out["cpu_missing"]


def test_tree_cpu_reads_a_live_process() -> None:
    snap = tree_cpu(os.getpid())
    assert snap.own > 0.0
