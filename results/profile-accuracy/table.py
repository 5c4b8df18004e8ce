"""The profile's predicted ``thread`` stall against the thread cells' longest stall, per round.

Usage, from the repository's root::

    python3 results/profile-accuracy/table.py results/profile-accuracy/one-busy [...]

For each directory written by ``measure.sh``, prints the markdown rows of
``docs/advise.md`` and how many rounds agree. The profile's prediction is
read as ``wsblock profile`` makes it now: the longer of the GIL hold and the
loop probe's stall where :func:`wsblock.advise.profile.loop_probe_needed`
runs the probe, else the hold (the records here ran the probe for every
call; a figure the profile would not use is shown in brackets), or the time
to free a result where that is longer (the handler frees it on the loop). The
tolerance: the two agree when both are under the stall threshold, or when
the cell's longest stall is within a factor of 2 of the prediction.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from wsblock.advise.profile import loop_probe_needed  # noqa: E402

THRESHOLD_MS = 50.0
FACTOR = 2.0
LABELS = {
    "python_loop": "`gil_catalogue:python_loop` n=1500000",
    "pure_python": "`pure_python` 300 ms",
    "large_result": "`gil_catalogue:large_result` rows=200000",
    "json_parse": "`gil_catalogue:json_parse` mb=6",
    "c_holds_gil": "`c_holds_gil` 300 ms",
    "sha256": "`gil_catalogue:sha256` mb=96",
    "matmul": "`gil_catalogue:matmul` n=900",
    "numpy": "`numpy` 300 ms",
    "blocking_io": "`blocking_io` 300 ms",
}


def agrees(predicted_ms: float, measured_ms: float) -> bool:
    """Both under the stall threshold, or the measured within :data:`FACTOR` of the predicted."""
    if predicted_ms <= THRESHOLD_MS and measured_ms <= THRESHOLD_MS:
        return True
    return predicted_ms > 0 and measured_ms > 0 and 1 / FACTOR <= measured_ms / predicted_ms <= FACTOR


def rows(directory: Path) -> tuple[list[str], int, int]:
    """The table's rows for one directory, and (rounds that agree, rounds)."""
    out, agreed, total = [], 0, 0
    for name, label in LABELS.items():
        cols: dict[str, list[str]] = {k: [] for k in ("p50", "hold", "loop", "pred", "job", "stall")}
        ok = n = 0
        for r in (1, 2, 3):
            prof, cell = directory / f"{name}-r{r}-profile.json", directory / f"{name}-r{r}-cell.json"
            if not (prof.exists() and cell.exists()):
                continue
            p = json.loads(prof.read_text())["profile"]
            c = json.loads(cell.read_text())
            skipped = loop_probe_needed(p["hold_ms"], p["hold_share"], THRESHOLD_MS)
            wait = p["hold_ms"] if skipped else max(p["hold_ms"], p["loop_stall_ms"])
            predicted = max(wait, p["free_max_ms"])  # the handler frees the result on the loop
            stall = c["stalls"]["max_ms"] if c["stalls"]["count"] else 0.0
            cols["p50"].append(f"{p['calls']['p50']:.0f}")
            cols["hold"].append(f"{p['hold_ms']:.0f} ({p['hold_share'] * 100:.0f} %)")
            cols["loop"].append(f"({p['loop_stall_ms']:.0f})" if skipped else f"{p['loop_stall_ms']:.0f}")
            cols["pred"].append(f"{predicted:.0f}")
            cols["job"].append(f"{c['job_ms'].get('completed_p50') or c['job_ms']['max']:.0f}")
            cols["stall"].append(f"{stall:.0f}" if stall > THRESHOLD_MS else "none")
            ok += agrees(predicted, stall)
            n += 1
        if n:
            out.append(f"| {label} | " + " | ".join(", ".join(v) for v in cols.values()) + f" | {ok} of {n} |")
            agreed, total = agreed + ok, total + n
    return out, agreed, total


def loads(directory: Path) -> str:
    """The 1-minute load averages the measurement log read, lowest to highest."""
    log = directory / "measure.log"
    seen = [float(x) for x in re.findall(r"load ([0-9.]+)", log.read_text())] if log.exists() else []
    return f"load average {min(seen):.1f} to {max(seen):.1f}" if seen else "load not logged"


def main(argv: list[str]) -> int:
    """Print each directory's rows and its count of rounds that agree."""
    if not argv:
        print("error: name one or more directories written by measure.sh", file=sys.stderr)
        return 2
    header = ("| target | profile: call p50 | GIL hold (share of the call) | loop stall beside the call | "
              "predicted `thread` stall | thread cell: job p50 | thread cell: longest stall | agree |")
    for arg in argv:
        directory = Path(arg)
        if not directory.is_dir():
            print(f"error: {arg}: not a directory", file=sys.stderr)
            return 2
        body, agreed, total = rows(directory)
        print(f"{directory.name} ({loads(directory)}): {agreed} of {total} rounds agree\n")
        print(header)
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
