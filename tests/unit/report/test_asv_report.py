"""``wsblock report --asv`` draws figures from stored asv results and compares runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli

ASV_RESULTS = FIXTURES / "asv_results"


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 5000


@pytest.mark.e2e
def test_report_from_asv_results(tmp_path) -> None:
    out = tmp_path / "asv-report"
    proc = run_cli("report", "--asv", str(ASV_RESULTS), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    # The stored results hold one commit in two environments (websockets 13.0 and 17.4).
    assert [p.name.split("-websockets-")[1] for p in runs] == ["13.0-on-vm", "17.4-on-vm"]
    text = (out / "asv-report.md").read_text()
    for run in runs:
        for stem in ("disconnect_map", "echo_p99"):
            assert _is_png(run / f"{stem}.png") and (run / f"{stem}.svg").stat().st_size > 0
        # The stored results predate the loop delay: no loop figure, rather than the probe's p99 alone.
        assert not (run / "loop_delay.png").exists() and not (run / "loop_lag_p99.png").exists()
        # The stored results hold one work size: no boundary to draw, and the report says why.
        assert not (run / "survival_boundary.png").exists()
    assert text.count("No survival-boundary figure: the run has one work size (1500 ms)") == 2
    assert text.count("No loop figure: these results predate `loop_delay_ms`") == 2
    assert _is_png(out / "compare_websockets_version.png")
    assert "## Comparison by websockets_version: 17.4 against 13.0" in text
    assert text.count("pure_python 1500 ms x inline") == 4  # one row per metric


def test_asv_report_rejects_a_missing_directory(run_main, tmp_path) -> None:
    proc = run_main("report", "--asv", str(tmp_path / "nope"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: no such directory")


@pytest.mark.e2e
def test_asv_report_draws_the_loop_delay_when_the_results_track_it(tmp_path) -> None:
    # The stored results with a loop-delay benchmark added (test input, not a measurement):
    # the report then draws the loop figure from it.
    results = tmp_path / "asv_results"
    shutil.copytree(ASV_RESULTS, results)
    old, new = ("bench_responsiveness.Responsiveness.track_loop_lag_p99",
                "bench_responsiveness.Responsiveness.track_loop_delay")
    benchmarks = json.loads((results / "benchmarks.json").read_text())
    benchmarks[new] = {**benchmarks[old], "name": new}
    (results / "benchmarks.json").write_text(json.dumps(benchmarks))
    for path in (results / "vm").glob("*websockets*.json"):
        data = json.loads(path.read_text())
        entry = list(data["results"][old])
        # Cells in params order: (pure_python, blocking_io) x (inline, thread).
        entry[0] = [3500.0, 150.0, 3000.0, 1.6]
        data["results"][new] = entry
        path.write_text(json.dumps(data))
    out = tmp_path / "asv-report"
    proc = run_cli("report", "--asv", str(results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for run in sorted(p for p in out.iterdir() if p.is_dir()):
        assert _is_png(run / "loop_delay.png")
    assert "No loop figure" not in (out / "asv-report.md").read_text()
