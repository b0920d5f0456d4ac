"""A diagram in a box a learner can read at any width: natural size, scroll, or fit.

JupyterLab's notebook column is about 850 px wide at 1280 px; several diagrams are
wider (chapter 6's sequence is over 2,000 px). Shrinking them to the column makes the
text unreadable, and JupyterLab's own SVG output shows them at natural size with a
scroll bar far below, at the bottom of a tall picture, so they look cut off. Here every
diagram sits in a scroll container at its natural size, with a one-line toolbar
(**100 %** or **fit**) that says how wide it is when it does not fit.

The box is plain HTML (no JavaScript): a pair of radio buttons and a scoped
``<style>``. The same HTML serves the notebook (an output, or an ``ipywidgets.HTML``
value that background work replaces) and the static site. The picture is an ``<img>``
with an SVG data URI, as JupyterLab draws ``image/svg+xml`` itself, so several
diagrams on one page never share element ids.

``%load_ext tutorial.widgets``
([load_ipython_extension][tutorial.widgets.figure.load_ipython_extension]) makes every
graphviz diagram a cell returns display this way.
"""

from __future__ import annotations

import base64
import html
import re
import uuid
from typing import Any

import graphviz

_SIZE = re.compile(r'<svg[^>]*?\swidth="([\d.]+)(pt|px)?"[^>]*?\sheight="([\d.]+)(pt|px)?"', re.S)

#: A diagram wider than this (CSS px at 100 %) gets the "wider than the column" hint.
COLUMN_PX = 840


def svg_text(diagram: Any) -> str:
    """The SVG of a graphviz graph (or SVG text as it is)."""
    if isinstance(diagram, str):
        return diagram
    if isinstance(diagram, bytes):
        return diagram.decode("utf-8")
    if isinstance(diagram, graphviz.Source | graphviz.Digraph | graphviz.Graph):
        return str(diagram.pipe(format="svg").decode("utf-8"))
    raise TypeError(f"not a diagram: {type(diagram).__name__}")


def natural_size(svg: str) -> tuple[int, int]:
    """Width and height in CSS px at 100 % (graphviz writes points: 1 pt = 4/3 px)."""
    match = _SIZE.search(svg)
    if not match:
        return (0, 0)
    scale = 4 / 3 if match.group(2) in (None, "pt") else 1.0
    return round(float(match.group(1)) * scale), round(float(match.group(3)) * scale)


