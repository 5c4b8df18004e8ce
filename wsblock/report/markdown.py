"""GitHub-flavoured markdown tables and the number formats the report uses."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

from wsblock.schema.axes import is_none as is_missing
from wsblock.schema.metrics import Metric


_ALWAYS = frozenset("\\`*[]<>|~&")
"""Characters that start markup wherever they stand (links, images, code, emphasis, HTML, entities)."""


def escape(text: Any) -> str:
    """Make text the report did not write (a command, an error, a name) inert markdown.

    Every character that could open markup is backslash-escaped, so
    ``[text](url)`` stays text, never a link, and a backtick cannot end a
    code span; ``_`` is escaped where it could start or end emphasis (not
    inside a word, where it cannot: ``pure_python`` stays as it is). Line
    breaks become spaces: the text stays on its line, in its table cell.
    """
    flat = str(text).replace("\r", " ").replace("\n", " ")
    out = []
    for i, char in enumerate(flat):
        if char in _ALWAYS or (char == "#" and i == 0):
            out.append("\\" + char)
        elif char == "_" and not (0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum()):
            out.append("\\_")
        else:
            out.append(char)
    return "".join(out)


def code(text: Any) -> str:
    """Text the report did not write as an inline code span, whatever backticks it holds.

    The fence is one backtick longer than the longest run inside, padded
    with a space when the text starts or ends with a backtick (CommonMark
    strips that space again); nothing inside a code span is markup.
    """
    flat = str(text).replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith(("`", " ")) or flat.endswith(("`", " ")) else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cell(text: Any) -> str:
    # A table cell holds markdown the report wrote: only a line break or a
    # pipe not escaped yet would break the table.
    return re.sub(r"(?<!\\)\|", r"\\|", str(text).replace("\r", " ").replace("\n", " "))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """Render a GitHub-markdown table.

    Args:
        header: Column titles.
        rows: Cell texts (converted with ``str``).
        align: One letter per column, ``l`` or ``r`` (default: first column
            left, the rest right, as numbers read best right-aligned).

    Returns:
        The table, ending with a newline.
    """
    align = align or ("l" + "r" * (len(header) - 1))
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def number(value: Any, digits: int = 3) -> str:
    """A value with ``digits`` significant figures; ``–`` when missing."""
    if is_missing(value):
        return "–"
    value = float(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def size(value: Any) -> str:
    """A work size in ms as configured: ``50``, ``2,500``, ``12.5``."""
    if is_missing(value):
        return "–"
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,g}"


def ms(value: Any) -> str:
    """Milliseconds, three significant figures (``–`` when nothing was recorded)."""
    return number(value, 3)


def share(value: Any) -> str:
    """A share of connections, 0..1, two decimals; exactly 0 and 1 stay ``0`` and ``1``.

    A share rounding to 0.00 or 1.00 keeps its decimals, so it is never
    mistaken for "none" or "all".
    """
    if is_missing(value):
        return "–"
    value = float(value)
    if value in (0.0, 1.0):
        return f"{value:g}"
    return f"{value:.2f}"


def ratio(a: Any, b: Any) -> str:
    """``b / a`` with two decimals; ``–`` when undefined (missing or a == 0)."""
    if is_missing(a) or is_missing(b) or float(a) == 0:
        return "–"
    return f"{float(b) / float(a):.2f}"


def for_metric(metric: Metric) -> Callable[[Any], str]:
    """The format of a metric's values, from its unit."""
    return {"share": share, "ms": ms}.get(metric.unit, number)


def estimate(value: Any, low: Any, high: Any, n: Any, fmt: Callable[[Any], str] = number) -> str:
    """A median over repeats with its interval and sample size: ``146 [80.1, 292] (n 3)``.

    One repeat has no interval (``12.5 (n 1)``); no value is ``–``.
    """
    if is_missing(value):
        return "–" if is_missing(n) or not n else f"– (n {int(n)})"
    count = 0 if is_missing(n) else int(n)
    if count < 2 or is_missing(low) or is_missing(high):
        return f"{fmt(value)} (n {count})"
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}] (n {count})"


def proportion(k: Any, n: Any, low: Any, high: Any, repeats: Any | None = None) -> str:
    """Connections lost out of connections at risk, with the Wilson interval.

    ``6 of 18 (0.33 [0.16, 0.56])``, plus ``, 3 rep.`` when ``repeats`` is
    given; ``–`` when nothing was at risk.
    """
    if is_missing(n) or not n:
        return "–"
    text = f"{int(k)} of {int(n)} ({share(int(k) / int(n))} [{share(low)}, {share(high)}])"
    if repeats is not None and not is_missing(repeats):
        text += f", {int(repeats)} rep."
    return text


def ratio_value(value: Any) -> str:
    """A ratio already computed: two decimals; ``–`` when undefined."""
    if is_missing(value) or math.isinf(float(value)):
        return "–"
    return f"{float(value):.2f}"
