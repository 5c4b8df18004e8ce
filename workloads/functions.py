"""Workloads made from a user's own function.

A function becomes a workload in one of two ways:

* by its import path, ``package.module:function`` (the function may be an
  attribute path, ``module:Class.method``): a module installed in the
  environment or, failing that, the file of that name in the current
  directory (:mod:`workloads.locate`; functions of the standard library are
  refused);
* by an entry point of the group ``wsblock.workloads`` in an installed
  package, whose name becomes the workload's name; the entry point may also
  name a :class:`~workloads.base.Workload` instance, which is then
  catalogued like the built-in ones.

What the function's signature says decides how it runs:

* a parameter named ``units`` (fixed work, like the built-in workloads): the
  function is calibrated on this machine and called with the number of units
  that take the cell's ``work_ms``;
* no ``units``: a *plain* function, called once per job, not calibrated; its
  duration is measured and reported;
* a generator function: each ``yield`` is a step, so it can run ``chunked``;
  any other function is one call that cannot be split.

The other keyword arguments come from the cell's workload parameters.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
from typing import Any, Callable, Generator, Mapping

from workloads import locate
from workloads.base import Job, Workload

ENTRY_POINT_GROUP = "wsblock.workloads"
"""Entry point group through which installed packages register workloads."""

UNITS = "units"
"""The parameter name that makes a function calibrated fixed work."""

MAX_UNITS = 10**15
"""Largest ``units`` a calibrated function is called with."""

_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_TEXT_VALUE = re.compile(r"[\w.,+@=~%-]{0,64}")  # whole text: fullmatch, so no trailing newline


class WorkloadError(ValueError):
    """A user's function cannot be a workload; the message names it and the cause."""


_before_import: Callable[[str], None] | None = None


def check_imports_with(check: Callable[[str], None] | None) -> None:
    """Have ``check(spec)`` run before this process first imports a user's module.

    A command that must survive whatever a module does at import (exit,
    hang, crash) checks it elsewhere first (in a process of its own); the
    check raises :class:`WorkloadError` to refuse the function.
    """
    global _before_import
    _before_import = check


def is_spec(name: Any) -> bool:
    """Whether ``name`` is written as an import path, ``module:function``."""
    return isinstance(name, str) and ":" in name


def slug(name: str) -> str:
    """A workload name as part of a file name: ``pkg.mod:fn`` -> ``pkg.mod+fn``.

    ``+`` never occurs in a Python name, so two specs never share a slug.
    """
    return name.replace(":", "+")


def split(spec: str) -> tuple[str, str]:
    """``(module, attribute path)`` of a spec ``package.module:function``.

    Raises:
        WorkloadError: If the spec is malformed (a trailing newline included).
    """
    if not isinstance(spec, str) or not _SPEC.fullmatch(spec):
        raise WorkloadError(f"{spec}: expected package.module:function")
    module_name, _, attribute = spec.partition(":")
    return module_name, attribute