def diagram_html(
    diagram: Any,
    *,
    caption: str = "",
    state: str = "ok",
    run: int | None = None,
    banner: str = "",
) -> str:
    """The box: toolbar (100 % | fit, and the size when it is wider than the column),
    an optional banner (a run in progress, an error), then the picture.

    ``state`` and ``run`` become ``data-`` attributes that the browser tests wait on.
    """
    svg = svg_text(diagram)
    width, height = natural_size(svg)
    # Unique in the page: several notebooks (kernels) may share one JupyterLab page.
    uid = f"tdg-{uuid.uuid4().hex[:12]}"
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    wide = width > COLUMN_PX
    hint = (
        f"<span class='tdg-hint'>{width} × {height} px, wider than the column: "
        "scroll sideways, or fit</span>"
        if wide
        else ""
    )
    run_attr = f" data-run='{run}'" if run is not None else ""
    banner_html = f"<div class='tdg-banner tdg-{state}'>{banner}</div>" if banner else ""
    caption_html = f"<div class='tdg-caption'>{caption}</div>" if caption else ""
    dim = "opacity:0.45;" if state in ("running", "stale", "error") else ""
    style = (
        # Size containment: inside a widget (a flex item) the box must not widen the
        # column to the picture's width; it takes the column's width and scrolls.
        f"#{uid}{{contain:inline-size;max-width:100%}}"
        f"#{uid} .tdg-bar{{font:12px sans-serif;color:#555;margin:2px 0;display:flex;"
        "gap:10px;align-items:center;flex-wrap:wrap}"
        f"#{uid} .tdg-bar label{{cursor:pointer;border:1px solid #bbb;border-radius:3px;"
        "padding:1px 8px;background:#f6f6f6;color:#333}"
        f"#{uid} #{uid}-full:checked ~ .tdg-bar .tdg-zoom-full,"
        f"#{uid} #{uid}-fit:checked ~ .tdg-bar .tdg-zoom-fit"
        "{background:#dbe9ff;border-color:#007bff;color:#003d99}"
        f"#{uid} .tdg-box{{overflow:auto;max-width:100%;border:1px solid #e3e3e3;"
        f"background:#fff;{dim}}}"
        f"#{uid} .tdg-box img{{display:block;max-width:none;height:auto}}"
        f"#{uid} #{uid}-fit:checked ~ .tdg-box img{{max-width:100%}}"
        f"#{uid} .tdg-banner{{font:13px sans-serif;padding:3px 6px;margin:2px 0;"
        "border-radius:3px;background:#fff3cd;color:#664d03}"
        f"#{uid} .tdg-error{{background:#f8d7da;color:#842029}}"
        f"#{uid} .tdg-caption{{font:13px sans-serif;color:#333;margin:2px 0}}"
    )
    # Natural size first, always: a page narrower than the notebook column (the site)
    # would otherwise shrink a "narrow" diagram below readable text.
    fit_checked = ""
    full_checked = " checked"
    return (
        f"<div class='tutorial-diagram' id='{uid}' data-state='{state}'{run_attr}"
        f" data-width='{width}' data-height='{height}'>"
        f"<style>{style}</style>{caption_html}{banner_html}"
        f"<input type='radio' name='{uid}-zoom' id='{uid}-full' style='display:none'{full_checked}>"
        f"<input type='radio' name='{uid}-zoom' id='{uid}-fit' style='display:none'{fit_checked}>"
        "<div class='tdg-bar'>"
        f"<label for='{uid}-full' class='tdg-zoom-full' title='natural size'>100 %</label>"
        f"<label for='{uid}-fit' class='tdg-zoom-fit' title='fit to the column'>"
        f"↔ fit</label>{hint}</div>"
        f"<div class='tdg-box'><img src='data:image/svg+xml;base64,{data}'"
        f" alt='{html.escape(_title(svg))}'></div></div>"
    )


def _title(svg: str) -> str:
    match = re.search(r"<text[^>]*>([^<]{3,})</text>", svg)
    return html.unescape(match.group(1)) if match else "diagram"


class Figure:
    """A diagram in the readable box ([diagram_html][tutorial.widgets.figure.diagram_html])."""

    def __init__(self, diagram: Any, caption: str = "") -> None:
        self.svg = svg_text(diagram)
        self.caption = caption

    def _repr_html_(self) -> str:
        return diagram_html(self.svg, caption=self.caption)

    def __repr__(self) -> str:
        width, height = natural_size(self.svg)
        return f"<Figure {width}x{height} px>"


def show(diagram: Any, caption: str = "") -> Figure:
    """Display ``diagram`` (a graphviz graph or SVG text) in the readable box."""
    return Figure(diagram, caption)


def _graph_bundle(graph: Any, include: Any = None, exclude: Any = None) -> dict[str, str]:
    return {"text/html": diagram_html(graph), "text/plain": repr(graph)}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tutorial.widgets``: graphviz diagrams display in the readable box."""
    formatter = ipython.display_formatter.mimebundle_formatter
    for name in ("Digraph", "Graph", "Source"):
        formatter.for_type(getattr(graphviz, name), _graph_bundle)


def unload_ipython_extension(ipython: Any) -> None:
    formatter = ipython.display_formatter.mimebundle_formatter
    for name in ("Digraph", "Graph", "Source"):
        formatter.type_printers.pop(getattr(graphviz, name), None)
