"""Figure footers: what a pasted PNG says about where it came from (no cells run)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tests.helpers import FIXTURES
from wsblock.analysis import tidy  # noqa: E402
from wsblock.report.provenance import Provenance, stamp  # noqa: E402

RUN_A = FIXTURES / "run_a"


def test_provenance_of_a_run_names_every_fact() -> None:
    loaded = tidy.load_records(RUN_A)
    p = Provenance.of_run(RUN_A, loaded.manifest, [r for _, r in loaded.records])
    text = p.text()
    assert p.run == "run_a" and p.repeats in ("1", "1 to 2", "2", "1 to 3")
    assert "1 repeats/cell" not in text
    commit = loaded.manifest["environment"]["git"]["commit"][:12]
    for fact in ("run run_a", "repeats/cell", f"wsblock {commit}", "AMD EPYC, 2 cores",
                 "Python 3.", "websockets 17.4", "2026-11-27 UTC"):
        assert fact in text, (fact, text)


def test_records_without_a_manifest_still_give_a_footer() -> None:
    loaded = tidy.load_records(RUN_A)
    records = [r for _, r in loaded.records]
    p = Provenance.of_run(RUN_A, None, records)
    assert p.source == "single cells" and "AMD EPYC" in p.machine and p.date.endswith("UTC")


def test_footer_stays_clear_of_the_legend_and_axes(tmp_path: Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(4, 5), layout="constrained")
    for ax in axes:
        ax.plot([1, 2, 3], label="a line")
    fig.supxlabel("an x label")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center")
    height = fig.get_size_inches()[1]
    stamp(fig, "run x · profile smoke · a long footer " + "word " * 40)
    fig.savefig(tmp_path / "f.png")
    renderer = fig.canvas.get_renderer()
    footer = fig.texts[-1].get_window_extent(renderer)
    assert fig.get_size_inches()[1] > height
    for artist in [*fig.legends, *axes, fig._supxlabel]:
        box = artist.get_window_extent(renderer)
        assert box.y0 >= footer.y1 - 1, artist
    # The footer lies wholly inside the saved figure (not cut at its bottom or sides).
    width, height = fig.get_size_inches() * fig.dpi
    assert 0 <= footer.y0 < footer.y1 <= height and 0 <= footer.x0 < footer.x1 <= width
    plt.close(fig)
