"""Run ``wsblock advise`` and ``wsblock advise --fast`` on the same targets; tabulate what each answered.

Usage, from the repository's root (each run niced, one after another)::

    python results/advise-accuracy/accuracy.py run [--mode full|fast|both] [--only NAME ...]
    python results/advise-accuracy/accuracy.py table

``run`` keeps, per target and mode, the run's ``advice.json`` and
``advice.md`` under ``results/advise-accuracy/<name>/<mode>/`` and its wall
time in ``runs.json`` there (the run directories themselves go to a
temporary directory and are deleted). ``table`` prints the markdown table of
``docs/advise.md`` from what is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEEPALIVE = ["--ping-interval", "1", "--ping-timeout", "1"]

TARGETS: dict[str, list[str]] = {
    "json_parse": ["gil_catalogue:json_parse", "--param", "mb=6"],
    "sha256": ["gil_catalogue:sha256", "--param", "mb=96"],
    "compress": ["gil_catalogue:compress", "--param", "mb=2"],
    "matmul": ["gil_catalogue:matmul", "--param", "n=900"],
    "blocking_read": ["gil_catalogue:blocking_read", "--param", "ms=300"],
    "python_loop": ["gil_catalogue:python_loop", "--param", "n=1500000"],
    "large_result": ["gil_catalogue:large_result", "--param", "rows=200000"],
    "pure_python": ["pure_python", "--work-ms", "300"],
    "numpy": ["numpy", "--work-ms", "300"],
    "blocking_io": ["blocking_io", "--work-ms", "300"],
    "pandas": ["pandas", "--work-ms", "300"],
    "c_holds_gil": ["c_holds_gil", "--work-ms", "300"],
}
"""Each target's name in the table and its arguments (catalogue functions run from ``examples/``)."""


def _wsblock() -> str:
    venv = ROOT / ".venv" / "bin" / "wsblock"
    return str(venv) if venv.exists() else "wsblock"


def _load() -> float:
    return os.getloadavg()[0]


def run_one(name: str, mode: str) -> dict[str, object]:
    """Run one advise (``full`` or ``fast``), keep its advice files, return what to record."""
    args = TARGETS[name]
    keep = HERE / name / mode
    with tempfile.TemporaryDirectory(prefix=f"accuracy-{name}-") as tmp:
        out = Path(tmp) / "run"
        command = ["nice", "-n", "5", _wsblock(), "advise", *args, *KEEPALIVE, "--quiet", "--out", str(out)]
        command += ["--fast"] if mode == "fast" else []
        cwd = ROOT / "examples" if args[0].startswith("gil_catalogue:") else ROOT
        load = _load()
        began = time.monotonic()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        took = time.monotonic() - began
        keep.mkdir(parents=True, exist_ok=True)
        for file in ("advice.json", "advice.md"):
            if (out / file).exists():
                shutil.copyfile(out / file, keep / file)
    (keep / "stderr.txt").write_text(done.stderr[-4000:], encoding="utf-8")
    shown = ["wsblock", "advise", *args, *KEEPALIVE, "--quiet", "--out", "RUNDIR"] + (["--fast"] if mode == "fast"
                                                                                      else [])
    record = {"target": name, "mode": mode, "command": " ".join(shown), "cwd": str(cwd.relative_to(ROOT)),
              "exit": done.returncode, "wall_s": round(took, 1), "load_before": round(load, 2),
              "load_after": round(_load(), 2), "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (keep / "run.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def _answer(name: str, mode: str) -> tuple[str | None, str, dict[str, object] | None]:
    """``(strategy, answer in words, run.json)`` of one kept run; the strategy is ``None`` for "none"."""
    keep = HERE / name / mode
    try:
        run = json.loads((keep / "run.json").read_text(encoding="utf-8"))
    except OSError:
        return None, "not run", None
    try:
        advice = json.loads((keep / "advice.json").read_text(encoding="utf-8"))
    except OSError:
        return None, f"no answer (exit {run['exit']})", run
    choice = advice.get("recommendation") or {}
    strategy = choice.get("strategy")
    words = strategy if strategy else f"none (closest {choice.get('closest')})"
    fast = advice.get("fast") or {}
    if fast:
        words += f", {fast['confirmed_cells']} cells"
        diffs = [d["text"] for d in fast.get("disagreements") or []]
        fell = any(str(line).startswith("falling back") for line in fast.get("fallback") or [])
        run = {**run, "disagreements": diffs, "fallback": fell}
    return strategy, words, run


def _diffs(run: dict[str, object]) -> str:
    diffs = list(run.get("disagreements") or [])
    said = "agree" if not diffs else "; ".join(str(d) for d in diffs)
    return said + ("; fell back to a second round" if run.get("fallback") else "")


def table() -> str:
    """The markdown table: per target, both answers, same or not, both times and their ratio."""
    earlier = any((HERE / name / "full-earlier").is_dir() for name in TARGETS)
    head = "| target | full `advise` | " + ("full, earlier run | " if earlier else "") + \
        "`--fast` | same | full s | fast s | fast / full | load | prediction against its cells |"
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    same = quarter = both = 0
    loads: list[float] = []
    for name, args in TARGETS.items():
        full, full_words, full_run = _answer(name, "full")
        _, earlier_words, _ = _answer(name, "full-earlier")
        fast, fast_words, fast_run = _answer(name, "fast")
        if full_run is None or fast_run is None:
            continue
        both += 1
        agree = full_words.split(",")[0] != "no answer" and full == fast
        same += agree
        full_s, fast_s = float(full_run["wall_s"]), float(fast_run["wall_s"])
        quarter += fast_s <= full_s / 4
        load = [float(r[k]) for r in (full_run, fast_run) for k in ("load_before", "load_after")]
        loads += load
        given = " ".join(a for a in args[1:] if a != "--param")
        lines.append(f"| `{args[0]}` {given} | {full_words} | " + (f"{earlier_words} | " if earlier else "")
                     + f"{fast_words} | {'yes' if agree else '**no**'} | {full_s:,.0f} | {fast_s:,.0f} | "
                     f"{fast_s / full_s:.2f} | {min(load):.1f}-{max(load):.1f} | {_diffs(fast_run)} |")
    lines.append("")
    lines.append(f"Same recommendation: {same} of {both}; `--fast` in at most a quarter of the full time: "
                 f"{quarter} of {both}" + (f"; load average (1 min) {min(loads):.1f} to {max(loads):.1f}"
                                            if loads else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--mode", choices=("full", "fast", "both"), default="both")
    run.add_argument("--only", nargs="*", choices=sorted(TARGETS), default=None)
    sub.add_parser("table")
    args = parser.parse_args(argv)
    if args.command == "table":
        print(table())
        return 0
    modes = ("full", "fast") if args.mode == "both" else (args.mode,)
    for name in args.only or TARGETS:
        for mode in modes:
            record = run_one(name, mode)
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
