"""docs/advise.md's tables of the profile against the thread cells come from the stored records."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT

HERE = ROOT / "results" / "profile-accuracy"
DOC = (ROOT / "docs" / "advise.md").read_text()
SHOWN = ("quiet", "one-busy", "three-busy")


def _table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("profile_accuracy_table", HERE / "table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("predicted, measured, agree", [
    (15.0, 0.0, True),     # both under the threshold
    (20.0, 51.0, False),   # a stall the prediction missed: 2.6 x
    (45.0, 52.0, True),    # within a factor of 2
    (340.0, 218.0, True),
    (340.0, 120.0, False),  # 2.8 x too long
    (200.0, 0.0, False),   # a stall predicted, none measured
])
def test_the_tolerance(predicted: float, measured: float, agree: bool) -> None:
    assert _table().agrees(predicted, measured) is agree


@pytest.mark.parametrize("name", SHOWN)
def test_every_row_in_the_docs_is_recomputed_from_the_records(name: str) -> None:
    body, agreed, total = _table().rows(HERE / name)
    assert total >= 15 and body
    for row in body:
        assert row in DOC, row
    assert f"{agreed} of {total} rounds agree" in " ".join(DOC.split())


def test_the_script_refuses_a_missing_directory(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "table.py"), str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
