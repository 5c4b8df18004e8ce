"""Print ``docs/vocabulary.md``: the declared metrics, axes, settings, rules and caveats as tables.

``python -m wsblock.schema > docs/vocabulary.md``; a test checks that the
stored file is current.
"""

from __future__ import annotations

from wsblock.schema import axes, caveats, metrics, settings


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _kind(kind: object) -> str:
    return kind.__name__ if isinstance(kind, type) else str(kind)


class _Names(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"`{key}`"


def vocabulary() -> str:
    """The documentation of every metric, axis, setting, rule and caveat, in markdown."""
    lines = [
        "# Vocabulary: metrics and axes",
        "",
        "Generated from `wsblock/schema/metrics.py`, `axes.py` and `settings.py` by",
        "`python -m wsblock.schema > docs/vocabulary.md`; do not edit by hand. How to add",
        "a metric or an axis: [`extending.md`](extending.md).",
        "",
        "## Metrics",
        "",
        "One column of the tidy table each (`cells.csv`), read from the record at the path",
        "given ([`record.md`](record.md)). *better*: which way is better (`none`: descriptive).",
        "*repeats*: how the report summarises the repeats of a cell. *asv*: the asv benchmark",
        "that tracks it. *table* / *compare*: column of the report's per-workload tables and",
        "of `wsblock compare`. *resolution*: values below it are equal, and a spread over repeats",
        "must exceed it to be instability. *min ratio*: the smallest ratio of medians `wsblock",
        "compare` calls a change ([`comparisons.md`](comparisons.md)).",
        "",
        "| column | record path | unit | better | repeats | asv | table | compare | resolution | min ratio | what |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in metrics.METRICS:
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{m.column}`", f"`{'.'.join(m.path)}`" if m.derive is None else f"computed by `{m.derive.__module__}`",
            m.unit, m.better, m.aggregate,
            f"`{m.asv}`" if m.asv else "", m.table or "", m.compare or "", f"{m.resolution:g}",
            f"x{m.min_effect:g}", m.description)) + " |")
    lines += [
        "",
        "`disconnects_<code>` columns (one per close code seen) follow `first_disconnect_s`.",
        "",
        "## Axes",
        "",
        "A matrix multiplies the axes out; each enters the cell id. Each is declared in",
        "`wsblock/schema/axes.py` and is a `CellConfig` field, a key of the matrix file, an option of",
        "`wsblock run` and a column of the tidy table. *values*: what a cell accepts",
        "(numbers inclusive; a matrix file may give a list of them). *asv*: `always` an",
        "asv parameter, `varied` only in a profile that varies it.",
        "",
        "| axis | matrix key | option | default | values | in the id | asv | examples | what |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in axes.AXES:
        default = "required" if a.default is axes.REQUIRED else repr(a.default)
        parsed = [a.parse(a.toml_key, v) for v in a.examples]
        id_parts = ", ".join(f"`{p}`" if (p := a.id_part(a.normal(v))) else "(nothing)" for v in parsed)
        option = f"`{a.cli_option}`" + (f" {a.metavar}" if a.metavar else "")
        values = str(a.check) + (f', "{a.none_text}"' if a.none_text else "")
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{a.name}`", f"`{a.toml_key}`", option, default, values, id_parts, a.asv,
            ", ".join(repr(v) for v in a.examples), a.description)) + " |")
    lines += [
        "",
        "## Settings",
        "",
        "Other cell parameters are settings (`wsblock/schema/settings.py`), shared by the cells of",
        "a matrix: a matrix id leaves them out; the id of a standalone record (`wsblock run --out`)",
        "names each one that differs from its default, as `-<name>=<value>`. *values*: what a",
        "cell accepts (numbers inclusive; a positive number must also be above 0). *matrix*:",
        "whether a matrix file may give it.",
        "",
        "| setting | type | default | unit | values | matrix | option | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in settings.SETTINGS:
        default = "the platform's (`forkserver` on Linux)" if s.name == "start_method" else repr(s.default_value())
        option = f"`{s.cli_option}`" + (f" {s.metavar}" if s.metavar else "") if s.cli_option else ""
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{s.name}`", f"`{_kind(s.kind)}`", default, s.unit, s.check, "yes" if s.matrix else "no", option,
            s.help)) + " |")
    lines += [
        "",
        "## Rules",
        "",
        "Combinations that each parameter's own check lets through and a cell refuses, whether it",
        "comes from the command line, a matrix file or a `--cell` file (a parameter is named as",
        "its input names it: `ping_timeout` in a file, `--ping-timeout` on the command line).",
        "",
        "| refused with | why |",
        "|---|---|",
    ]
    for r in settings.RULES:
        lines.append("| " + " | ".join(_cell(x) for x in (r.message.format_map(_Names()), r.why)) + " |")
    lines += [
        "",
        "## Caveats",
        "",
        "Which way each warning code of a record can move a verdict (`wsblock/schema/caveats.py`;",
        "the rules: [`report.md`](report.md), \"The verdict\"). Only a condition that could have made",
        "a cell look safer blocks `safe`, and only for the strategy whose cells carry it; an",
        "undeclared code counts as safer.",
        "",
        "| code | direction | could falsely produce | harsher because | safer because |",
        "|---|---|---|---|---|",
    ]
    for c in caveats.CAVEATS:
        moves = ", ".join(f"`{v}`" for v in caveats.MOVES.get(c.direction, ())) if c.direction != caveats.BY_SIGN \
            else "by the sign of the drift"
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{c.code}`", c.direction, moves, c.harsher, c.safer)) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(vocabulary(), end="")
