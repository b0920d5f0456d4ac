"""Read a graphviz SVG the way a test needs it: its text, and the text of each node."""

from __future__ import annotations

import html
import re

_TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.S)
_GROUP = re.compile(r'<g id="(?:node|edge|clust)\d+" class="(node|edge|cluster)">(.*?)</g>', re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_FONT = re.compile(r'font-size="([\d.]+)"')
_VIEWBOX = re.compile(r'viewBox="[\d.\-]+ [\d.\-]+ ([\d.]+) ([\d.]+)"')


def texts(svg: str) -> list[str]:
    return [html.unescape(t) for t in _TEXT.findall(svg)]


def text(svg: str) -> str:
    """All the text of the picture, one label line per line."""
    return "\n".join(texts(svg))


def nodes(svg: str) -> dict[str, list[str]]:
    """Node title -> the lines of text drawn in that node."""
    found: dict[str, list[str]] = {}
    for kind, body in _GROUP.findall(svg):
        if kind != "node":
            continue
        title = _TITLE.search(body)
        if title:
            found[html.unescape(title.group(1))] = texts(body)
    return found


def node_with(svg: str, line: str) -> list[str]:
    """The text of the first node that draws exactly ``line`` (empty if none)."""
    for lines in nodes(svg).values():
        if any(line == t.strip() for t in lines):
            return lines
    return []


def smallest_font(svg: str) -> float:
    """The smallest font size in the picture, in its own (viewBox) units."""
    sizes = [float(s) for s in _FONT.findall(svg)]
    return min(sizes) if sizes else 0.0


def viewbox_width(svg: str) -> float:
    match = _VIEWBOX.search(svg)
    return float(match.group(1)) if match else 0.0
