"""The live trace: a bounded trace for a long-running server, kept per client lifeline.

The live view's wiretap records every byte a browser exchanges with the chat into one
[LiveTrace][tutorial.live.trace.LiveTrace], one lifeline per Engine.IO session.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace, TraceEvent

SERVER_LIFELINE = "server"
"""The server's lifeline in the live trace."""
KEEP_EVENTS = 2000
"""What the live trace keeps: events per client session, and sessions."""
KEEP_SESSIONS = 200


class LiveTrace(Trace):
    """A bounded trace for a long-running server, kept per client lifeline.

    The wiretap only calls ``add_lifeline``, ``record`` and ``elapsed``; every recorded
    event is kept in its client's bucket instead of one list.
    Each client lifeline keeps its last ``keep_events`` events (the server lifeline is
    shared: an event belongs to its client end); at most ``keep_sessions`` client
    lifelines are kept, the oldest are forgotten first. ``ignore`` drops a
    lifeline for good (the ``/trace`` connections). ``subscribe`` calls back,
    synchronously, on every event recorded for a lifeline.
    """

    def __init__(
        self,
        server_lifeline: str = SERVER_LIFELINE,
        *,
        keep_events: int = KEEP_EVENTS,
        keep_sessions: int = KEEP_SESSIONS,
    ) -> None:
        super().__init__()
        self.server_lifeline = server_lifeline
        self.keep_events = keep_events
        self.keep_sessions = keep_sessions
        self.ignored: set[str] = set()
        self._sessions: OrderedDict[str, deque[tuple[int, TraceEvent]]] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._listeners: dict[str, set[Callable[[], None]]] = {}
        self._seq = itertools.count()

    def _client_of(self, source: str, target: str) -> str:
        return target if source == self.server_lifeline else source

    def _append(self, event: TraceEvent) -> None:
        self._store(self._client_of(event.source, event.target), event)

    def note_for(
        self,
        client: str,
        label: str,
        *,
        kind: str = "note",
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """A server step taken for ``client``: a note on the server, in its events."""
        event = self.new_event(
            self.server_lifeline,
            self.server_lifeline,
            Layer.APP,
            label.replace("\n", " "),
            fields=fields,
            kind=kind,
        )
        self._store(client, event)

    def _store(self, client: str, event: TraceEvent) -> None:
        if client in self.ignored:
            return
        with self._lock:
            events = self._sessions.get(client)
            if events is None:
                events = self._sessions[client] = deque(maxlen=self.keep_events)
                while len(self._sessions) > self.keep_sessions:
                    old, _ = self._sessions.popitem(last=False)
                    self._counts.pop(old, None)
            self._sessions.move_to_end(client)  # the least recently active goes first
            events.append((next(self._seq), event))
            self._counts[client] = self._counts.get(client, 0) + 1
        for callback in list(self._listeners.get(client, ())):
            with contextlib.suppress(Exception):
                callback()
        if self._waiters:
            self._wake(event)

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """Every kept event, in recording order."""
        with self._lock:
            pairs = sorted(itertools.chain.from_iterable(self._sessions.values()))
        return tuple(event for _, event in pairs)

    def __len__(self) -> int:
        return len(self.events)

    def events_of(self, lifeline: str) -> tuple[TraceEvent, ...]:
        """The kept events between this client lifeline and the server."""
        with self._lock:
            return tuple(event for _, event in self._sessions.get(lifeline, ()))

    def total(self, lifeline: str) -> int:
        """How many events were ever recorded for this lifeline (kept or not)."""
        return self._counts.get(lifeline, 0)

    def ignore(self, lifeline: str) -> None:
        """Forget this lifeline's events, and record none of it from now on."""
        with self._lock:
            self.ignored.add(lifeline)
            self._sessions.pop(lifeline, None)
            self._counts.pop(lifeline, None)

    def subscribe(self, lifeline: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on every event of ``lifeline``; returns the unsubscriber."""
        self._listeners.setdefault(lifeline, set()).add(callback)

        def unsubscribe() -> None:
            listeners = self._listeners.get(lifeline)
            if listeners is not None:
                listeners.discard(callback)
                if not listeners:
                    del self._listeners[lifeline]

        return unsubscribe


__all__ = ["KEEP_EVENTS", "KEEP_SESSIONS", "SERVER_LIFELINE", "LiveTrace"]
