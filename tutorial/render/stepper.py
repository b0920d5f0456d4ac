"""A trace as a step-through document: its diagrams, and every step's annotated bytes.

The trace inspector shows the same thing in three places: the notebook widget
([tutorial.widgets.inspector.Inspector][tutorial.widgets.inspector.Inspector]), the static site
(no kernel) and the
browser chat's live panel. All three display one JSON document made here, by one small
script (``static/inspector.js``): Python computes everything (the rows of each diagram,
the annotated bytes, the links between layers, the sentences), the script only lays it
out and reacts to clicks.

The document (``format: socketio-tutorial-inspection``, version 1):

    {"title": ..., "lifelines": {id: label},
     "events": [{"index", "source", "target", "layer", "label", "kind", "step",
                 "sentence", "carried_by", "carries", "family",
                 "bytes": {"title", "length", "problem", "decoded": [[name, value]],
                           "spans": [{"name", "value", "role", "note", "start", "end",
                                      "bits", "hex", "more", "text"}]} or null}],
     "views": [{"name", "description", "svg",
                "rows": [{"events": [event index, ...], "number", "label"}]}]}

Row ``k`` of a view is the SVG element(s) with class ``seq_row_k``
([tutorial.render.sequence.diagram_rows][tutorial.render.sequence.diagram_rows]); a separator row
has no events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tutorial.protocol.annotate import Annotated
from tutorial.protocol.layers import Layer
from tutorial.render.sequence import PRESETS, diagram_rows, sequence_diagram
from tutorial.trace.inspection import Step, family, inspect_events, inspect_trace
from tutorial.trace.model import Trace, TraceEvent

FORMAT = "socketio-tutorial-inspection"
VERSION = 1
#: At most this many bytes of one span are written out as hex (the span still names them all).
MAX_HEX = 512


@dataclass(frozen=True)
class View:
    """One way to draw the trace: which events it keeps, and what it is for."""

    name: str
    description: str
    keep: Callable[[TraceEvent], bool]
    layers: str | None  # a preset of the sequence renderer; None: every layer


def _in(preset: str) -> Callable[[TraceEvent], bool]:
    layers = PRESETS[preset].layers
    return lambda e: e.layer in layers


def _packets(e: TraceEvent) -> bool:
    # An Engine.IO MESSAGE is drawn by the Socket.IO packet it carries (the next row);
    # the panel shows both layers anyway.
    if e.layer is Layer.EIO and e.fields.get("type") == "MESSAGE":
        return False
    return e.layer in PRESETS["packets"].layers


VIEWS: dict[str, View] = {
    "story": View(
        "story",
        "The seed diagram's numbered steps, as this run took them.",
        lambda e: e.step is not None,
        None,
    ),
    "chat": View("chat", PRESETS["chat"].description, _in("chat"), "chat"),
    "packets": View("packets", PRESETS["packets"].description, _packets, "packets"),
    "frames": View("frames", PRESETS["frames"].description, _in("frames"), "frames"),
}


def default_views(trace: Trace) -> list[str]:
    """The story when the trace has one, then packets and frames."""
    names = ["packets", "frames"]
    if any(e.step is not None for e in trace.events):
        names.insert(0, "story")
    return names


# -- the document ---------------------------------------------------------------------


def _span_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = text.replace("\r", "\\r").replace("\n", "\\n").replace("\x1e", "\\x1e")
    if any(ord(ch) < 32 for ch in shown):
        return None
    return shown


#: Login secrets: the value of a JSON "password" or "token" (in text and in bytes).
SECRET_TEXT = re.compile(r'("(?:password|token)"\s*:\s*)"[^"]*"')
SECRET_BYTES = re.compile(rb'"(?:password|token)"\s*:\s*"([^"]*)"')
HIDDEN = "•••"


def hide_secrets(text: str) -> str:
    """``"password":"alice"`` → ``"password":"•••"`` (a panel on screen travels in screenshots)."""
    return SECRET_TEXT.sub(rf'\1"{HIDDEN}"', text)


def secret_bytes(annotated: Annotated) -> set[int]:
    """Offsets of the bytes that hold a secret's value, in the unit's own bytes. A masked
    frame's payload is searched unmasked; the offsets are the same."""
    raw = annotated.raw
    base, plain = 0, raw
    if annotated.layer is Layer.WS:
        payload = next((s for s in annotated.spans if s.name == "payload"), None)
        if payload is None:
            return set()
        base = payload.byte_start
        plain = raw[base : payload.byte_end]
        key = next((s for s in annotated.spans if s.name == "masking key"), None)
        if key is not None:
            from tutorial.protocol.websocket import apply_mask

            plain = apply_mask(plain, raw[key.byte_start : key.byte_end])
    return {base + i for m in SECRET_BYTES.finditer(plain) for i in range(m.start(1), m.end(1))}


