"""Server-side spans: the chat server's own steps, recorded into a trace.

The teaching server calls its span hooks with a [Span][tutorial.protocol.spans.Span] at
the inner steps of a handler. [ServerSpans][tutorial.trace.spans.ServerSpans] is such a
hook:

    spans = ServerSpans(trace, rooms_lifeline="rooms", sid_names=tap.sid_names)
    server = ChatServer(config, span=spans)

What each kind becomes is decided here, once, by
[span_note][tutorial.trace.spans.span_note] (the live diagram uses it too):

* ``step``: a note on the server lifeline, with the seed's step number
  (diagram 3's "2. validate message / add metadata", diagram 4's "1. Validate room").
* ``rooms``: a grey dashed message between the server and the Room State lifeline
  (diagram 4's steps 3 and 4; ``reply=True`` draws it from Room State back to the
  server). Without a rooms lifeline it is a note on the server.
* ``error``: a red note on the server: the failure the server is about to answer.
* ``app``: skipped by default, because the wire already shows those messages (and the
  tap sees them a little later than the server sends them, so recording both would
  make the order depend on the scheduler). ``include_app=True`` records them as
  ``app`` messages to the client the ``target`` sid belongs to (``sid_names``).

Every hook call is synchronous and cheap, and none can raise into the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tutorial.protocol.layers import Layer
from tutorial.protocol.spans import Span, SpanKind
from tutorial.trace.model import Trace

log = logging.getLogger("tutorial.trace.spans")


@dataclass(frozen=True)
class SpanNote:
    """What one span becomes in a trace: an event from ``source`` to ``target``
    (the same lifeline for a note), of ``kind`` ``note`` or ``error`` or ``message``."""

    source: str
    target: str
    label: str
    kind: str
    step: int | None
    fields: dict[str, Any]
    client: str | None = None  # the client lifeline an ``app`` message goes to


def span_note(
    span: Span,
    server: str,
    rooms: str | None = None,
    sid_names: Mapping[str, str] | None = None,
    *,
    include_app: bool = False,
) -> SpanNote | None:
    """The trace event a span becomes (None: it is not drawn)."""
    label = span.label.replace("\n", " ")
    fields = dict(span.fields)
    names = sid_names or {}
    if span.kind is SpanKind.STEP or (span.kind is SpanKind.ROOMS and rooms is None):
        return SpanNote(server, server, label, "note", span.step, fields)
    if span.kind is SpanKind.ROOMS:
        assert rooms is not None
        source, target = (rooms, server) if span.reply else (server, rooms)
        return SpanNote(source, target, label, "note", span.step, fields)
    if span.kind is SpanKind.ERROR:
        if span.target is not None and span.target in names:
            fields = {**fields, "to": names[span.target]}
        return SpanNote(server, server, label, "error", span.step, fields)
    if span.kind is SpanKind.APP and include_app:
        client = names.get(span.target or "")
        if client is None:
            return SpanNote(server, server, label, "note", span.step, fields)
        return SpanNote(server, client, label, "message", span.step, fields, client=client)
    return None


class ServerSpans:
    """A span hook for [ChatServer][tutorial.chat.server.ChatServer] that records into
    a trace."""

    def __init__(
        self,
        trace: Trace,
        server_lifeline: str = "server",
        rooms_lifeline: str | None = None,
        sid_names: Mapping[str, str] | None = None,
        *,
        include_app: bool = False,
        server_label: str = "Server",
        rooms_label: str = "Room State",
    ) -> None:
        self.trace = trace
        self.server = server_lifeline
        self.rooms = rooms_lifeline
        self.sid_names: Mapping[str, str] = sid_names if sid_names is not None else {}
        self.include_app = include_app
        self.enabled = True
        """False: the hook records nothing (the server runs as usual)."""
        self.failures: list[str] = []
        trace.add_lifeline(server_lifeline, server_label, "server")
        if rooms_lifeline is not None:
            trace.add_lifeline(rooms_lifeline, rooms_label, "room")

    def __call__(self, span: Span) -> None:
        if not self.enabled:
            return
        try:
            note = span_note(
                span, self.server, self.rooms, self.sid_names, include_app=self.include_app
            )
            if note is None:
                return
            if note.client is not None:
                self.trace.add_lifeline(note.client, note.client, "client")
            layer = Layer.APP
            if note.source == note.target:
                self.trace.note(
                    note.source, note.label, kind=note.kind, step=note.step, fields=note.fields
                )
            else:
                self.trace.record(
                    note.source,
                    note.target,
                    layer,
                    note.label,
                    kind=note.kind,
                    step=note.step,
                    fields=note.fields,
                )
        except Exception as exc:  # a trace must never break the server
            self.failures.append(f"{type(exc).__name__}: {exc}")
            log.debug("span failed", exc_info=exc)


__all__ = ["ServerSpans", "SpanNote", "span_note"]
