"""A matrix run's progress, shown as cells finish: a bar on a terminal, one line per cell elsewhere."""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from wsblock.matrix.spec import PlannedCell


LABEL_WIDTH = 24
"""Width of the running cell's label on the progress bar."""


def short_label(planned: PlannedCell, width: int = LABEL_WIDTH) -> str:
    """A label for the progress bar: strategy, workload and repeat, at most ``width`` characters.

    The full cell id (40 to 50 characters) would push the counts and the time
    left off an 80-column line; the id is in the per-cell lines and records.
    """
    c = planned.cell
    text = f"{c.strategy} {c.workload} r{planned.repeat}"
    return text if len(text) <= width else text[:width - 1] + "…"


class Progress:
    """Shows a matrix run's progress on a stream.

    On a terminal: one bar, redrawn in place, with a short label of the cell
    running, the cells done out of all planned, the failures and one
    estimate of the time left. Anywhere else (a pipe, a log file, CI): one
    line per finished cell, nothing redrawn.

    Args:
        total: Cells in the matrix, repeats included.
        done: Cells already recorded before this run.
        per_cell: Estimated seconds of each cell still to run, in order.
        stream: Where to write; ``None`` shows nothing.
        terminal: Draw a bar; default: whether ``stream`` is a terminal.
    """

    def __init__(self, *, total: int, done: int, per_cell: list[float], stream: Any,
                 terminal: bool | None = None) -> None:
        self.total, self.done, self.per_cell = total, done, per_cell
        self.stream = stream
        self.index = self.failed = 0
        self.started = time.monotonic()
        self.cell_started = self.started
        if terminal is None:
            terminal = stream is not None and getattr(stream, "isatty", lambda: False)()
        self.bar = None
        if stream is not None and terminal:
            self.bar = tqdm(total=total, initial=done, file=stream, dynamic_ncols=True,
                            desc="".ljust(LABEL_WIDTH), postfix=self._counts(),
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}")

    def _counts(self) -> str:
        return f"failed {self.failed}, eta {_eta(self.started, self.index, self.per_cell)}"

    def starting(self, planned: PlannedCell) -> None:
        """Say which cell runs now."""
        self.cell_started = time.monotonic()
        if self.bar is not None:
            self.bar.set_description_str(short_label(planned).ljust(LABEL_WIDTH))

    def finished(self, planned: PlannedCell, rec: dict[str, Any]) -> None:
        """Count a finished cell (its record written) and show it."""
        self.index += 1
        self.done += 1
        ok = rec.get("status") == "ok"
        self.failed += not ok
        took = time.monotonic() - self.cell_started
        if self.bar is not None:
            if not ok:
                self.bar.write(f"cell {planned.cell_id} failed: {rec.get('error')}", file=self.stream)
            # The counts first, then the bar moves: both redrawn together.
            self.bar.set_postfix_str(self._counts(), refresh=False)
            self.bar.update(1)
            self.bar.refresh()  # now, whatever tqdm's minimum interval says
        elif self.stream is not None:
            outcome = "ok" if ok else f"failed: {rec.get('error')}"
            left = f", eta {_eta(self.started, self.index, self.per_cell)}" if self.index < len(self.per_cell) else ""
            print(f"wsblock: [{self.done}/{self.total}] {planned.cell_id} {outcome} ({took:.0f} s); "
                  f"failed {self.failed}{left}", file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (a terminal's line is kept)."""
        if self.bar is not None:
            if self.index == len(self.per_cell):
                self.bar.set_description_str("done".ljust(LABEL_WIDTH), refresh=False)
            self.bar.set_postfix_str(f"failed {self.failed}", refresh=False)
            self.bar.close()


def _eta(started: float, index: int, per_cell: list[float]) -> str:
    # Before the first cell finishes, estimate from the cells' own lengths;
    # afterwards scale that estimate by how long cells really took.
    remaining = sum(per_cell[index:])
    if index:
        remaining *= (time.monotonic() - started) / sum(per_cell[:index])
    minutes, seconds = divmod(int(remaining), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