def bytes_json(annotated: Annotated, *, redact: bool = False) -> dict[str, Any]:
    """One unit's annotation as the script shows it; ``redact`` hides login secrets
    (their bytes show as ``••``; every field keeps its place and length)."""
    raw = annotated.raw
    hidden = secret_bytes(annotated) if redact else set()
    say = hide_secrets if redact else (lambda text: text)
    spans = []
    for s in annotated.spans:
        chunk = raw[s.byte_start : s.byte_end]
        shown = [
            "••" if s.byte_start + i in hidden else f"{b:02x}"
            for i, b in enumerate(chunk[:MAX_HEX])
        ]
        text = None if s.is_bits or annotated.layer is Layer.WS else _span_text(chunk)
        spans.append(
            {
                "name": s.name,
                "value": say(s.value),
                "role": str(s.role),
                "note": say(s.note),
                "start": s.start,
                "end": s.end,
                "bits": s.bits(raw) if s.is_bits else None,
                "hex": " ".join(shown),
                "more": max(0, len(chunk) - MAX_HEX),
                "text": say(text) if text is not None else None,
            }
        )
    return {
        "title": say(annotated.title),
        "layer": str(annotated.layer),
        "length": len(raw),
        "problem": annotated.problem,
        "decoded": [
            [k, f'"{HIDDEN}"' if redact and k in ("password", "token") else say(v)]
            for k, v in annotated.decoded
        ],
        "spans": spans,
    }


def event_json(
    steps: Sequence[Step] | Mapping[int, Step], step: Step, *, redact: bool = False
) -> dict[str, Any]:
    e = step.event
    say = hide_secrets if redact else (lambda text: text)
    return {
        "index": step.index,
        "source": e.source,
        "target": e.target,
        "layer": str(e.layer),
        "label": say(e.label),
        "kind": e.kind,
        "step": e.step,
        "sentence": say(step.sentence),
        "carried_by": list(step.carried_by),
        "carries": list(step.carries),
        "family": family(steps, step.index),
        "bytes": None if step.annotated is None else bytes_json(step.annotated, redact=redact),
    }


_PROLOG = re.compile(r"\A.*?(?=<svg)", re.S)


def svg_text(trace: Trace, view: View, title: str | None, max_label: int = 60) -> str:
    """The view's diagram as inline SVG markup (no XML prolog)."""
    graph = sequence_diagram(
        trace, layers=view.layers, title=title, fold_pings=False, max_label=max_label
    )
    return _PROLOG.sub("", graph.pipe(format="svg").decode("utf-8"), count=1)


def view_json(
    trace: Trace, view: View, index_of: dict[int, int], title: str | None, max_label: int = 60
) -> dict[str, Any]:
    shown = Trace(trace.lifelines, (e for e in trace.events if view.keep(e)))
    _, rows = diagram_rows(shown, view.layers, fold_pings=False)
    return {
        "name": view.name,
        "description": view.description,
        "svg": svg_text(shown, view, title, max_label) if len(shown) else "",
        "rows": [
            {
                "events": [index_of[id(e)] for e in row.events],
                "number": row.step,
                "label": row.label,
            }
            for row in rows
        ],
    }


