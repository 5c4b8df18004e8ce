"""The analysis notebook runs top to bottom and draws real figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import FIXTURES, ROOT

NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def test_the_stored_notebook_has_no_outputs_and_matches_its_script() -> None:
    import jupytext

    stored = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code")
    script = jupytext.read(ROOT / "notebooks" / "analysis.py")
    assert [c.source for c in stored.cells] == [c.source for c in script.cells]


@pytest.mark.e2e
def test_notebook_executes_against_a_small_run(tmp_path, monkeypatch) -> None:
    figures = tmp_path / "figures"
    monkeypatch.setenv("WSBLOCK_RUN_DIR", str(FIXTURES / "run_a"))
    monkeypatch.setenv("WSBLOCK_PANDAS_RUN_DIR", str(FIXTURES / "pandas_chunks"))
    monkeypatch.setenv("WSBLOCK_FIGURES_DIR", str(figures))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on any failing cell
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    pngs = sorted(figures.rglob("*.png"))
    names = {p.name for p in pngs}
    assert {"survival_vs_budget.png", "pandas_chunksize.png", "disconnect_map.png"} <= names
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, png
    # Inline images were rendered into the notebook too.
    assert sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})) >= 5


def _setup_cell(monkeypatch, tmp_path, cwd: Path, **env: str) -> dict:
    # Runs the notebook's first code cell (paths and variables) as Jupyter
    # would, from ``cwd``; the plotting cells are left to the test above.
    for name in ("WSBLOCK_RUN_DIR", "WSBLOCK_PANDAS_RUN_DIR", "WSBLOCK_FIGURES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WSBLOCK_FIGURES_DIR", str(tmp_path / "figures"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code")
    namespace: dict = {}
    exec(compile(source, "setup-cell", "exec"), namespace)  # noqa: S102
    return namespace


def test_run_dir_is_read_from_the_repository_root_wherever_jupyter_started(monkeypatch, tmp_path) -> None:
    for cwd in (ROOT, ROOT / "notebooks"):
        ns = _setup_cell(monkeypatch, tmp_path, cwd, WSBLOCK_RUN_DIR="tests/fixtures/run_a")
        assert ns["RUN_DIR"] == FIXTURES / "run_a"
    ns = _setup_cell(monkeypatch, tmp_path, ROOT / "notebooks", WSBLOCK_RUN_DIR=str(FIXTURES / "run_a"))
    assert ns["RUN_DIR"] == FIXTURES / "run_a"


def test_another_run_never_borrows_the_reference_pandas_run(monkeypatch, tmp_path) -> None:
    ns = _setup_cell(monkeypatch, tmp_path, ROOT / "notebooks", WSBLOCK_RUN_DIR="tests/fixtures/run_a")
    assert ns["PANDAS_RUN_DIR"] is None
    ns = _setup_cell(monkeypatch, tmp_path, ROOT / "notebooks", WSBLOCK_RUN_DIR="tests/fixtures/run_a",
                     WSBLOCK_PANDAS_RUN_DIR="tests/fixtures/pandas_chunks")
    assert ns["PANDAS_RUN_DIR"] == FIXTURES / "pandas_chunks"
    if (ROOT / "results" / "reference" / "default").is_dir():
        ns = _setup_cell(monkeypatch, tmp_path, ROOT)
        assert ns["PANDAS_RUN_DIR"] == ROOT / "results" / "reference" / "pandas_chunks"


def test_a_missing_run_dir_is_named_with_where_it_was_looked_for(monkeypatch, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no run directory at .*nope"):
        _setup_cell(monkeypatch, tmp_path, ROOT, WSBLOCK_RUN_DIR="results/nope")
