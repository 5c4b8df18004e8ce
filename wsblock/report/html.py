"""``report.html``: the report as one self-contained file.

The HTML is rendered from ``report.md`` itself, so its tables and text are
the markdown's, word for word. Every figure is embedded as a ``data:`` URI
(the SVG version when there is one), the style sheet and the small script
that sorts tables are inline, and nothing refers to another host: the file
opens from an e-mail attachment or an offline share, and a browser makes no
network request for it. Links to the files beside the report (``cells.csv``,
the SVGs) stay relative.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from wsblock import atomic

HTML_NAME = "report.html"

STYLE = """
:root { color-scheme: light; --ink: #1b1b1b; --muted: #5f6368; --rule: #d0d4d9; --band: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem 2.5rem 4rem; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1500px; margin: 0 auto; }
h1 { font-size: 1.7rem; margin: 0 0 1rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.08rem; margin: 1.6rem 0 0.4rem; }
p, li { max-width: 110ch; }
p:has(> img) { max-width: none; }
code { font: 0.88em/1.3 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: var(--band);
       padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
pre { overflow-x: auto; white-space: pre-wrap; background: var(--band); padding: 0.7rem 0.9rem; border: 1px solid var(--rule);
      border-radius: 4px; font: 0.8rem/1.35 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
pre code { background: none; padding: 0; font: inherit; overflow-wrap: normal; }
.table { overflow-x: auto; margin: 0.6rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.86rem; }
th, td { border: 1px solid var(--rule); padding: 0.28rem 0.5rem; vertical-align: top; }
th { background: #eef1f5; position: sticky; top: 0; cursor: pointer; user-select: none; min-width: 7ch; }
td { min-width: 6ch; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 0.7em; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 0.7em; }
tbody tr:nth-child(even) { background: #fafbfc; }
td[style*="right"] { white-space: nowrap; font-variant-numeric: tabular-nums; }
img { display: block; width: 100%; max-width: 1400px; height: auto; margin: 0.6rem 0; border: 1px solid var(--rule); }
.v { font-weight: 600; padding: 0.05em 0.35em; border-radius: 3px; white-space: nowrap; }
.v-safe { background: #d8f0dc; color: #114a1e; }
.v-slow { background: #fff1c7; color: #5c4300; }
.v-drops { background: #fbd5d2; color: #7a120b; }
.v-inconclusive, .v-cannot, .v-no { background: #e7e9ee; color: #333; }
section.verdict { background: #fcfcfd; }
footer { margin-top: 3rem; color: var(--muted); font-size: 0.85rem; }
"""

SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, index) {
    th.title = "sort by this column";
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var key = function (row) {
        var text = (row.cells[index] ? row.cells[index].textContent : "").trim();
        var match = text.replace(/,/g, "").match(/^[^0-9.-]*(-?[0-9]*\\.?[0-9]+)/);
        return match ? parseFloat(match[1]) : text.toLowerCase();
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
"""Click a column header to sort the table by it (numbers as numbers)."""

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""The page may load nothing: images only from ``data:`` URIs, style and script only inline."""

VERDICT_CLASSES = {
    "safe": "v-safe", "slow loop": "v-slow", "drops connections": "v-drops", "inconclusive": "v-inconclusive",
    "cannot tell": "v-cannot", "no data": "v-no",
}


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (base64)."""
    mime = "image/svg+xml" if path.suffix == ".svg" else (mimetypes.guess_type(path.name)[0]
                                                           or "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _figure(src: str, out_dir: Path) -> str | None:
    """The embedded form of a figure the markdown links by name; None if it is not beside the report."""
    if "/" in src or "\\" in src or src.startswith("."):
        return None
    path = out_dir / src
    vector = path.with_suffix(".svg")
    if vector.is_file():
        return data_uri(vector)
    return data_uri(path) if path.is_file() else None


def _parser(out_dir: Path) -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    default_image = parser.renderer.rules["image"]

    def image(tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = token.attrGet("src") or ""
        embedded = _figure(str(src), out_dir)
        if embedded is None:
            raise ValueError(f"figure not found beside the report: {src}")
        token.attrSet("src", embedded)
        token.attrSet("loading", "lazy")
        return default_image(tokens, idx, options, env)

    def table_open(tokens: Any, idx: int, options: Any, env: Any) -> str:
        return '<div class="table"><table>\n'

    def table_close(tokens: Any, idx: int, options: Any, env: Any) -> str:
        return "</table></div>\n"

    parser.renderer.rules["image"] = image
    parser.renderer.rules["table_open"] = table_open
    parser.renderer.rules["table_close"] = table_close
    return parser


def _mark_verdicts(body: str) -> str:
    """Colour the verdict words the markdown sets in bold."""
    def replace(match: re.Match[str]) -> str:
        word = match.group(1)
        return f'<strong class="v {VERDICT_CLASSES[word]}">{word}</strong>'
    pattern = "|".join(re.escape(w) for w in VERDICT_CLASSES)
    return re.sub(rf"<strong>({pattern})</strong>", replace, body)


def render(markdown: str, out_dir: str | Path, title: str) -> str:
    """The HTML of a report.

    Args:
        markdown: The text of ``report.md``.
        out_dir: The directory of the report, where its figures are.
        title: The page title.

    Returns:
        One HTML document with every figure embedded.

    Raises:
        ValueError: If the markdown shows a figure that is not in ``out_dir``.
    """
    body = _mark_verdicts(_parser(Path(out_dir)).render(markdown))
    # The verdict (everything before the second h2) gets its own section.
    parts = body.split("<h2>", 2)
    if len(parts) == 3:
        body = f'{parts[0]}<section class="verdict"><h2>{parts[1]}</section><h2>{parts[2]}'
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            f"{body}</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n")


def write(markdown: str, out_dir: str | Path, title: str) -> Path:
    """Write ``report.html`` beside ``report.md`` (atomically) and return its path."""
    path = Path(out_dir) / HTML_NAME
    atomic.write_text(path, render(markdown, out_dir, title))
    return path


__all__ = ["HTML_NAME", "data_uri", "render", "write"]
