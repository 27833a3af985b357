"""The report pages: one self-contained HTML file (images embedded, no external resources, no
scripts) and a Markdown file that links the image files next to it.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tal_bench.plots.tables import Table, to_html, to_markdown

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
figure { margin: 1em 0 2em 0; } figure img, figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; } .empty { color: #777; font-style: italic; }
.failures td { color: #a00; }
"""


@dataclass
class FigureFiles:
    """One saved figure: its caption and the files written for it (one per format)."""

    title: str
    paths: list[Path]


@dataclass
class Section:
    """A titled part of the report: notes, figures, then tables."""

    title: str
    notes: list[str] = field(default_factory=list)
    figures: list[FigureFiles] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _scope_svg_ids(svg: str, prefix: str) -> str:
    """Prefix every ``id`` of an SVG and the ``#id`` references to it, so that several
    matplotlib SVGs inlined in one page (which reuse glyph and clip-path ids) stay distinct."""
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg
    svg = re.sub(r'(\sid=")([^"]+)"', lambda m: f'{m.group(1)}{prefix}{m.group(2)}"', svg)

    def ref(m: re.Match[str]) -> str:
        name = m.group(2)
        return f"{m.group(1)}{prefix}{name}" if name in ids else m.group(0)

    return re.sub(r'(href="#|url\(#)([^")]+)', ref, svg)


def _embed(fig: FigureFiles, index: int) -> str:
    """PNG as a base64 data URI when there is one, else the SVG inline (ids scoped)."""
    by_suffix = {p.suffix.lower(): p for p in fig.paths}
    alt = html.escape(fig.title, quote=True)
    if ".png" in by_suffix:
        data = base64.b64encode(by_suffix[".png"].read_bytes()).decode("ascii")
        return f'<img alt="{alt}" src="data:image/png;base64,{data}">'
    if ".svg" in by_suffix:
        svg = by_suffix[".svg"].read_text(encoding="utf-8")
        start = svg.find("<svg")  # drop the XML declaration and DOCTYPE
        return _scope_svg_ids(svg[max(start, 0) :], f"f{index}-")
    raise ValueError(f"figure {fig.title!r} has no PNG or SVG file: {fig.paths}")


def _table_html(table: Table) -> str:
    cls = ' class="failures"' if table.name == "failures" else ""
    return f"<h3>{html.escape(table.title)}</h3>\n<div{cls}>\n{to_html(table)}</div>\n"


def render_html(title: str, intro: list[str], sections: list[Section]) -> str:
    """The whole report as one HTML document that needs no other file.

    Args:
        title: page title.
        intro: paragraphs (plain text) shown above the table of contents.
        sections: report sections, in order.

    Returns:
        The HTML text (UTF-8; images embedded).
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f'<p class="note">{html.escape(p)}</p>' for p in intro]
    toc = "".join(
        f'<li><a href="#{_anchor(s.title)}">{html.escape(s.title)}</a></li>' for s in sections
    )
    parts.append(f"<nav><ul>{toc}</ul></nav>")
    n_fig = 0
    for sec in sections:
        parts.append(f'<section id="{_anchor(sec.title)}"><h2>{html.escape(sec.title)}</h2>')
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
        for fig in sec.figures:
            cap = html.escape(fig.title)
            parts.append(f"<figure>{_embed(fig, n_fig)}<figcaption>{cap}</figcaption></figure>")
            n_fig += 1
        parts += [_table_html(t) for t in sec.tables]
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def render_markdown(title: str, intro: list[str], sections: list[Section], page_dir: Path) -> str:
    """The report as Markdown; figures are linked relative to ``page_dir`` (PNG preferred).

    Args:
        title: page title.
        intro: paragraphs shown first.
        sections: report sections, in order.
        page_dir: directory the Markdown file is written to.
    """
    lines = [f"# {title}", ""]
    for para in intro:
        lines += [para, ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        for note in sec.notes:
            lines += [f"_{note}_", ""]
        for fig in sec.figures:
            paths = sorted(fig.paths, key=lambda p: p.suffix.lower() != ".png")
            rel = Path(os.path.relpath(paths[0], page_dir)).as_posix()
            others = ", ".join(
                f"[{p.suffix[1:].upper()}]({Path(os.path.relpath(p, page_dir)).as_posix()})"
                for p in paths[1:]
            )
            lines += [f"![{fig.title}]({rel})", ""]
            lines += [f"{fig.title}{f' ({others})' if others else ''}", ""]
        for table in sec.tables:
            lines += [f"### {table.title}", "", to_markdown(table)]
    return "\n".join(lines).rstrip() + "\n"
