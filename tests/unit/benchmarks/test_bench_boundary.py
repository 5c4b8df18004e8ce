"""The asv boundary benchmark: left out of the smoke profile, small under quick, reads the estimate."""

from __future__ import annotations

import importlib
import math

import pytest


def _load(monkeypatch: pytest.MonkeyPatch, profile: str):
    monkeypatch.setenv("WSBLOCK_ASV_PROFILE", profile)
    import benchmarks.bench_boundary as module

    return importlib.reload(module)


def test_smoke_leaves_the_search_out_and_quick_keeps_it_small(monkeypatch):
    assert not hasattr(_load(monkeypatch, "smoke"), "Boundary")
    quick = _load(monkeypatch, "quick")
    assert hasattr(quick, "Boundary")
    small, full = quick.search_for("quick"), quick.search_for("default")
    # A quick search: short keepalive and windows, a dozen cells at most.
    assert small["budget"] <= 12 and small["duration"] <= 2.5 and small["ping_timeout"] < 1.0
    assert full["budget"] <= 40


def test_track_methods_read_the_estimate(monkeypatch):
    module = _load(monkeypatch, "quick")
    bench = module.Boundary()
    entry = {"cells": 11, "p50": {"value": 412.0, "low": 380.0, "high": 450.0, "width": 450.0 / 380.0}}
    assert bench.track_boundary_ms(entry) == 412.0
    assert bench.track_interval_width(entry) == pytest.approx(1.184, abs=1e-3)
    assert bench.track_cells(entry) == 11.0
    # A crossing outside the searched range is no number, not a made-up one.
    assert math.isnan(bench.track_boundary_ms({"cells": 3, "p50": {"value": None, "width": None}}))
    assert math.isnan(bench.track_interval_width({"cells": 3, "p50": {"value": None, "width": None}}))
