"""The server's span hook: what the teaching server says about its own inner steps.

The chat server draws nothing and knows no trace. At the named steps of its handlers
(seed diagram 3's "2. validate message / add metadata", diagram 4's "1. Validate
room", ...) it calls every hook added with
[ChatServer.add_span_hook][tutorial.chat.server.ChatServer.add_span_hook] with one
[Span][tutorial.protocol.spans.Span]. Observers plug in there: the scenarios' trace
recorder ([ServerSpans][tutorial.trace.spans.ServerSpans]) and the browser's live
diagram ([tutorial.live][]). What each kind becomes in a trace is decided in one place,
[tutorial.trace.spans.span_note][].

A hook is called synchronously, in the handler's task: it must be cheap and must not
raise (the server catches nothing for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class SpanKind(StrEnum):
    """What the server is telling."""

    STEP = "step"
    """One of the seed's numbered steps, done by the server on its own."""
    ROOMS = "rooms"
    """A change to the room state (join, member list): seed diagram 4, steps 3 and 4."""
    ERROR = "error"
    """A failure the server is about to answer with an ``error`` event."""
    APP = "app"
    """A chat event the server is about to send (the wire shows it too)."""


@dataclass(frozen=True)
class Span:
    """One inner step of the server.

    ``sid`` is the Socket.IO session whose event the server is handling (None outside
    a handler); ``target`` is the session the step is addressed to, when it is one
    (an ``error``, a reply); ``reply`` draws a ``rooms`` step from the room state back
    to the server.
    """

    kind: SpanKind
    label: str
    step: int | None = None
    target: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    reply: bool = False
    sid: str | None = None

    @property
    def client_sid(self) -> str | None:
        """The session this step is for: its ``target``, else the one being handled."""
        return self.target if self.target is not None else self.sid


class SpanHook(Protocol):
    """Anything called with each [Span][tutorial.protocol.spans.Span]."""

    def __call__(self, span: Span) -> None: ...


__all__ = ["Span", "SpanHook", "SpanKind"]
