"""The server's event loop as an axis: asyncio's own or uvloop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema.axes import cell_id, normal
from tests.helpers import run_cell


def test_the_default_loop_leaves_ids_and_old_records_as_they_were() -> None:
    cell = CellConfig("pure_python", 200, "inline", ping_interval=0.5, ping_timeout=0.5).validate()
    assert cell.loop == "asyncio"
    assert cell_id(cell.to_dict(), repeat=0, settings=False) == "pure_python-200ms-inline-pi0.5-pt0.5-r0"
    # A record written before the axis existed ran asyncio's loop.
    assert normal({"workload": "pure_python", "work_ms": 200, "strategy": "inline"})["loop"] == "asyncio"


def test_unknown_or_missing_loops_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="unknown loop 'trio'"):
        CellConfig("pure_python", 200, "inline", loop="trio").validate()
    with pytest.raises(UsageError, match="loop: unknown loop 'trio'"):
        matrix_spec.expand({"workloads": ["pure_python"], "work_ms": 1, "strategies": ["inline"],
                            "loop": ["asyncio", "trio"]}, source="t")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a))
    with pytest.raises(UsageError, match=r"loop uvloop needs the uvloop package.*wsblock\[uvloop\]"):
        CellConfig("pure_python", 200, "inline", loop="uvloop").validate()


@pytest.mark.e2e
def test_a_cell_on_uvloop_records_the_loop_that_ran(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    rec = run_cell(tmp_path, "--workload", "blocking_io", "--work-ms", "20", "--strategy", "thread",
                   "--loop", "uvloop", "--duration", "1.5", "--warmup", "0.3")
    assert rec["params"]["loop"] == "uvloop"
    assert rec["meta"]["event_loop"]["class"] == "uvloop.Loop"
    assert rec["meta"]["event_loop"]["version"]
    assert cell_id(rec["params"]).startswith("blocking_io-20ms-thread-pi20-pt20-uvloop")
    assert rec["loop_lag_ms"]["samples"] > 0 and rec["job_ms"]["completed"] > 0
