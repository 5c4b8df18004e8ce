"""The settings of a cell and the rules between its parameters are declared once.

``CellConfig``, the matrix file's scalar keys, the command line's options and
the checks read :mod:`wsblock.schema.settings`; a rule between parameters is
refused alike by cell validation, a matrix file, a ``--cell`` file and the
command line, with the message it declares. A setting added to the
declaration is checked here without editing this file.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import typing
from pathlib import Path

import pytest

from wsblock import cli
from wsblock.commands import options
from wsblock.engine import config, strategies
from wsblock.engine.config import CellConfig
from wsblock.errors import UsageError
from wsblock.matrix import spec as matrix_spec
from wsblock.schema import axes, settings
from wsblock.schema.axis import AXIS_KEY

BASE = {"workload": "numpy", "work_ms": 10.0, "strategy": "thread"}
BASE_TOML = 'workloads = ["numpy"]\nwork_ms = [10]\nstrategies = ["thread"]\n'
PING_RULE = "ping_timeout has no effect with ping_interval none (no pings are sent)"
CONNECTIONS_RULE = "a cell needs at least one job connection or observer"


# -- one declaration, read everywhere ------------------------------------------


def test_the_config_fields_are_the_declared_axes_and_settings_with_their_types_and_defaults() -> None:
    hints = typing.get_type_hints(CellConfig)
    fields = dataclasses.fields(CellConfig)
    assert [f.name for f in fields if AXIS_KEY in f.metadata] == list(axes.NAMES)
    assert [f.name for f in fields if settings.SETTING_KEY in f.metadata] == list(settings.NAMES)
    assert len(fields) == len(axes.NAMES) + len(settings.NAMES)
    for f in fields:
        declared = f.metadata.get(AXIS_KEY) or f.metadata[settings.SETTING_KEY]
        assert declared is (axes.get(f.name) if AXIS_KEY in f.metadata else settings.get(f.name))
        assert hints[f.name] == declared.kind, f.name
    cell = CellConfig(**BASE)
    for s in settings.SETTINGS:
        assert getattr(cell, s.name) == s.default_value(), s.name
        assert s.unit in ("s", "ms", "count", ""), s.name
        assert s.help and "\n" not in s.help, s.name


def test_the_matrix_scalars_and_the_limits_are_the_declaration() -> None:
    assert matrix_spec.SCALARS == {**{s.name: s.scalar for s in settings.SETTINGS if s.matrix},
                                   "repeats": int, "description": str}
    assert config.LIMITS == {s.name: (s.low, s.high) for s in settings.SETTINGS
                             if s.low is not None and s.high is not None}


@pytest.mark.parametrize("setting", [s for s in settings.SETTINGS if s.matrix], ids=lambda s: s.name)
def test_a_matrix_file_gives_each_declared_setting_to_its_cells(setting: settings.Setting) -> None:
    value = setting.high if setting.high is not None else setting.default_value()
    value = setting.scalar(value)
    matrix = matrix_spec.expand({"workloads": ["numpy"], "work_ms": [10], "strategies": ["thread"],
                                 setting.name: value}, source="test")
    assert {getattr(p.cell, setting.name) for p in matrix.cells} == {value}


@pytest.mark.parametrize("setting", [s for s in settings.SETTINGS if s.low is not None], ids=lambda s: s.name)
def test_each_number_setting_accepts_its_limits_and_refuses_beyond(setting: settings.Setting) -> None:
    assert setting.low is not None and setting.high is not None
    kind = setting.scalar
    for good in (setting.low, setting.high):
        if good == 0 and kind is float and setting.name != "warmup":
            continue  # a positive number: 0 is the bound, not a value
        CellConfig(**BASE, **{setting.name: kind(good)}).validate()
    step = 1 if kind is int else setting.high * 1e-6
    for bad in (setting.high + step, setting.low - step, True, math.nan if kind is float else 1.5):
        with pytest.raises(UsageError, match=setting.name):
            CellConfig(**BASE, **{setting.name: bad}).validate()


def test_the_run_options_are_the_declaration() -> None:
    run = build_run_parser()
    declared = [s for s in settings.SETTINGS if s.cli_option]
    for s in declared:
        action = next(a for a in run._actions if s.cli_option in a.option_strings)
        assert action.dest == s.name
        assert action.help == s.cli_help(), s.name
        assert action.metavar == s.metavar, s.name
        assert action.type is s.from_text, s.name
        assert action.default == s.default_value(), s.name


def test_the_run_options_say_the_declared_rules_in_their_help() -> None:
    run = build_run_parser()
    for axis in axes.AXES:
        notes = settings.notes(axis.name)
        if notes:
            action = next(a for a in run._actions if axis.cli_option in a.option_strings)
            assert action.help.endswith("; ".join(["", *notes]) + ")"), (axis.name, action.help)
    assert settings.notes("ping_timeout") == ["refused with --ping-interval none, where it has no effect"]


def build_run_parser():  # type: ignore[no-untyped-def]
    parser = cli.build_parser()
    return parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]


def test_the_strategy_axis_names_the_engine_strategies() -> None:
    assert list(axes.STRATEGIES) == strategies.names()


def test_the_schema_imports_nothing_of_the_engine() -> None:
    # Every import, at the top or inside a function: the vocabulary must not depend on the engine.
    for path in sorted((Path(settings.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("wsblock.engine") for n in names), (path.name, names)


# -- a rule refused alike everywhere -------------------------------------------


def _refused(make) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError) as caught:
        make()
    return str(caught.value)


def _cell_file(tmp_path: Path, **params: object) -> Path:
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"params": {**BASE, **params}}), encoding="utf-8")
    return path


def _load_cell_file(path: Path) -> CellConfig:
    # What `wsblock run --cell FILE` does before anything runs.
    args = cli.build_parser().parse_args(["run", "--cell", str(path)])
    return options.cell_from_args(args).validate()


def _matrix_file(tmp_path: Path, tail: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(BASE_TOML + tail, encoding="utf-8")
    return path


def test_a_ping_timeout_without_pings_is_refused_by_the_config_a_matrix_and_a_cell_file(tmp_path: Path) -> None:
    assert _refused(lambda: CellConfig(**BASE, ping_interval=None, ping_timeout=5.0).validate()) == PING_RULE
    path = _matrix_file(tmp_path, 'ping_interval = ["none", 1]\nping_timeout = [5]\n')
    assert _refused(lambda: matrix_spec.load_file(path)) == f"matrix {path}: {PING_RULE}"
    cell = _cell_file(tmp_path, ping_interval=None, ping_timeout=5)
    assert _refused(lambda: _load_cell_file(cell)) == PING_RULE


def test_the_command_line_says_the_declared_rule_in_its_options_words(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", *[x for k, v in BASE.items() for x in (f"--{k.replace('_', '-')}", str(v))],
                     "--ping-interval", "none", "--ping-timeout", "5"])
    err = capsys.readouterr().err
    spelled = PING_RULE.replace("ping_timeout", "--ping-timeout").replace("ping_interval", "--ping-interval")
    assert code == 2 and err == f"error: {spelled}\n"
    values = dataclasses.asdict(CellConfig(**BASE, ping_interval=None, ping_timeout=5.0))
    assert settings.refusal(values, ["ping_timeout"], spell=settings.option) == spelled


def test_no_pings_without_a_timeout_or_at_its_default_is_accepted_everywhere(tmp_path: Path) -> None:
    for params in ({"ping_interval": None}, {"ping_interval": None, "ping_timeout": None},
                   {"ping_interval": None, "ping_timeout": 20.0}, {"ping_interval": 1.0, "ping_timeout": 5.0}):
        CellConfig(**BASE, **params).validate()
        # A record of `--ping-interval none` holds the default timeout: its params run again.
        assert _load_cell_file(_cell_file(tmp_path, **params)).ping_interval == params["ping_interval"]
    for tail in ('ping_interval = ["none"]\n', 'ping_interval = ["none"]\nping_timeout = ["none"]\n',
                 'ping_interval = [1]\nping_timeout = [5]\n'):
        assert matrix_spec.load_file(_matrix_file(tmp_path, tail)).cells


def test_a_cell_without_connections_is_refused_alike(tmp_path: Path) -> None:
    assert _refused(lambda: CellConfig(**BASE, job_connections=0, observers=0).validate()) == CONNECTIONS_RULE
    path = _matrix_file(tmp_path, "job_connections = 0\nobservers = 0\n")
    assert _refused(lambda: matrix_spec.load_file(path)) == f"matrix {path}: {CONNECTIONS_RULE}"
    cell = _cell_file(tmp_path, job_connections=0, observers=0)
    assert _refused(lambda: _load_cell_file(cell)) == CONNECTIONS_RULE
    CellConfig(**BASE, job_connections=0, observers=1).validate()
    CellConfig(**BASE, job_connections=1, observers=0).validate()
