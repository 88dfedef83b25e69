"""A tiny document model rendered twice: Markdown (plots linked) and self-contained HTML (plots
embedded as base64 PNG, inline CSS, no script, nothing fetched).

A document is a list of blocks built with :func:`h`, :func:`p`, :func:`table`, :func:`img` and
:func:`note`; :func:`to_markdown` and :func:`to_html` render the same blocks, so the two reports
never disagree. :func:`fmt` formats numbers for both (``None`` is an em dash).

Example:
    >>> blocks = [h(1, "Report"), table(["metric", "value"], [["PNMI", 0.51234], ["ABX", None]])]
    >>> print(to_markdown(blocks))
    # Report
    <BLANKLINE>
    | metric | value |
    |---|---|
    | PNMI | 0.5123 |
    | ABX | — |
    <BLANKLINE>
    >>> "<table>" in to_html(blocks, title="Report", base=".")
    True
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

Block = tuple


def h(level: int, text: str, anchor: str | None = None) -> Block:
    return ("h", level, text, anchor)


def p(text: str) -> Block:
    return ("p", text)


def note(text: str) -> Block:
    """A highlighted remark (used for skipped metrics and their reasons)."""
    return ("note", text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Block:
    return ("table", list(headers), [list(r) for r in rows])


def img(title: str, file: str, wide: bool = False) -> Block:
    """A PNG, ``file`` relative to the report's folder; ``wide`` takes a whole row in HTML."""
    return ("img", title, file, wide)


def audio(title: str, files: Sequence[tuple[str, str]]) -> Block:
    """A row of labelled WAV players (``(label, file)``, files relative to the report's folder)."""
    return ("audio", title, [tuple(f) for f in files])


def fmt(v: Any) -> str:
    """Numbers for people: ints as is, floats to 4 significant digits (1 decimal from 1000)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


# --------------------------------------------------------------------------- Markdown
def _md_cell(v: Any) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif kind == "p":
            lines += [b[1], ""]
        elif kind == "note":
            lines += ["> " + b[1], ""]
        elif kind == "table":
            lines.append("| " + " | ".join(_md_cell(x) for x in b[1]) + " |")
            lines.append("|" + "---|" * len(b[1]))
            lines += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in b[2]]
            lines.append("")
        elif kind == "img":
            lines += [f"![{b[1]}]({b[2]})", ""]
        elif kind == "audio":
            lines += [f"{b[1]}: " + ", ".join(f"[{label}]({f})" for label, f in b[2]), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1em 2em 4em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 3px solid #2b6cb0; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #ccd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.6em; color: #2b4c7e; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: right; }
th { background: #eef3fa; }
td:first-child, th:first-child, td.t { text-align: left; }
tr:nth-child(even) td { background: #f8fafc; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em .8em; margin: .6em 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; flex: 1 1 460px; max-width: 100%; }
figure.wide { flex-basis: 100%; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { font-size: 13px; color: #555; }
figure.audio { flex: 0 1 300px; }
nav { background: #f4f6f8; padding: .5em 1em; border-radius: 6px; font-size: 14px; }
nav a { margin-right: 1em; }
""".strip()


def _embed(base: str | os.PathLike, file: str, mime: str = "image/png") -> str:
    data = (Path(base) / file).read_bytes()
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def to_html(blocks: Sequence[Block], *, title: str, base: str | os.PathLike) -> str:
    """One self-contained page; images are read from ``base / file`` and embedded."""
    esc = html.escape
    toc = [(b[2], b[3] or slug(b[2])) for b in blocks if b[0] == "h" and b[1] == 2]
    body: list[str] = []
    in_plots = False
    for b in blocks:
        kind = b[0]
        if in_plots and kind != "img":
            body.append("</div>")
            in_plots = False
        if kind == "h":
            anchor = b[3] or slug(b[2])
            body.append(f'<h{b[1]} id="{esc(anchor)}">{esc(b[2])}</h{b[1]}>')
            if b[1] == 1 and toc:
                body.append("<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for t, a in toc) + "</nav>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "note":
            body.append(f'<div class="note">{_inline(b[1])}</div>')
        elif kind == "table":
            head = "".join(f"<th>{esc(fmt(x))}</th>" for x in b[1])
            rows = "".join("<tr>" + "".join(_td(x) for x in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            if not in_plots:  # consecutive plots share a row when the page is wide enough
                body.append('<div class="plots">')
                in_plots = True
            wide = ' class="wide"' if len(b) > 3 and b[3] else ""
            body.append(f'<figure{wide}><img alt="{esc(b[1])}" src="{_embed(base, b[2])}">'
                        f"<figcaption>{esc(b[1])}</figcaption></figure>")
        elif kind == "audio":  # embedded like the plots: the page stays one self-contained file
            players = "".join(f'<figure class="audio"><figcaption>{esc(label)}</figcaption>'
                              f'<audio controls preload="none" src="{_embed(base, f, "audio/wav")}"></audio></figure>'
                              for label, f in b[2])
            body.append(f'<div class="plots"><strong>{esc(b[1])}</strong>{players}</div>')
    if in_plots:
        body.append("</div>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _td(x: Any) -> str:
    """Numbers right-aligned (the default), text left-aligned."""
    cls = ' class="t"' if isinstance(x, str) else ""
    return f"<td{cls}>{html.escape(fmt(x))}</td>"


def _inline(text: str) -> str:
    """Escape, then render Markdown's `code` and **bold** (all our paragraphs use)."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
