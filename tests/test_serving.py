"""The serving core's set-up acts once, whichever server shell runs it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from wsblock import paths
from wsblock.engine.config import CellConfig
from wsblock.engine.proc import Child
from wsblock.engine.process_config import JobConfig, ServerConfig

COUNTED = """\
import sys

real = sys.setswitchinterval


def counted(value):
    # Each call the server makes, as one line on stderr.
    sys.stderr.write(f"setswitchinterval {value!r}\\n")
    sys.stderr.flush()
    real(value)


sys.setswitchinterval = counted
from wsblock.engine import server

raise SystemExit(server.main())
"""
"""The server's entry point, with ``sys.setswitchinterval`` counting its calls."""


@pytest.mark.parametrize("kind", ["asyncio", "threaded"])
def test_the_switch_interval_is_applied_once_and_reported(tmp_path: Path, kind: str) -> None:
    # 2 ms, not the interpreter's 5 ms: the stats file shows it was applied,
    # and the counted calls that it was applied once.
    cell = CellConfig("blocking_io", 1.0, "inline", ping_interval=20.0, ping_timeout=20.0, close_timeout=1.0,
                      probe_interval_ms=1.0, stall_ms=50.0, switch_interval_ms=2.0, server=kind)
    config = ServerConfig(cell=cell, data_dir=str(paths.data_dir()), warm_job=JobConfig("blocking_io", 1, 1, {}),
                          stats_path=str(tmp_path / "stats.json"), deadline=time.time() + 60, token="t0ken")
    config.write(tmp_path / "config.json")
    server = Child("server", ["-c", COUNTED, str(tmp_path / "config.json")])
    try:
        event = server.next_event(60)
        assert event and event["event"] == "ready", server.stderr_tail()
        now = time.time()
        server.send({"window_start": now, "window_end": now + 0.3, "deadline": now + 30})
        server.request_stop()
        assert server.wait(20) == 0, server.stderr_tail()
    finally:
        server.stop(5)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["switch_interval_s"] == pytest.approx(0.002)
    calls = [line for line in server.stderr_tail(1000).splitlines() if line.startswith("setswitchinterval")]
    assert calls == ["setswitchinterval 0.002"]
