"""The command line explains itself: --help, a bare ``wsblock``, ``matrix --dry-run``."""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers import FIXTURES
from wsblock.cli import main



class _Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys):  # in-process: the same main() as the command, without an interpreter start
    def run(*args: str) -> _Done:
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            code = main(list(args))
        except SystemExit as exc:  # --help
            code = exc.code
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        out = capsys.readouterr()
        return _Done(code, out.out, out.err)
    return run


def test_help_describes_the_tool_lists_every_command_and_gives_examples(run_cli) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "blocking work" in out and "keepalive" in out
    for command in ("run", "list", "matrix", "calibrate", "findings", "report", "compare"):
        assert any(line.split()[:1] == [command] and len(line.split()) > 1 for line in out.splitlines()), command
    assert "examples:" in out and "wsblock matrix --profile quick --dry-run" in out
    assert "docs/" in out and "README.md" in out


def test_every_command_of_the_file_has_a_description_and_examples(run_cli) -> None:
    for command in ("run", "matrix", "calibrate", "findings"):
        proc = run_cli(command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "examples:" in proc.stdout, command


def test_a_bare_wsblock_prints_usage_and_commands_then_one_error_line_exit_2(run_cli) -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.rstrip("\n").splitlines()
    assert lines[0].startswith("usage: wsblock")
    assert "commands:" in lines and any(line.split()[:1] == ["matrix"] for line in lines)
    assert lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1


def test_dry_run_needs_no_out_and_states_cells_repeats_and_time(run_cli, tmp_path) -> None:
    proc = run_cli("matrix", "--profile", "quick", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    ids = [line for line in proc.stdout.splitlines() if not line.startswith("skipped ")]
    assert len(ids) == len(set(ids)) and all(i.endswith(("-r0", "-r1", "-r2")) for i in ids)
    summary = proc.stderr.strip().splitlines()[-1]
    assert f"{len(ids)} cells ({len(ids) // 3} x 3 repeats), about " in summary and "min" in summary
    assert not list(tmp_path.iterdir())


def test_dry_run_with_out_says_what_is_reused_and_writes_nothing(run_cli, tmp_path) -> None:
    out = tmp_path / "run"
    proc = run_cli("matrix", "--profile", "smoke", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "0 already recorded (reused), 4 to run" in proc.stderr
    assert not out.exists()
    # A good record of a planned cell (a real record, given this cell's
    # parameters) is counted as reused.
    from wsblock.matrix import reuse as matrix_reuse
    from wsblock.matrix import spec as matrix_spec

    planned = matrix_spec.load_profile("smoke").cells[0]
    fixture = next(iter(sorted((FIXTURES / "run_a" / "cells").glob("*.json"))))
    rec = json.loads(fixture.read_text())
    rec["params"] = matrix_reuse.expected_params(planned)
    rec["matrix"] = {"cell_id": planned.cell_id, "repeat": planned.repeat}
    (out / "cells").mkdir(parents=True)
    (out / "cells" / f"{planned.cell_id}.json").write_text(json.dumps(rec))
    proc = run_cli("matrix", "--profile", "smoke", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "1 already recorded (reused), 3 to run" in proc.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["cells", f"{planned.cell_id}.json"]


def test_matrix_without_out_or_dry_run_is_refused_with_exit_2(run_cli, tmp_path) -> None:
    proc = run_cli("matrix", "--profile", "smoke")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "--out" in proc.stderr and "--dry-run" in proc.stderr
