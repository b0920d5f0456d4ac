"""Drawing one browser's session for the live panel: labels, redaction, SVG.

The panel shows one client's events (its lifeline and the server's), the last
[MAX_EVENTS][tutorial.live.render.MAX_EVENTS] of the chosen layer view, drawn by the
project's own renderer ([sequence_diagram][tutorial.render.sequence.sequence_diagram]).
In the chat view a Socket.IO packet is labelled with its event and payload
([chat_label][tutorial.live.render.chat_label]). Every label goes through the
renderer's escaping (``& < >`` become entities), so a message text can never become
markup in the SVG; login secrets are shown as ``•••``
([redact][tutorial.live.render.redact]).

Each row of the diagram is clickable on the page: the trace inspector's document for
a drawn diagram ([panel_document][tutorial.live.render.panel_document]) gives row
``k``'s events with their annotated bytes, the frames that carried them and the
packets they carried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tutorial.live.trace import SERVER_LIFELINE
from tutorial.protocol.layers import Layer
from tutorial.render.sequence import PRESETS, diagram_rows, sequence_diagram
from tutorial.render.stepper import drawn_document, hide_secrets
from tutorial.trace.model import Lifeline, Trace, TraceEvent

LAYERS: tuple[str, ...] = ("chat", "packets", "frames")
"""The layer views the panel offers."""
MAX_EVENTS = 40
"""The diagram shows at most this many events (the latest), so it stays readable."""
MAX_LABEL = 56
BROWSER = {"client": "this browser"}
"""A client lifeline here is the browser showing the panel."""


FIRST_KEYS = ("user", "text", "ok", "roomId", "seq")
"""In a chat label, these keys of a payload come first (a label is cut at MAX_LABEL)."""


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        first = [k for k in FIRST_KEYS if k in value]
        value = {k: value[k] for k in [*first, *(k for k in value if k not in first)]}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def chat_label(event: TraceEvent) -> str:
    """A Socket.IO packet read as a chat event: ``new-message {"user":"bob","text":...}``.

    Only the label changes: it is made from the decoded packet, with the keys a reader
    looks for first (``FIRST_KEYS``); the other layers keep the wiretap's labels.
    """
    f = event.fields
    if event.layer is not Layer.SIO or f.get("namespace") not in (None, "/"):
        return event.label
    name = f.get("event")
    ack = f" #{f['id']}" if "id" in f else ""
    if isinstance(name, str):
        args = f.get("args")
        args = args if isinstance(args, list) else []
        body = " ".join(_compact(a) for a in args)
        return f"{name}{ack} {body}".strip()
    if f.get("type") == "ACK":
        data = f.get("data")
        body = " ".join(_compact(a) for a in data) if isinstance(data, list) else ""
        return f"ack{ack} {body}".strip()
    return event.label


def redact(label: str) -> str:
    """Hide login secrets (``"password"``, ``"token"`` values) in a label: the panel is
    on screen, and screenshots travel. The only change made to what the wire said
    ([hide_secrets][tutorial.render.stepper.hide_secrets], as in the inspector)."""
    return hide_secrets(label)


def drawing(lifeline: str, label: str, events: Sequence[TraceEvent], layer: str) -> Trace:
    """The trace the panel draws: one client's lifeline and the server's, its events
    labelled as the layer view reads them (chat labels in ``chat``), secrets hidden."""
    labels = chat_label if layer == "chat" else (lambda e: e.label)
    return Trace(
        [Lifeline(lifeline, label, "client"), Lifeline(SERVER_LIFELINE, "Server", "server")],
        [replace(e, label=redact(labels(e))) for e in events],
    )


def render_svg(
    lifeline: str,
    label: str,
    events: Sequence[TraceEvent],
    layer: str,
    *,
    max_label: int = MAX_LABEL,
) -> str:
    """The SVG of one client's events: its lifeline and the server's, nothing else.

    Row ``k`` of the diagram carries the SVG class ``seq_row_k``
    ([diagram_rows][tutorial.render.sequence.diagram_rows]); its events are
    [panel_document][tutorial.live.render.panel_document]'s row ``k``.
    """
    trace = drawing(lifeline, label, events, layer)
    # The renderer captions a client "teaching client"; this one is a browser. The
    # panel keeps its own window of events (MAX_EVENTS): every row of it is drawn, the
    # Engine.IO carriers too (the "packets" view is about them).
    graph = sequence_diagram(
        trace,
        layers=layer,
        max_label=max_label,
        show_legend=False,
        captions=BROWSER,
        fold_long=False,
    )
    svg: str = graph.pipe(format="svg", encoding="utf-8")
    # Keep the <svg> element only (no XML prolog, DOCTYPE or comments).
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def panel_document(
    lifeline: str,
    label: str,
    kept: Sequence[TraceEvent],
    shown: Sequence[TraceEvent],
    layer: str,
) -> dict[str, Any]:
    """The trace inspector's document for a diagram the panel drew (click to inspect).

    Args:
        lifeline: The client's lifeline.
        label: Its label in the diagram.
        kept: Every kept event of that client's session, in recording order: links
            between layers and compressed frames are read from all of them.
        shown: The events [render_svg][tutorial.live.render.render_svg] drew (objects
            of ``kept``).
        layer: The layer view it drew them in.

    Returns:
        A [drawn_document][tutorial.render.stepper.drawn_document] whose row ``k`` is
        the diagram's row ``k``, with login secrets hidden; its ``svg`` is empty (the
        page shows the diagram already).
    """
    drawn = drawing(lifeline, label, shown, layer)
    _, rows = diagram_rows(drawn, layer, fold_long=False)  # the rows render_svg draws, in order
    at = {id(e): i for i, e in enumerate(kept)}
    of_drawn = {id(d): at[id(e)] for d, e in zip(drawn.events, shown, strict=True)}
    trace = Trace(drawn.lifelines, kept)
    return drawn_document(
        trace,
        layer,
        [[of_drawn[id(e)] for e in row.events] for row in rows],
        description=PRESETS[layer].description,
        redact=True,
    )


def latest(events: Sequence[TraceEvent], layer: str, limit: int = MAX_EVENTS) -> list[TraceEvent]:
    """The last ``limit`` events of a layer preset."""
    wanted = PRESETS[layer].layers
    return [e for e in events if e.layer in wanted][-limit:]


__all__ = [
    "LAYERS",
    "MAX_EVENTS",
    "chat_label",
    "drawing",
    "latest",
    "panel_document",
    "redact",
    "render_svg",
]
