"""The workload catalogue.

Every module in this package that defines a module-level ``WORKLOAD`` (an
instance of :class:`workloads.base.Workload`) is registered under its
``name``. Adding a workload means adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from workloads.base import Job, JobTiming, ParamSpec, Workload, execute

__all__ = ["Job", "JobTiming", "ParamSpec", "Workload", "execute", "get", "names", "all_workloads"]

_REGISTRY: dict[str, Workload] = {}
_LOCK = threading.Lock()


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
    if name not in registry:
        raise KeyError(name)
    return registry[name]
