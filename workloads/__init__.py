"""The workload catalogue.

Every module in this package that defines a module-level ``WORKLOAD`` (an
instance of :class:`workloads.base.Workload`) is registered under its
``name``. Adding a workload means adding one module. Installed packages add
theirs through the entry point group ``wsblock.workloads``, and any
function can be named by its import path, ``package.module:function``
(:mod:`workloads.functions`).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import threading
from typing import Iterator

from workloads.base import Job, JobTiming, ParamSpec, Workload, execute
from workloads.functions import FunctionWorkload, WorkloadError, is_spec

__all__ = ["Job", "JobTiming", "ParamSpec", "Workload", "WorkloadError", "execute", "get", "names",
           "all_workloads", "is_user", "lookup", "FunctionWorkload", "outlines"]

_REGISTRY: dict[str, Workload] = {}
_BROKEN: dict[str, str] = {}
_BY_SPEC: dict[str, Workload] = {}
_OUTLINES: dict[str, Workload] = {}
_outlining = 0
"""Inside :func:`outlines`: users' functions are read from their source, not imported."""
_LOCK = threading.RLock()  # a user's module may look workloads up while it is imported


def _load() -> dict[str, Workload]:
    # Pool threads look workloads up concurrently: build the registry once,
    # under a lock, and publish it only when complete.
    if _REGISTRY:
        return _REGISTRY
    with _LOCK:
        if not _REGISTRY:
            found: dict[str, Workload] = {}
            for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
                if info.name.startswith("_") or info.name == "base":
                    continue
                module = importlib.import_module(f"{__name__}.{info.name}")
                workload = getattr(module, "WORKLOAD", None)
                if isinstance(workload, Workload):
                    found[workload.name] = workload
            from workloads.functions import entry_points

            installed, broken = entry_points()
            for name, workload in installed.items():
                if name in found:
                    broken[name] = f"{name}: an installed package registers a built-in workload's name"
                else:
                    found[name] = workload
            _BROKEN.update(broken)
            _REGISTRY.update(found)
    return _REGISTRY


def names() -> list[str]:
    """Return the registered workload names, in catalogue order (``Workload.order``, then name)."""
    return [w.name for w in sorted(_load().values(), key=lambda w: (w.order, w.name))]


def all_workloads() -> list[Workload]:
    """Return every registered workload, in catalogue order."""
    return [_load()[n] for n in names()]


def get(name: str) -> Workload:
    """Look a workload up by name.

    Args:
        name: Registered workload name.

    Returns:
        The workload.

    Raises:
        KeyError: If no workload has that name.
    """
    registry = _load()
    if name in registry:
        return registry[name]
    if is_spec(name):
        try:
            return lookup(name)
        except WorkloadError:
            raise KeyError(name) from None
    raise KeyError(name)


def lookup(name: str) -> Workload:
    """Look a workload up by name, import path or entry point, saying why it fails.

    Args:
        name: A catalogue name, an entry point name, or
            ``package.module:function``.

    Returns:
        The workload (a function's is imported once per process).

    Raises:
        WorkloadError: One line naming the workload and the cause.
    """
    registry = _load()
    if name in registry:
        return registry[name]
    if name in _BROKEN:
        raise WorkloadError(_BROKEN[name])
    if not is_spec(name):
        raise WorkloadError(f"unknown workload {name!r} (choose from {', '.join(names())}, "
                            f"or name a function as package.module:function)")
    with _LOCK:
        if name in _BY_SPEC:
            return _BY_SPEC[name]
        if _outlining:
            if name not in _OUTLINES:
                from workloads.outline import outline

                _OUTLINES[name] = FunctionWorkload(name, outline(name))
            return _OUTLINES[name]
        from workloads.functions import resolve

        _BY_SPEC[name] = FunctionWorkload(name, resolve(name))
    return _BY_SPEC[name]


@contextlib.contextmanager
def outlines() -> Iterator[None]:
    """Look users' functions up by their source alone while inside: no module of theirs is imported.

    For a dry run: a function's signature decides which cells a matrix has,
    and reading it from the ``def`` (:mod:`workloads.outline`) runs none of
    the module's code. Functions imported before are used as they are.
    """
    global _outlining
    with _LOCK:
        _outlining += 1
    try:
        yield
    finally:
        with _LOCK:
            _outlining -= 1


def is_user(name: str) -> bool:
    """Whether ``name`` is a user's function (an import path or an entry point function)."""
    if is_spec(name):
        return True
    return isinstance(_load().get(name), FunctionWorkload)
