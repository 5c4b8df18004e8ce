"""Where the module of a user's function comes from, decided before it is imported.

A function named ``module:function`` in a cell, matrix or record file, or on
the command line, is code that the file makes the harness run. Two rules keep
such a name from running more than the code the user wrote or installed:

* **No standard library.** A module of the standard library or a built-in
  one (``os``, ``shutil``, ``subprocess``, ``builtins``) is refused, by its
  name and by where its file lives, before it is imported; so is a function
  reached through it (``mypkg:os.unlink``). :func:`allow_stdlib` lifts the
  rule for this process and the processes it starts.
* **The user's module by its path.** A module that is not installed is
  loaded from its file in the function directory (the current directory, or
  the one this process was started for), and only that module: the
  directory never goes on ``sys.path``, so a ``numexpr.py`` lying there
  cannot stand in for a module the harness or a library imports.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import site
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

ALLOW_ENV = "WSBLOCK_ALLOW_STDLIB_FUNCTIONS"
"""Set to ``1``: functions of the standard library are allowed (inherited by child processes)."""

DIR_ENV = "WSBLOCK_FUNCTION_DIR"
"""The directory users' modules are loaded from, for processes started by the harness."""

ALLOW_OPTION = "--allow-stdlib-functions"
"""The command-line option that allows functions of the standard library."""

_why_allowed: str | None = None
"""What allowed the standard library in this process (its warnings name it)."""
_warned: set[str] = set()


class Refused(ValueError):
    """A function the harness will not import or call; the message says why."""


def allow_stdlib(because: str | None) -> None:
    """Allow (or, with ``None``, refuse again) functions of the standard library.

    Child processes inherit the choice through :data:`ALLOW_ENV`; only this
    process warns, once per function.

    Args:
        because: What allowed it, as the warnings will say
            (``--allow-stdlib-functions``), or ``None``.
    """
    global _why_allowed
    _why_allowed = because
    if because is None:
        os.environ.pop(ALLOW_ENV, None)
    else:
        os.environ[ALLOW_ENV] = "1"


def stdlib_allowed() -> bool:
    """Whether functions of the standard library may run in this process."""
    return os.environ.get(ALLOW_ENV) == "1"


def function_dir() -> Path:
    """The directory a user's module not installed in the environment is loaded from."""
    return Path(os.environ.get(DIR_ENV) or os.getcwd())


@functools.cache
def _stdlib_dirs() -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    # The interpreter's own library directories, and (inside them, in a
    # system or virtual environment) the directories of installed packages.
    bases = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix,
             "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix}
    stdlib = set()
    for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=bases)):
        for key in ("stdlib", "platstdlib"):
            if paths.get(key):
                stdlib.add(Path(paths[key]).resolve())
    sites = {Path(p).resolve() for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                                         site.getusersitepackages(), *site.getsitepackages()) if p}
    return tuple(stdlib), tuple(sites)


def _in_stdlib_dir(origin: str | None) -> bool:
    if origin in ("built-in", "frozen"):
        return True
    if not origin:
        return False
    path = Path(origin).resolve()
    stdlib, sites = _stdlib_dirs()
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    if any(path.is_relative_to(d) for d in sites):
        return False
    return any(path.is_relative_to(d) for d in stdlib)