def resolve(spec: str) -> Callable[..., Any]:
    """Import the function ``module:function``.

    A module of the standard library is refused before it is imported, and
    a function reached through one (or defined in one) before it is
    returned (:mod:`workloads.locate`).

    Raises:
        WorkloadError: On a malformed spec, a refused module or function,
            an import error, a missing attribute, or an object that is not
            callable.
    """
    module_name, attribute = split(spec)
    try:
        locate.check_module(spec, module_name)
    except locate.Refused as exc:
        raise WorkloadError(str(exc)) from None
    if _before_import is not None and module_name not in sys.modules:
        # The module's top-level code runs in a process of its own first, so
        # that an exit, a hang or a crash at import cannot end this one.
        _before_import(spec)
    try:
        obj: Any = locate.import_module(module_name)
    except locate.Refused as exc:
        raise WorkloadError(str(exc)) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any import failure, sys.exit included, is the user's to see
        cause = f"SystemExit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        raise WorkloadError(f"{spec}: cannot import {module_name}: {cause}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise WorkloadError(f"{spec}: {module_name} has no attribute {attribute}") from None
        try:
            locate.check_object(spec, obj)
        except locate.Refused as exc:
            raise WorkloadError(str(exc)) from None
    if not callable(obj):
        raise WorkloadError(f"{spec}: {attribute} is not callable ({type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


def _code_version(function: Callable[..., Any]) -> int:
    # Bytecode and constants: editing the function invalidates its calibration.
    code = getattr(inspect.unwrap(function), "__code__", None)
    if code is None:
        code = getattr(getattr(function, "__call__", None), "__code__", None)
    blob = repr((code.co_code, code.co_consts)).encode() if code is not None else repr(function).encode()
    return int(hashlib.sha256(blob).hexdigest()[:8], 16)


def check_value(name: str, key: str, value: Any) -> Any:
    """Check one parameter value of a user function.

    Values are JSON scalars (they cross to the server and enter records);
    text is short and file-name safe (it enters cell ids).

    Raises:
        WorkloadError: Naming the function and the parameter.
    """
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise WorkloadError(f"{name}: parameter {key} must be finite, got {value!r}")
        return value
    if isinstance(value, str):
        if not _TEXT_VALUE.fullmatch(value):
            raise WorkloadError(f"{name}: parameter {key}: text values may hold up to 64 letters, digits "
                                f"and _.,+@=~%- (they enter file names), got {value!r}")
        return value
    raise WorkloadError(f"{name}: parameter {key} must be a number, true/false or text, got {value!r}")


class FunctionWorkload(Workload):
    """A user's function, seen through the workload interface.

    Args:
        name: The workload's name: its spec, or its entry point name.
        function: The callable.
    """

    calibration_start = 1
    order = 10_000
    gil = "unknown (a user's function)"

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name  # type: ignore[misc]
        self.function = function
        target = inspect.unwrap(function)
        module = getattr(target, "__module__", None) or "?"
        self.qualified_name = f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"
        try:
            self.signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            self.signature = None
        parameters = self.signature.parameters if self.signature is not None else {}
        self.calibrated = UNITS in parameters
        self.generator = inspect.isgeneratorfunction(target) or inspect.isgeneratorfunction(
            getattr(target, "__call__", None))
        if inspect.iscoroutinefunction(target):
            raise WorkloadError(f"{name}: {self.qualified_name} is a coroutine function; "
                                f"the suite measures blocking work (wrap it in a plain function)")
        self.chunkable = self.generator  # type: ignore[misc]
        self.max_units = MAX_UNITS if self.calibrated else 1  # type: ignore[misc]
        self.version = _code_version(function)  # type: ignore[misc]
        self.unit = "units (calibrated)" if self.calibrated else "call"  # type: ignore[misc]
        kind = "generator" if self.generator else "function"
        how = "calibrated by units" if self.calibrated else "called once per job"
        self.description = f"{self.qualified_name}: {kind}, {how}"  # type: ignore[misc]

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Check keyword arguments against the function's signature.

        Raises:
            WorkloadError: On a name the function does not accept, ``units``
                (the calibration sets it), or a value that is not a short
                scalar.
        """
        if not isinstance(given, Mapping):
            raise WorkloadError(f"{self.name}: parameters must be an object")
        parameters = self.signature.parameters if self.signature is not None else {}
        open_ended = self.signature is None or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        resolved = {}
        for key, value in sorted(given.items()):
            if key == UNITS:
                raise WorkloadError(f"{self.name}: units is set by the calibration from work_ms, "
                                    f"not given as a parameter")
            known = parameters.get(key)
            if not open_ended and (known is None or known.kind in (
                    inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)):
                accepted = [n for n, p in parameters.items() if n != UNITS and p.kind in (
                    inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
                raise WorkloadError(f"{self.name}: unknown parameter {key} (accepted: "
                                    f"{', '.join(accepted) or 'none'})")
            resolved[key] = check_value(self.name, key, value)
        if self.signature is not None:
            missing = [n for n, p in parameters.items() if n != UNITS and n not in resolved
                       and p.default is inspect.Parameter.empty
                       and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
            if missing:
                raise WorkloadError(f"{self.name}: missing parameter {', '.join(missing)} "
                                    f"(give it with --param {missing[0]}=VALUE)")
        return resolved

    def steps(self, job: Job) -> Generator[None, None, Any]:
        kwargs = dict(job.params)
        if self.calibrated:
            kwargs[UNITS] = job.units
        result = self.function(**kwargs)
        if self.generator:
            # Each value it yields is a step (the value is not used); its
            # own ``return`` value is its result.
            return (yield from result)
        yield
        return result


def from_entry_point(name: str, obj: Any) -> Workload:
    """The workload an entry point names: a ``Workload`` as it is, a function wrapped.

    Raises:
        WorkloadError: If ``obj`` is neither.
    """
    if isinstance(obj, Workload):
        return obj
    if isinstance(obj, type) and issubclass(obj, Workload):
        return obj()
    if callable(obj):
        return FunctionWorkload(name, obj)
    raise WorkloadError(f"{name}: the entry point names neither a function nor a Workload")


def entry_points() -> tuple[dict[str, Workload], dict[str, str]]:
    """Load the workloads of the entry point group :data:`ENTRY_POINT_GROUP`.

    Returns:
        ``(found, broken)``: workloads by name, and the error of each entry
        point that failed to load (said when that name is asked for, so one
        broken package does not break the catalogue).
    """
    from importlib.metadata import entry_points as installed

    found: dict[str, Workload] = {}
    broken: dict[str, str] = {}
    for point in installed(group=ENTRY_POINT_GROUP):
        try:
            workload = from_entry_point(point.name, point.load())
        except WorkloadError as exc:
            broken[point.name] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a broken package is reported, not fatal
            broken[point.name] = f"{point.name}: cannot load entry point {point.value}: {type(exc).__name__}: {exc}"
            continue
        if workload.name != point.name:
            broken[point.name] = (f"{point.name}: the entry point names a workload called "
                                  f"{workload.name!r}; the names must match")
            continue
        found[point.name] = workload
    return found, broken
