"""Which lifeline a tapped connection belongs to, learned from what is on the wire.

Clients are not told apart by address (every client is 127.0.0.1, and HTTP
long-polling spreads one session over several TCP connections), but by Engine.IO
session:

1. When a connection's first HTTP request carries ``sid=...`` (a polling request, or
   the WebSocket upgrade of a polling session), it belongs to the lifeline that
   session was opened on.
2. Otherwise it starts a new session: the name ``name_request(request)`` gives (a
   tap behind a load balancer names clients by the ``X-Real-IP`` header the balancer
   adds), else the next name given to
   [name_next][tutorial.trace.naming.Lifelines.name_next] (first in, first out), else
   ``default_name``, else a fresh ``client-N``.
3. The server's Engine.IO OPEN packet (``0{"sid":...}``) binds that sid to the
   connection's lifeline; the Socket.IO CONNECT reply (``40{"sid":...}``) binds the
   Socket.IO sid too. ``sid_names`` maps both
   to lifeline ids, which is what the server's spans need to find a client's column.

With ``per_request=True`` (a browser, which sends any request on any of its pooled
HTTP/1.1 connections) the lifeline is chosen again at every request: a request with a
known ``sid`` goes to that session's lifeline, an Engine.IO handshake starts a new one,
and anything else (the page, static files) goes to the ``web`` lifeline. A WebSocket
connection keeps the lifeline of its upgrade.

This works for any client (the teaching client, the official JS client, a browser),
since it relies only on what is on the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from tutorial.protocol.engineio import EioPacket, EioPacketType
from tutorial.protocol.http import HttpRequest
from tutorial.protocol.socketio import SioPacket, SioPacketType

ENGINEIO_PATH = "/socket.io/"
"""Where Engine.IO requests go; other requests (the page, static files) are not a session.
"""
WEB_LIFELINE = "web"
"""The lifeline of plain HTTP requests in ``per_request`` mode, and its label."""
WEB_LABEL = "page & static files"

KEEP = "\0keep"
"""What [for_request][tutorial.trace.naming.Lifelines.for_request] answers when the
connection keeps its lifeline.
"""


class Lifelines:
    """The naming state of one tap: queued names, learned sids, automatic numbers."""

    def __init__(
        self,
        default_name: str | None = None,
        *,
        per_request: bool = False,
        name_request: Callable[[HttpRequest], str | None] | None = None,
        keep_sids: int | None = None,
    ) -> None:
        self.default_name = default_name
        """The lifeline of a new session when no name is queued (None: ``client-N``)."""
        self.per_request = per_request
        """Choose the lifeline at every HTTP request (a browser's pooled connections)."""
        self.name_request = name_request
        """Names a new session from its first HTTP request (None: not by request)."""
        self.keep_sids = keep_sids
        """How many sids ``sid_names`` remembers (None: all); past it, the ones learned
        longest ago are forgotten (a long-running tap's memory stays bounded)."""
        self.sid_names: dict[str, str] = {}
        """Engine.IO and Socket.IO sids -> lifeline id, learned from the wire (in the
        order learned)."""
        self._names: deque[tuple[str, str | None]] = deque()
        self._auto = 0

    def name_next(self, name: str, label: str | None = None) -> None:
        """The next connection that starts a new session is ``name``'s (FIFO)."""
        self._names.append((name, label))

    def new_session(
        self, sid: str | None, request: HttpRequest | None = None
    ) -> tuple[str, str | None]:
        """The lifeline (and label) of a connection whose first request carries ``sid``."""
        name = self.sid_names.get(sid) if sid else None
        if name is None and request is not None and self.name_request is not None:
            name = self.name_request(request)
        if name is not None:
            return name, None
        if self._names:
            return self._names.popleft()
        if self.default_name is not None:
            return self.default_name, None
        self._auto += 1
        return f"client-{self._auto}", None

    def for_request(self, current: str | None, request: HttpRequest) -> str | None:
        """``per_request`` mode: the lifeline this request belongs to.

        ``WEB_LIFELINE`` for a request outside
        Engine.IO; None when it must be resolved from the request's ``sid`` (a new
        session, or another session's request); ``KEEP`` when
        the connection's current lifeline is right.
        """
        if not request.target.startswith(ENGINEIO_PATH):
            return WEB_LIFELINE
        if current is None:
            return None
        sid = request.query.get("sid")
        if sid is None or self.sid_names.get(sid) != current:
            return None
        return KEEP

    def learn(self, lifeline: str, decoded: Any) -> None:
        """Bind the sids the server hands out (its OPEN and CONNECT replies) to ``lifeline``."""
        if isinstance(decoded, EioPacket) and decoded.type is EioPacketType.OPEN:
            opened = decoded.open_payload
            if opened is not None:
                self._remember(opened.sid, lifeline)
        elif isinstance(decoded, SioPacket) and decoded.type is SioPacketType.CONNECT:
            data = decoded.data
            if isinstance(data, dict) and isinstance(data.get("sid"), str):
                self._remember(data["sid"], lifeline)

    def _remember(self, sid: str, lifeline: str) -> None:
        self.sid_names.pop(sid, None)  # re-learned: now the newest
        self.sid_names[sid] = lifeline
        if self.keep_sids is not None:
            while len(self.sid_names) > self.keep_sids:
                del self.sid_names[next(iter(self.sid_names))]


__all__ = ["ENGINEIO_PATH", "KEEP", "WEB_LABEL", "WEB_LIFELINE", "Lifelines"]
