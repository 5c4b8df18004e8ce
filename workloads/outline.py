"""A user's function as its source declares it, read without importing its module.

A dry run lists the cells a matrix would run; which cells those are depends
on the function's signature (a ``units`` parameter, the keyword arguments it
accepts, whether it is a generator). Importing the module to learn that would
run its top-level code, so a dry run reads the ``def`` from the module's
source instead and builds an *outline*: a function with the same parameters
and kind whose body does nothing. Defaults, annotations and decorators are
left out (they are expressions of the user's code); only whether a
parameter has a default is kept.
"""

from __future__ import annotations

import ast
from typing import Any, Callable, Iterator

from workloads import locate
from workloads.functions import WorkloadError, split


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    # The function's body without the bodies of functions and classes defined in it.
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _hollow(node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """The same parameters and kind, with constant defaults, no annotations and an empty body."""
    args = node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    args.defaults = [ast.Constant(None) for _ in args.defaults]
    args.kw_defaults = [None if d is None else ast.Constant(None) for d in args.kw_defaults]
    generator = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node))
    body: list[ast.stmt] = [ast.Expr(ast.Yield(None))] if generator else [ast.Pass()]
    kind = type(node)
    hollow = kind(name=node.name, args=args, body=body, decorator_list=[], returns=None, type_comment=None)
    return ast.fix_missing_locations(hollow)


def outline(spec: str) -> Callable[..., Any]:
    """The outline of the function ``module:function``, its module not imported.

    Raises:
        WorkloadError: On a malformed or refused spec, or a function that is
            not a ``def`` at the top level of a Python source file (its
            signature cannot be known without running the module).
    """
    module_name, attribute = split(spec)
    try:
        locate.check_module(spec, module_name)
    except locate.Refused as exc:
        raise WorkloadError(str(exc)) from None
    if locate.is_stdlib(module_name):
        # Allowed (or it would have been refused): the standard library runs no user's code when imported.
        from workloads.functions import resolve

        return resolve(spec)
    path = locate.source_file(module_name)
    unknown = (f"{spec}: a dry run reads the function's def from its module's source without importing it, "
               f"and found no")
    if path is None:
        raise WorkloadError(f"{unknown} Python source of {module_name}; run without --dry-run")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError) as exc:
        raise WorkloadError(f"{spec}: cannot read {path}: {type(exc).__name__}: {exc}") from None
    found = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == attribute]
    if not found:
        raise WorkloadError(f"{unknown} top-level 'def {attribute}' in {path}; run without --dry-run")
    hollow = _hollow(found[-1])  # the last definition is the one the module keeps
    namespace: dict[str, Any] = {}
    # Only the hollow def runs: its defaults are None, it has no decorators or annotations.
    exec(compile(ast.Module(body=[hollow], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    function = namespace[attribute]
    function.__module__ = module_name
    function.__qualname__ = attribute
    return function  # type: ignore[no-any-return]