def is_stdlib(module_name: str, origin: str | None = None) -> bool:
    """Whether a module belongs to the standard library (or is built in).

    Args:
        module_name: A module's dotted name; its top-level package decides.
        origin: Where the module's file lives, if known (``built-in`` and
            ``frozen`` count as the standard library).
    """
    top = module_name.partition(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or _in_stdlib_dir(origin)


def _refuse(spec: str, what: str) -> None:
    """Refuse ``spec`` for coming from the standard library, unless allowed (then warn once)."""
    if not stdlib_allowed():
        raise Refused(f"{spec}: {what} is part of the standard library, and a workload named in a file or on "
                      f"the command line is refused from it and from builtins ({ALLOW_OPTION} runs it anyway)")
    if _why_allowed is not None and spec not in _warned:
        _warned.add(spec)
        print(f"warning: {spec}: {what} is part of the standard library; allowed by {_why_allowed}",
              file=sys.stderr, flush=True)


def _top_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of an installed top-level module, found without running any of its code."""
    module = sys.modules.get(top)
    if module is not None:
        return getattr(module, "__spec__", None)
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _local_file(top: str) -> tuple[Path, bool] | None:
    """``(file, is_package)`` of ``top`` in the function directory, or ``None``."""
    here = function_dir()
    if (here / top / "__init__.py").is_file():
        return here / top / "__init__.py", True
    if (here / f"{top}.py").is_file():
        return here / f"{top}.py", False
    return None


def check_module(spec: str, module_name: str) -> None:
    """Refuse the module of ``spec`` if it belongs to the standard library, before it is imported.

    Raises:
        Refused: Unless :func:`allow_stdlib` allowed it (then a warning).
    """
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        _refuse(spec, f"module {module_name}")
        return
    found = _top_spec(top)
    if found is not None and _in_stdlib_dir(found.origin):
        _refuse(spec, f"module {module_name} ({found.origin})")


def check_object(spec: str, obj: Any) -> None:
    """Refuse a function (or a module on the way to it) that belongs to the standard library.

    ``mypkg:os.unlink`` reaches ``os.unlink`` through a module that imports
    ``os``; an alias ``unlink = os.unlink`` in the user's module is the same
    function. Partials and wrappers are looked through.

    Raises:
        Refused: Unless :func:`allow_stdlib` allowed it (then a warning).
    """
    if isinstance(obj, ModuleType):
        origin = getattr(getattr(obj, "__spec__", None), "origin", None)
        if is_stdlib(obj.__name__, origin):
            _refuse(spec, f"module {obj.__name__}")
        return
    while isinstance(obj, functools.partial):
        obj = obj.func
    try:
        obj = inspect.unwrap(obj)
    except ValueError:
        pass  # a cycle of __wrapped__: judged as it is
    module = getattr(obj, "__module__", None)
    if module is None and getattr(obj, "__self__", None) is not None:
        module = type(obj.__self__).__module__  # a method of a built-in object, such as {}.clear
    if isinstance(module, str) and is_stdlib(module):
        _refuse(spec, f"{getattr(obj, '__qualname__', type(obj).__qualname__)} (module {module})")


def import_module(module_name: str) -> ModuleType:
    """Import a user's module: installed in the environment, or else from its file in :func:`function_dir`.

    A module loaded from its file is registered in ``sys.modules`` under
    its name (process pools find it there); a package's submodules are
    found inside its own directory only.

    Raises:
        ModuleNotFoundError: Neither installed nor in the function directory.
        Exception: Whatever the module raises when imported.
    """
    if module_name in sys.modules:
        return sys.modules[module_name]
    top = module_name.partition(".")[0]
    if top not in sys.modules and _top_spec(top) is None:
        local = _local_file(top)
        if local is None:
            raise ModuleNotFoundError(f"No module named {top!r} (installed, or as {top}.py or {top}/__init__.py "
                                      f"in {function_dir()})", name=top)
        path, package = local
        found = importlib.util.spec_from_file_location(
            top, path, submodule_search_locations=[str(path.parent)] if package else None)
        if found is None or found.loader is None:
            raise ModuleNotFoundError(f"No module named {top!r} (cannot load {path})", name=top)
        module = importlib.util.module_from_spec(found)
        sys.modules[top] = module
        try:
            found.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(top, None)
            raise
    return importlib.import_module(module_name)


def source_file(module_name: str) -> Path | None:
    """The source file of a user's module, found without importing it or its packages.

    Returns:
        The ``.py`` file, or ``None`` (not found, or not Python source).
    """
    top, _, rest = module_name.partition(".")
    found = _top_spec(top)
    if found is None:
        local = _local_file(top)
        if local is None:
            return None
        path, package = local
        found = importlib.util.spec_from_file_location(
            top, path, submodule_search_locations=[str(path.parent)] if package else None)
    for part in rest.split(".") if rest else []:
        if found is None or not found.submodule_search_locations:
            return None
        found = importlib.machinery.PathFinder.find_spec(f"{found.name}.{part}",
                                                         list(found.submodule_search_locations))
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return None
    return Path(found.origin)
