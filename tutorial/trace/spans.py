"""Server-side spans: the chat server's own steps, recorded into a :class:`Trace`.

The teaching server calls its ``span`` hook at the inner steps of a handler
(``self._trace(kind, label, step=..., target=..., fields=...)``).
:class:`ServerSpans` is such a hook::

    spans = ServerSpans(trace, rooms_lifeline="rooms", sid_names=tap.sid_names)
    server = ChatServer(config, span=spans)

What each kind becomes:

* ``"step"``: a note on the server lifeline, with the seed's step number
  (diagram 3's "2. validate message / add metadata", diagram 4's "1. Validate room").
* ``"rooms"``: a grey dashed message between the server and the Room State lifeline
  (diagram 4's steps 3 and 4; ``reply=True`` draws it from Room State back to the
  server). Without a ``rooms_lifeline`` it is a note on the server.
* ``"error"``: a red note on the server: the failure the server is about to answer.
* ``"app"``: skipped by default, because the wire already shows those messages (and the
  tap sees them a little later than the server sends them, so recording both would
  make the order depend on the scheduler). ``include_app=True`` records them as
  ``app`` messages to the client the ``target`` sid belongs to (``sid_names``).

Every hook call is synchronous and cheap, and none can raise into the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace

log = logging.getLogger("tutorial.trace.spans")


class ServerSpans:
    """A callable ``span`` hook for :class:`~tutorial.chat.server.ChatServer`."""

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
        #: False: the hook records nothing (the server runs as usual).
        self.enabled = True
        self.failures: list[str] = []
        trace.add_lifeline(server_lifeline, server_label, "server")
        if rooms_lifeline is not None:
            trace.add_lifeline(rooms_lifeline, rooms_label, "room")

    def __call__(
        self,
        kind: str,
        label: str,
        *,
        step: int | None = None,
        target: str | None = None,
        fields: Mapping[str, Any] | None = None,
        reply: bool = False,
        **_: Any,
    ) -> None:
        if not self.enabled:
            return
        try:
            self._span(kind, label, step, target, dict(fields or {}), reply)
        except Exception as exc:  # a trace must never break the server
            self.failures.append(f"{type(exc).__name__}: {exc}")
            log.debug("span failed", exc_info=exc)

    def _span(
        self,
        kind: str,
        label: str,
        step: int | None,
        target: str | None,
        fields: dict[str, Any],
        reply: bool,
    ) -> None:
        label = label.replace("\n", " ")
        if kind == "step":
            self.trace.note(self.server, label, step=step, fields=fields)
        elif kind == "rooms":
            if self.rooms is None:
                self.trace.note(self.server, label, step=step, fields=fields)
                return
            source, dest = (self.rooms, self.server) if reply else (self.server, self.rooms)
            self.trace.record(source, dest, Layer.APP, label, kind="note", step=step, fields=fields)
        elif kind == "error":
            if target is not None and target in self.sid_names:
                fields = {**fields, "to": self.sid_names[target]}
            self.trace.note(self.server, label, kind="error", step=step, fields=fields)
        elif kind == "app" and self.include_app:
            client = self.sid_names.get(target or "")
            if client is None:
                self.trace.note(self.server, label, step=step, fields=fields)
            else:
                self.trace.add_lifeline(client, client, "client")
                self.trace.record(self.server, client, Layer.APP, label, step=step, fields=fields)


__all__ = ["ServerSpans"]
