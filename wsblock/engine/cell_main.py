"""One cell in a process of its own: ``wsblock run``'s work, and a matrix's cell process.

``wsblock run`` measures a cell through :func:`run`. A matrix starts each
cell as ``python -m wsblock.engine.cell_main --cell FILE --out FILE
[--standby] [--events]`` (:mod:`wsblock.matrix.cellproc`), which runs the
same :func:`run`:

* ``--standby``: the process starts its server and load interpreters ahead
  (:mod:`wsblock.engine.ahead`), reads its cell, and waits for ``go`` on
  stdin before it runs anything; end of input makes it exit without
  running.
* ``--events``: it says ``{"event": "measured"}`` on the events pipe the
  matrix gave it once the cell's measurements are in hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from wsblock.errors import CellFailed, HarnessError, UsageError


def read_cell(path: str) -> Any:
    """The cell a JSON file holds (a cell, or a record whose ``params`` are one).

    Raises:
        UsageError: The file cannot be read, or holds no cell.
    """
    from wsblock import inputs
    from wsblock.engine.config import CellConfig

    data = inputs.read_json(path, "cell file")
    if not isinstance(data, dict):
        raise UsageError(f"cell file {path} must hold a JSON object")
    data = data.get("params", data)
    return CellConfig.from_dict(data)


def run(cell_of: Callable[[], Any], out_text: str | None, *, progress: Callable[[str], None],
        as_json: bool = False, standby: bool = False, events: bool = False) -> int:
    """Measure one cell, write its record to ``out_text`` (atomically) and print its summary.

    Args:
        cell_of: Reads the cell (called after the output path is checked).
        out_text: Where the record goes, or ``None``.
        progress: Receives progress messages.
        as_json: Print the record instead of the summary.
        standby: Start the server and load interpreters ahead and wait for
            ``go`` on stdin before measuring.
        events: Say on the events pipe when the measurements are in hand.

    Returns:
        0; 1 when the cell measured nothing (a failed record says why).
    """
    from wsblock import atomic, paths
    from wsblock.engine.ahead import discard_ahead, start_ahead

    if standby:
        # Its server and load interpreters start first, beside this
        # process's imports, and wait (idle, no socket, no pool) for their
        # configs.
        start_ahead()
    from wsblock.engine.runner import run_cell
    from wsblock.engine.summary import summarize

    try:
        out = _check_out(out_text) if out_text is not None else None
        cell = cell_of()
        if standby and sys.stdin.readline().strip() != "go":
            return 0  # never given its turn: nothing was configured, nothing measured
        paths.clean_stale()

        def measured() -> None:
            # On the events pipe a matrix gave this process (stdout otherwise).
            from wsblock.engine.proc import emit

            emit({"event": "measured"})

        try:
            rec = run_cell(cell, progress=progress, on_measured=measured if events else None)
        except CellFailed as exc:
            # The work failed the cell (a job raised, exited or hung): a
            # failed record says why, with what the work wrote.
            from wsblock.engine import meta
            from wsblock.schema import record

            rec = record.failed(params=cell.to_dict(), error=str(exc), exit_code=1, stderr_tail=[],
                                meta=meta.environment())
            rec["user_output"] = exc.user_output
    finally:
        discard_ahead()
    if out is not None:
        try:
            atomic.write_json(out, rec)
        except OSError as exc:
            raise HarnessError(f"the cell ran but its record could not be written to {out}: {exc}") from None
    if as_json:
        print(json.dumps(rec, indent=2))
    else:
        print(summarize(rec))
        if out is not None:
            print(f"record: {out}")
    if rec.get("status") == "failed":
        print(f"error: the cell measured nothing: {rec.get('error')}", file=sys.stderr)
        return 1
    return 0


def _check_out(text: str) -> Path:
    from wsblock import inputs

    return inputs.check_out_file(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m wsblock.engine.cell_main",
                     description="Measure one cell of a matrix and write its record.")
    parser.add_argument("--cell", metavar="FILE.json", required=True, help="the cell (a record's 'params')")
    parser.add_argument("--out", metavar="FILE.json", required=True, help="write the record here (atomically)")
    parser.add_argument("--standby", action="store_true",
                        help="start ahead: wait for 'go' on stdin before measuring (end of input: exit)")
    parser.add_argument("--events", action="store_true",
                        help="say on the events pipe when the measurements are in hand")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one cell as a matrix's cell process; return the exit code (as ``wsblock run``'s)."""

    def work() -> int:
        from wsblock import inputs
        from wsblock.engine.entry import contain_user_functions

        args = _parser().parse_args(argv)
        inputs.check_file(args.cell, "cell file", inputs.MAX_JSON_BYTES)
        contain_user_functions(None)
        return run(lambda: read_cell(args.cell), args.out, progress=lambda _: None, standby=args.standby,
                   events=args.events)

    from wsblock.engine.entry import run_main

    # Started as a process, it runs under a guardian, as `wsblock run` does.
    return run_main(work, guard_argv=["run"] if argv is None else None)


if __name__ == "__main__":
    raise SystemExit(main())
