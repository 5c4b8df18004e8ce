"""The answer kept: ``advice.json`` and ``advice.md`` in the run directory.

``advice.json`` holds the rule (its text and thresholds), every input, the
function's measured behaviour, each strategy's evidence as the rule read it,
the predictions, the recommendation and the text the run printed, so that
``wsblock advise DIR`` reprints exactly what the run printed without
measuring or judging again. ``advice.md`` is the same answer for people; the
run's ``report.md`` and ``report.html`` open with it.

Objects are written generically (dataclasses field by field, then mappings,
sequences and plain values), so the file keeps up with the rule's classes.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from wsblock import atomic
from wsblock.errors import UsageError
from wsblock.schema.rundir import ADVICE_JSON, ADVICE_MD

KIND = "wsblock-advice"
VERSION = 1


def jsonable(value: Any, *, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value``: dataclasses as objects, non-finite floats as ``None``.

    Unknown objects fall back to their public attributes, then to ``str``.
    """
    if depth > 40:
        return str(value)
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth=depth + 1)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name), depth=depth + 1) for f in dataclasses.fields(value)}
        return out
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, depth=depth + 1) for v in items]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return jsonable(value.item(), depth=depth + 1)
        except (TypeError, ValueError):
            pass
    public = {k: v for k, v in getattr(value, "__dict__", {}).items() if not k.startswith("_")}
    if public:
        return {k: jsonable(v, depth=depth + 1) for k, v in public.items()}
    return str(value)


def properties(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    """The named attributes of ``obj`` that it has (properties of a rule's classes, read once)."""
    out = {}
    for name in names:
        try:
            out[name] = jsonable(getattr(obj, name))
        except Exception:  # noqa: BLE001 - a property of another module's class may raise on odd data
            continue
    return out


def thresholds(*modules: Any) -> dict[str, Any]:
    """The upper-case constants (numbers, strings, tuples) of each module, by ``module.NAME``."""
    out: dict[str, Any] = {}
    for module in modules:
        for name, value in vars(module).items():
            if name.isupper() and not name.startswith("_") and isinstance(value, (int, float, str, tuple)):
                out[f"{module.__name__}.{name}"] = jsonable(value)
    return out


def markdown(advice: Mapping[str, Any]) -> str:
    """``advice.md``: the recommendation first, then what the run printed, word for word."""
    choice = advice.get("recommendation") or {}
    strategy = choice.get("strategy")
    head = (f"## Recommendation: {strategy}" if strategy else
            f"## Recommendation: none (closest: {choice.get('closest') or 'none'})")
    fast = advice.get("fast")
    if isinstance(fast, Mapping):
        # Never to be mistaken for the full matrix's answer.
        cells = fast.get("confirmed_cells")
        head += f" (`--fast`: a prediction + {cells} confirmed cell{'' if cells == 1 else 's'})"
    lines = [head, ""]
    summary = advice.get("summary") or []
    lines += [f"- {s}" for s in summary]
    if summary:
        lines.append("")
    command = f"wsblock advise {advice.get('target', '')}" + (" --fast" if isinstance(fast, Mapping) else "")
    lines.append(f"What `{command}` printed (reprinted by "
                 f"`wsblock advise DIR`; every input and figure in `{ADVICE_JSON}` of the run directory):")
    lines += ["", "```text", advice.get("printed", "").rstrip("\n"), "```", ""]
    mode = (advice.get("inputs") or {}).get("mode")
    if mode == "stall pattern":
        lines += ["In the run's report, the verdicts read each cell's records alone: its windows measured the "
                  "loop's stall pattern and were too short to show survival at these settings, so they say "
                  "`inconclusive` where the answer above predicts connections kept from the stalls.", ""]
    return "\n".join(lines)


def write(directory: Path, advice: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``advice.json`` and ``advice.md`` into ``directory`` atomically; return their paths."""
    body = {"kind": KIND, "version": VERSION, **jsonable(advice)}
    data = json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    path_json, path_md = directory / ADVICE_JSON, directory / ADVICE_MD
    atomic.write_text(path_json, data)
    atomic.write_text(path_md, markdown(body))
    return path_json, path_md


def read(directory: Path) -> dict[str, Any] | None:
    """The advice kept in a run directory, or ``None`` when it has none.

    Raises:
        UsageError: If ``advice.json`` exists but cannot be read.
    """
    path = Path(directory) / ADVICE_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("printed"), str):
        raise UsageError(f"not an advice file: {path}")
    return data


__all__ = ["ADVICE_JSON", "ADVICE_MD", "KIND", "VERSION", "jsonable", "markdown", "properties", "read",
           "thresholds", "write"]
