"""The one palette of every diagram, taken from the seed (see DESIGN.md, "Traces").

Each meaning has a colour, a line style and a label marker, so that a diagram printed
in black and white, or read by someone who does not see the colours, still says the
same thing: HTTP is dashed, WebSocket is solid, success carries a ✓, an error a ✗ and
a bold line, server processing is a grey dashed note.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import graphviz

from tutorial.protocol.layers import Layer

HTTP_ORANGE = "#ff9500"
WS_BLUE = "#007bff"
SUCCESS_GREEN = "#28a745"
DATA_PURPLE = "#6f42c1"
ERROR_RED = "#dc3545"
PROCESSING_GREY = "#6c757d"
LIFELINE_GREY = "#adb5bd"
INK = "#212529"
NOTE_FILL = "#f8f9fa"
HEADER_FILL = "#e9ecef"
HIGHLIGHT_FILL = "#cfe2ff"

FONT = "DejaVu Sans"
FONT_SIZE = "10"
SMALL_FONT_SIZE = "9"


@dataclass(frozen=True)
class Style:
    """How one meaning is drawn: colour, graphviz line style, and a label marker."""

    name: str
    color: str
    style: str
    meaning: str
    marker: str = ""
    penwidth: str = "1.2"

    def edge_attrs(self) -> dict[str, str]:
        return {
            "color": self.color,
            "fontcolor": self.color,
            "style": self.style,
            "penwidth": self.penwidth,
        }


HTTP = Style("http", HTTP_ORANGE, "dashed", "HTTP phase")
WEBSOCKET = Style("ws", WS_BLUE, "solid", "WebSocket phase")
SUCCESS = Style("success", SUCCESS_GREEN, "solid", "Success", marker="✓ ", penwidth="1.6")
DATA = Style("data", DATA_PURPLE, "solid", "Data flow (chat events)", penwidth="1.6")
ERROR = Style("error", ERROR_RED, "bold", "Error", marker="✗ ", penwidth="2")
PROCESSING = Style("processing", PROCESSING_GREY, "dashed", "Server processing")
#: A TLS record between a client and the balancer: ciphertext, only its size shows.
CIPHER = Style("cipher", "#495057", "dotted", "TLS record (ciphertext)", penwidth="1.4")

STYLES: dict[str, Style] = {
    s.name: s for s in (HTTP, WEBSOCKET, SUCCESS, DATA, ERROR, PROCESSING, CIPHER)
}


def event_style(
    layer: Layer | str,
    *,
    kind: str = "message",
    phase: str | None = None,
    status: str | None = None,
    has_event: bool = False,
) -> Style:
    """The style of one trace event, most specific meaning first.

    error kind → ERROR; status "ok" → SUCCESS; note → PROCESSING; app layer, or a
    Socket.IO packet that carries a named chat event (``has_event``) → DATA; then the
    phase ("http" → HTTP, "ws" → WEBSOCKET); without a phase, tcp/http → HTTP and
    ws/eio/sio → WEBSOCKET.
    """
    layer = Layer(layer)
    if kind == "error":
        return ERROR
    if status == "ok":  # green and ✓, but still dashed in the HTTP phase (101)
        http = phase == "http" or (phase is None and layer in (Layer.TCP, Layer.HTTP))
        return replace(SUCCESS, style="dashed") if http else SUCCESS
    if kind == "note":
        return PROCESSING
    if layer is Layer.TLS:
        return CIPHER
    if layer is Layer.APP or (layer is Layer.SIO and has_event):
        return DATA
    if phase == "http":
        return HTTP
    if phase == "ws":
        return WEBSOCKET
    return HTTP if layer in (Layer.TCP, Layer.HTTP) else WEBSOCKET


LEGEND_ENTRIES: tuple[tuple[Style, str], ...] = (
    (HTTP, "HTTP phase (orange, dashed)"),
    (WEBSOCKET, "WebSocket phase (blue, solid)"),
    (SUCCESS, "✓ Success (green)"),
    (DATA, "Data flow: chat events (purple)"),
    (ERROR, "✗ Error (red, bold)"),
    (PROCESSING, "Server processing (grey, dashed)"),
)
"""What the legend shows, in order: (style, text)."""
CIPHER_ENTRY: tuple[Style, str] = (CIPHER, "TLS record: ciphertext (dark grey, dotted)")
"""Added to the legend of a diagram that shows TLS records."""


# -- label text, shared by every renderer ---------------------------------------------


def escape(text: str) -> str:
    """Make text literal in a plain (non-HTML) DOT label.

    Backslashes are doubled (``\\l`` is not a line break), ``& < >`` become entities
    (dot reads entities even in plain labels), control characters are shown as
    ``\\xNN``; the result is marked so that the graphviz package never takes a label
    that starts with ``<`` and ends with ``>`` for HTML.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\\\x{ord(ch):02x}")
        else:
            out.append(ch)
    label: str = graphviz.nohtml("".join(out))  # a str that graphviz never reads as HTML
    return label


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def lines(*texts: str, left: bool = False) -> str:
    """A plain label of several lines, each escaped; empty lines are dropped.

    ``left=True`` left-justifies every line (``\\l``), as for a block of headers.
    """
    parts = [escape(t) for t in texts if t]
    label: str = graphviz.nohtml(("".join(p + "\\l" for p in parts)) if left else "\\n".join(parts))
    return label


def html_escape(text: str) -> str:
    """Make text literal inside an HTML-like label."""
    return "".join(_ENTITIES.get(ch, "&quot;" if ch == '"' else ch) for ch in text)


def legend(
    name: str = "cluster_legend", entries: tuple[tuple[Style, str], ...] = LEGEND_ENTRIES
) -> graphviz.Digraph:
    """A legend cluster: one short sample line per meaning, drawn in its real style.

    Add it to a graph with ``graph.subgraph(legend())``. Its node names start with
    ``legend_`` ([legend_anchor][tutorial.render.palette.legend_anchor] names the first
    one, to pin the legend in place).
    """
    g = graphviz.Digraph(name=name)
    g.attr(
        label="Legend",
        fontname=FONT,
        fontsize=FONT_SIZE,
        fontcolor=INK,
        style="rounded",
        color=LIFELINE_GREY,
        labeljust="l",
    )
    g.attr("node", fontname=FONT, fontsize=SMALL_FONT_SIZE, margin="0.05,0.02")
    for i, (style, text) in enumerate(entries):
        a, b = f"legend_{i}_a", f"legend_{i}_b"
        with g.subgraph() as row:
            row.attr(rank="same")
            row.node(a, label="", shape="point", width="0.01", style="invis")
            row.node(b, label=escape(text), shape="plaintext", fontcolor=style.color, height="0.22")
        attrs = style.edge_attrs()
        g.edge(a, b, minlen="3", arrowsize="0.7", **attrs)
        if i:
            g.edge(f"legend_{i - 1}_a", a, style="invis")
    return g


def legend_anchor() -> str:
    """The name of the legend's top-left node, for invisible edges that place it."""
    return "legend_0_a"