def document(
    trace: Trace,
    *,
    title: str | None = None,
    views: Iterable[str] | None = None,
    max_label: int = 44,
    redact: bool = False,
) -> dict[str, Any]:
    """The step-through document of ``trace`` (see the module docstring).

    Labels are cut at ``max_label`` characters (shorter than in a stand-alone diagram:
    the panel shows every byte anyway, and narrow columns keep the diagram on screen).
    ``redact`` hides login secrets in the panel ([bytes_json][tutorial.render.stepper.bytes_json]).
    """
    steps = inspect_trace(trace)
    events = trace.events
    index_of = {id(e): i for i, e in enumerate(events)}
    names = list(views) if views is not None else default_views(trace)
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise ValueError(f"unknown views {unknown}; choose from {sorted(VIEWS)}")
    drawn = [view_json(trace, VIEWS[n], index_of, title, max_label) for n in names]
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": title or "",
        "lifelines": {lf.id: lf.label for lf in trace.lifelines},
        "events": [event_json(steps, s, redact=redact) for s in steps],
        "views": [v for v in drawn if any(r["events"] for r in v["rows"])],
    }


def drawn_document(
    trace: Trace,
    name: str,
    rows: Sequence[Sequence[int]],
    *,
    svg: str = "",
    description: str = "",
    redact: bool = False,
) -> dict[str, Any]:
    """A document for a diagram drawn elsewhere (the browser chat's live panel).

    One view whose row ``k`` shows the events ``rows[k]`` (indices in ``trace``); its
    ``svg`` may stay empty when the page already shows the diagram (the script's
    ``options.diagram``). The whole ``trace`` is inspected, so that links and compressed
    frames (whose deflate window spans the connection) are read as on the wire, but
    only the events the rows show, and the units that carried them or that they
    carried, are annotated and written out, renumbered in trace order
    ([inspect_events][tutorial.trace.inspection.inspect_events]).

    Args:
        trace: Every event the diagram's events may be linked to (a session's events).
        name: The view's name (``chat``, ``packets``, ``frames``).
        rows: For each row of the diagram, the indices in ``trace`` of its events.
        svg: The diagram, if the script is to draw it itself.
        description: One line on what the view shows.
        redact: Hide login secrets ([bytes_json][tutorial.render.stepper.bytes_json]).

    Returns:
        The step-through document (see the module docstring).
    """
    steps = inspect_events(trace, (i for row in rows for i in row))
    new = {old: n for n, old in enumerate(steps)}

    def renumber(indices: Iterable[int]) -> list[int]:
        return [new[j] for j in indices if j in new]

    events = []
    for old, step in steps.items():
        event = event_json(steps, step, redact=redact)
        event["index"] = new[old]
        for key in ("carried_by", "carries", "family"):
            event[key] = renumber(event[key])
        events.append(event)
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": "",
        "lifelines": {lf.id: lf.label for lf in trace.lifelines},
        "events": events,
        "views": [
            {
                "name": name,
                "description": description,
                "svg": svg,
                "rows": [{"events": renumber(row), "number": None, "label": ""} for row in rows],
            }
        ],
    }


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


# -- the script and its style ----------------------------------------------------------


def asset(name: str) -> str:
    """``inspector.js`` or ``inspector.css``, shipped in ``tutorial/render/static``."""
    return resources.files("tutorial.render").joinpath("static", name).read_text("utf-8")


def static_html(doc: dict[str, Any], *, height: int | None = None, view: str | None = None) -> str:
    """A page fragment: the document embedded as JSON, for the script to mount.

    Without the script the fragment still shows the first view's diagram.
    """
    data = to_json(doc).replace("</", "<\\/")
    first = doc["views"][0]["svg"] if doc["views"] else ""
    style = f' data-height="{height}"' if height else ""
    if view and any(v["name"] == view for v in doc["views"]):
        style += f' data-view="{view}"'  # the view to open with (a known name, no escaping)
    return (
        f'<div class="trace-inspector"{style}>'
        f'<script type="application/json" class="trace-inspector-data">{data}</script>'
        f'<div class="ti-fallback">{first}</div></div>'
    )


__all__ = [
    "FORMAT",
    "VIEWS",
    "View",
    "asset",
    "bytes_json",
    "default_views",
    "document",
    "drawn_document",
    "static_html",
    "to_json",
]
