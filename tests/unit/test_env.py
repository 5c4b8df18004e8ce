"""``wsblock env`` prints the environment a record of this machine carries."""

from __future__ import annotations

import json
import os
import platform

import pytest

from wsblock import cli


def test_env_json_is_the_records_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--json"]) == 0
    environment = json.loads(capsys.readouterr().out)
    assert environment["python"]["version"] == platform.python_version()
    assert environment["cpu"]["count"] == os.cpu_count()
    assert set(environment) >= {"platform", "memory_gib", "switch_interval_s", "packages", "git"}


def test_env_in_words_names_the_cores_the_interpreter_and_the_commit(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"cores: {os.cpu_count()} " in out
    assert f"python: {platform.python_implementation()} {platform.python_version()}" in out
    assert "wsblock commit: " in out and "websockets " in out


def test_env_refuses_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
