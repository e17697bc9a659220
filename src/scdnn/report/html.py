"""The report page: one self-contained HTML file (inline CSS, images as data URIs, no script).

Everything that comes from a file (names, paths, markdown text) goes through :func:`escape`;
the helpers here return HTML fragments as strings, and :func:`page` joins them into the page.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .. import __version__

__all__ = ["Section", "Report", "escape", "table", "key_values", "image", "note", "markdown",
           "page", "fmt_number", "fmt_pct"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       background: #ffffff; margin: 0; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 2px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 1.08em; margin-top: 1.3em; }
.meta { color: #57606a; font-size: 0.92em; }
nav { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px;
      margin: 12px 0; font-size: 0.92em; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 15em; font-weight: 600; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; margin-top: 4px; }
.note { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px;
        margin: 10px 0; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; font-size: 0.92em; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0969da; }
footer { color: #57606a; font-size: 0.85em; margin-top: 36px; border-top: 1px solid #d0d7de;
         padding-top: 8px; }
"""


def escape(value: Any) -> str:
    """HTML-escape ``str(value)`` (quotes included)."""
    return _html.escape(str(value), quote=True)


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A fraction in percent with ``digits`` decimals; ``n/a`` for None or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def fmt_number(value: Any, digits: int = 2) -> str:
    """An integer with thousands separators, a float with ``digits`` decimals, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


@dataclass
class Section:
    """One ``<h2>`` section of the report: its title and its body (an HTML fragment)."""

    title: str
    body: str
    anchor: str = ""

    def __post_init__(self) -> None:
        if not self.anchor:
            self.anchor = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"


@dataclass
class Report:
    """A whole report: title, the run folder it describes, key facts shown under the title,
    the sections, and the provenance of the run (``provenance()`` of the run's JSON)."""

    title: str
    run_dir: str
    kind: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    provenance: dict[str, Any] | None = None


def _is_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(?:\s*±\s*[\d.]+)?[%*]?|n/a|–", text.strip()))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]],
          cell: Callable[[Any], str] | None = None) -> str:
    """An HTML table; cells are escaped (or rendered by ``cell``, which must escape) and
    numbers right-aligned."""
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for value in row:
            text = cell(value) if cell else escape(value)
            numeric = _is_numeric(_html.unescape(re.sub(r"<[^>]+>", "", text)))
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of labels and values (escaped)."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def image(uri: str, alt: str, caption: str | None = None) -> str:
    """A ``<figure>`` with an ``<img>`` whose ``src`` is a data URI, and an optional caption."""
    if not uri.startswith("data:image/"):
        raise ValueError("report images must be data: URIs (the page must stand alone)")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{escape(alt)}">{cap}</figure>'


def note(text: str) -> str:
    """A highlighted note (escaped), e.g. why a figure is missing."""
    return f'<p class="note">{escape(text)}</p>'


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]*)\)$")


def _inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{escape(part)}</code>")
        else:
            out.append(_BOLD.sub(r"<strong>\1</strong>", escape(part)))
    return "".join(out)


def _table_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown(text: str, image_uri: Callable[[str], str | None],
             heading_offset: int = 0) -> str:
    """The subset of Markdown that ``results.md`` uses, as HTML.

    Headings (``#``), bullet lists (``- ``), pipe tables (the ``|---|`` row is dropped),
    paragraphs, inline code and bold, and images on a line of their own
    (``![alt](file)``): ``image_uri(file)`` gives the data URI, or None to show a note.
    Headings move down by ``heading_offset`` levels (1: ``#`` becomes ``<h2>``).
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        picture = _IMAGE.match(line.strip())
        if heading:
            level = min(6, len(heading.group(1)) + heading_offset)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif picture:
            uri = image_uri(picture.group(2))
            out.append(image(uri, picture.group(1)) if uri else
                       note(f"figure {picture.group(2)} is missing from the run folder"))
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [_table_row(r) for r in block
                    if not re.fullmatch(r"\|?(\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*\|?", r.strip())]
            if rows:
                out.append(table(rows[0], rows[1:], cell=_inline))
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i].rstrip()))
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(it)}</li>" for it in items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(
                    r"^(#{1,6}\s|\s*[-*]\s+|\s*\||!\[)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def page(report: Report) -> str:
    """The whole HTML document of ``report``."""
    prov = report.provenance or {}
    facts = list(report.facts)
    made = []
    if prov.get("scdnn_version"):
        made.append(f"scdnn {prov['scdnn_version']}")
    if prov.get("git_commit"):
        made.append(f"commit {prov['git_commit']}")
    if prov.get("created"):
        made.append(str(prov["created"]))
    if made:
        facts.append(("made by", ", ".join(made)))
    if prov.get("command"):
        facts.append(("command", prov["command"]))
    if prov.get("machine"):
        facts.append(("machine", f"{prov['machine']}, torch {prov.get('torch', '?')}"))
    nav = " ".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in report.sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>\n{s.body}</section>'
                     for s in report.sections)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="scdnn {escape(__version__)}">
<title>{escape(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{escape(report.title)}</h1>
<p class="meta">{escape(report.kind)} run folder <code>{escape(report.run_dir)}</code></p>
{key_values(facts)}
<nav>{nav}</nav>
{body}
<footer>Report written by scdnn {escape(__version__)} on {escape(now)}. The page is
self-contained: every figure is embedded, nothing is loaded from the network.</footer>
</main>
</body>
</html>
"""
