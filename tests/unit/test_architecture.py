"""The package's layers hold: the import-linter contracts in ``pyproject.toml``
(layers, no cycles, independent commands), and no module imports another
package's private names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "wsblock"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _owner(module: str) -> str:
    """The package a module belongs to (the module itself when it is a package)."""
    as_dir = ROOT.joinpath(*module.split("."))
    return module if as_dir.is_dir() else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    """Where ``path`` imports a private name of another package (``from a.b import _x``),
    or reaches one through a module it imported (``b._x``)."""
    package = _package_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> the wsblock module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, package)
            if not source.startswith("wsblock"):
                continue
            for alias in node.names:
                if _private(alias.name) and _owner(source) != package:
                    found.append(f"{_module_name(path)}:{node.lineno} imports {source}.{alias.name}")
                modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wsblock") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _private(node.attr)
                and _owner(modules[node.value.id]) != package):
            found.append(f"{_module_name(path)}:{node.lineno} uses {modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another_package() -> None:
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in private_uses(path)]
    assert found == []


def test_the_private_name_check_finds_an_import_and_an_attribute(tmp_path: Path) -> None:
    probe = PACKAGE / "report" / "_private_name_probe.py"
    probe.write_text("from wsblock.commands.options import _hidden\n"
                     "from wsblock import cli\n"
                     "from wsblock.report import _own\n"
                     "cli._Parser\n", encoding="utf-8")
    try:
        found = private_uses(probe)
    finally:
        probe.unlink()
    # Another package's helper, imported and reached through its module; the
    # report package's own private name is its business.
    assert [f.split(" ", 1)[1] for f in found] == ["imports wsblock.commands.options._hidden",
                                                  "uses wsblock.cli._Parser"]


def test_the_layer_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: python3 dev.py setup installs import-linter")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
