"""The loop figure reads the watchdog where the loop was blocked, never a thin probe.

A loop blocked for seconds gives the 1 ms sleep probe one sample per stall, or
none when the stall spans the window's edge: its "p99" or maximum can read a few
ms. ``loop_delay_ms`` (``wsblock/schema/loopdelay.py``) and the report's loop
figure must then show the longest stall, above the keepalive budget line.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIXTURES
from wsblock.analysis import tidy
from wsblock.analysis import cells as cellmod
from wsblock.report import fig_strips, tables
from wsblock.schema import loopdelay, metrics, record

RUN_A = FIXTURES / "run_a" / "cells"


# -- the rule ----------------------------------------------------------------


def test_a_thin_probe_gives_way_to_the_watchdogs_stall() -> None:
    # 2 wake-ups inside the window, the larger 7 ms late; one 3.5 s stall.
    assert loopdelay.loop_delay_ms(None, 2, 3500.0) == 3500.0
    # The probe's p99 over 378 wake-ups, but the loop stalled 97 % of the time (a reference repeat).
    assert loopdelay.loop_delay_ms(1083.4, 378, 3034.7) == 3034.7
    # One 600 ms stall in a long window of free running: the stall, not the probe's 1.5 ms.
    assert loopdelay.loop_delay_ms(1.5, 100_000, 600.0) == 600.0


def test_a_free_loop_reads_the_probes_p99() -> None:
    # Many wake-ups, no stall: the probe's p99 is the figure.
    assert loopdelay.loop_delay_ms(1.2, 5000, 0.0) == 1.2
    # Exactly enough wake-ups for a p99, and a record without stall figures (older ones).
    assert loopdelay.loop_delay_ms(30.0, 100, 0.0) == 30.0
    assert loopdelay.loop_delay_ms(3.0, 4000, None) == 3.0


def test_nothing_honest_to_show_is_withheld() -> None:
    # A thin probe and no stall: the figure is withheld, not the probe's maximum.
    assert math.isnan(loopdelay.loop_delay_ms(None, 40, 0.0))
    assert math.isnan(loopdelay.loop_delay_ms(25.0, 99, 0.0))
    # No record of stalls at all: a thin probe is still no figure.
    assert math.isnan(loopdelay.loop_delay_ms(None, 2, None))


# -- the figure ----------------------------------------------------------------


def _record(name: str, lag: dict[str, Any], stalls: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    path = RUN_A / name
    rec = copy.deepcopy(record.load(json.loads(path.read_text(encoding="utf-8"))))
    rec["loop_lag_ms"].update(lag)
    rec["stalls"].update(stalls)
    return path, rec


def _run() -> list[tuple[Path, dict[str, Any]]]:
    blocked = _record("c_holds_gil-200ms-inline-pi0.5-pt0.5-r0.json",
                      {"p50": 3.1, "p90": None, "p99": None, "p999": None, "max": 7.0, "samples": 2,
                       "withheld": ["p90", "p99", "p999"]},
                      {"count": 2, "max_ms": 3500.0, "total_ms": 3980.0, "stalled_share": 0.995,
                       "primary": True})
    free = _record("c_holds_gil-200ms-thread-pi0.5-pt0.5-r0.json",
                   {"p50": 0.1, "p90": 0.4, "p99": 1.2, "p999": 2.0, "max": 3.0, "samples": 3900,
                    "withheld": []},
                   {"count": 0, "max_ms": 0.0, "total_ms": 0.0, "stalled_share": 0.0, "primary": False})
    return [blocked, free]


def test_the_table_column_is_the_loop_delay() -> None:
    df = tidy.frame(_run())
    by_strategy = dict(zip(df["strategy"], df["loop_delay_ms"]))
    assert by_strategy["inline"] >= 3500.0
    assert by_strategy["thread"] == pytest.approx(1.2)
    assert metrics.in_table()[0].column == "loop_delay_ms"
    # The p99 column does not show the thin probe's 7 ms as the cell's value either.
    cells = cellmod.aggregate(df)
    row = cells[cells["strategy"] == "inline"].iloc[0].to_dict()
    assert tables._value(row, "lag_p99_ms", str) == "stall 3500.0"


def test_a_thin_probe_max_is_shown_only_where_no_stall_was_longer() -> None:
    row = {"lag_p99_ms": math.nan, "lag_max_ms": 40.0, "lag_samples": 12.0}
    # No stall (the watchdog saw nothing longer): the probe's maximum, with its sample count.
    assert tables._value({**row, "stall_max_ms": 0.0}, "lag_p99_ms", str) == "40.0 (max of 12)"
    # A longer stall: the stall, never the thin probe's maximum.
    assert tables._value({**row, "stall_max_ms": 41.0}, "lag_p99_ms", str) == "stall 41.0"


def test_a_blocked_cell_is_drawn_above_the_keepalive_budget(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    df = tidy.frame(_run())
    cells = cellmod.aggregate(df)
    drawn: list[Any] = []
    monkeypatch.setattr(fig_strips.plotting, "save", lambda fig, *a, **k: drawn.append(fig) or [])
    spec = fig_strips.loop_spec()
    fig_strips.draw(df, cells, [], tmp_path, spec, "test")
    assert len(drawn) == 1
    ax = drawn[0].axes[0]
    budget = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert budget == [500.0]  # ping_timeout 0.5 s

    def marks(strategy_index: int) -> list[tuple[str, float]]:
        # The repeat marks of one strategy's column: (marker, y) of every point drawn there.
        out = []
        for line in ax.get_lines():
            if line.get_linestyle() not in ("None", "none", "") or line.get_marker() in ("None", "none", ""):
                continue
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                if abs(float(x) - strategy_index) < 0.5:
                    out.append((str(line.get_marker()), float(y)))
        return out

    inline = marks(0)
    assert inline and all(y >= 3500.0 > budget[0] for _, y in inline)
    assert {m for m, _ in inline} == {"s"}  # the watchdog's stall, as a square
    thread = marks(1)
    assert thread == [("o", pytest.approx(1.2))]  # the probe's p99, as a dot, under the budget
    assert fig_strips.drawn_values(df, spec) == {
        row["cell"]: [row["loop_delay_ms"]] for row in cells.to_dict("records")}
