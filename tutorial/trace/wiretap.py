"""The wiretap: a TCP proxy that records every byte it relays into a trace.

A scenario puts it between the clients and the server:

    tap = Wiretap(trace, upstream=("127.0.0.1", server.port))
    await tap.start()
    tap.name_next_connection("alice")      # the next new client session is alice's
    client = ChatClient(tap.url, "alice", "alice")
    ...
    await tap.stop()

The relaying is [LoopbackProxy][tutorial.trace.proxy.LoopbackProxy]'s: bytes are copied
both ways, unchanged, as they arrive. A copy of each chunk goes to one
[ConnectionDecoder][tutorial.protocol.stream.ConnectionDecoder] per connection, and
every [WireEvent][tutorial.protocol.stream.WireEvent] it returns becomes one trace
event, described by [tutorial.trace.fields][] (its layer, ``label = str(event)``, a
small dict of decoded ``fields`` and the exact ``raw`` bytes). TCP connect and close
are ``tcp`` events. Nothing that goes wrong while decoding or recording can break the
relayed connection: a decoder failure becomes an ``error`` event, and any exception in
recording is caught (and counted in ``failures``).

Which lifeline is which client is learned from the wire ([tutorial.trace.naming][]):
name the next connection right before the client connects, and connect clients one at
a time (a tap behind a load balancer may instead name each new session from its first
request, ``name_request``: by the ``X-Real-IP`` header the balancer adds). Events of a
connection are held back until its lifeline is known (at its first
complete HTTP request); they keep the time at which their bytes were read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tutorial.protocol.http import HttpRequest
from tutorial.protocol.layers import C2S, S2C, DecodeError, Direction, Layer
from tutorial.protocol.stream import ConnectionDecoder, WireEvent
from tutorial.trace.fields import describe
from tutorial.trace.model import Trace
from tutorial.trace.naming import KEEP, WEB_LABEL, WEB_LIFELINE, Lifelines
from tutorial.trace.proxy import LoopbackProxy, Relayed

log = logging.getLogger("tutorial.trace.wiretap")

LINGER = 2.0
"""How long a connection may outlive the first of its sides to finish (seconds)."""

MAX_FAILURES = 100
"""How many recording failures a tap keeps (the most recent)."""


@dataclass
class TappedConnection(Relayed):
    """One TCP connection through the tap: its decoder, its lifeline, its counters."""

    peer_port: int = 0
    decoder: ConnectionDecoder = field(default_factory=ConnectionDecoder)
    lifeline: str | None = None
    pending: list[tuple[float, Direction, WireEvent | str]] = field(default_factory=list)
    decoding: bool = True  # False after the decoder itself failed
    held: bool = False  # fault injection: server -> client bytes are held back
    release: asyncio.Event = field(default_factory=asyncio.Event)


async def _released(conn: TappedConnection) -> None:
    await conn.release.wait()


async def _opened(gate: asyncio.Event) -> None:
    await gate.wait()


class Wiretap(LoopbackProxy[TappedConnection]):
    """An asyncio TCP proxy on ``host:port`` (port 0: a free one) in front of ``upstream``.

    ``per_request=True`` names lifelines request by request, for a browser's pooled
    connections (see [tutorial.trace.naming][]). A tap in front of a long-running server
    bounds what it remembers: ``keep_closed`` closed connections, ``keep_sids`` sids.
    """

    def __init__(
        self,
        trace: Trace,
        upstream: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        server_lifeline: str = "server",
        server_label: str = "Server",
        default_name: str | None = None,
        per_request: bool = False,
        keep_closed: int | None = None,
        keep_sids: int | None = None,
        name_request: Callable[[HttpRequest], str | None] | None = None,
    ) -> None:
        super().__init__(upstream, host, port, keep_closed=keep_closed)
        self.trace = trace
        self.server_lifeline = server_lifeline
        self.server_label = server_label
        self.names = Lifelines(
            default_name, per_request=per_request, name_request=name_request, keep_sids=keep_sids
        )
        self.failures: list[str] = []
        """Exceptions caught while recording (the relayed bytes were not affected; the
        last ``MAX_FAILURES``)."""
        self.recording = True
        """False: keep relaying, record nothing (e.g. while a scenario tears down)."""
        self._upstream_open = asyncio.Event()
        self._upstream_open.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- naming ----------------------------------------------------------------------

    @property
    def sid_names(self) -> dict[str, str]:
        """Engine.IO and Socket.IO sids -> lifeline id, learned from the wire."""
        return self.names.sid_names

    @property
    def default_name(self) -> str | None:
        """The lifeline of a new session when no name is queued (None: ``client-N``)."""
        return self.names.default_name

    @default_name.setter
    def default_name(self, name: str | None) -> None:
        self.names.default_name = name

    def name_next_connection(self, name: str, label: str | None = None) -> None:
        """The next connection that starts a new session is ``name``'s (FIFO)."""
        self.names.name_next(name, label)

    def lifeline_of(self, sid: str) -> str | None:
        return self.sid_names.get(sid)

    def connections_of(self, lifeline: str) -> list[TappedConnection]:
        """The connections (still kept) whose lifeline is ``lifeline``."""
        return [c for c in self.connections if c.lifeline == lifeline]

    # -- fault injection -------------------------------------------------------------

    def hold_server_bytes(self) -> None:
        """Stop relaying server→client bytes on every open connection (a silent network).

        The bytes wait in the tap; new connections are not affected. Used by the
        state-machine chapter to make a client's heartbeat time out.
        """
        for conn in self.connections:
            conn.held = True

    def release_server_bytes(self) -> None:
        for conn in self.connections:
            conn.held = False
            conn.release.set()

    def hold_new_connections(self) -> None:
        """Accept new connections but connect them to the server only at
        [release_new_connections][tutorial.trace.wiretap.Wiretap.release_new_connections].

        The state-machine chapter restarts its server while the client retries: held,
        the client's next attempt waits for the server instead of racing its restart,
        so a run shows one refused attempt however busy the machine is.
        """
        self._upstream_open.clear()

    def release_new_connections(self) -> None:
        """Connect the held connections to the server, and new ones at once again."""
        self._upstream_open.set()

    # -- counters ----------------------------------------------------------------------

    def bytes_by_lifeline(self) -> dict[str, tuple[int, int]]:
        """``{lifeline: (client→server bytes, server→client bytes)}``."""
        out: dict[str, tuple[int, int]] = {}
        for conn in self.connections:
            name = conn.lifeline or "?"
            a, b = out.get(name, (0, 0))
            out[name] = (a + conn.bytes_in, b + conn.bytes_out)
        return out

    # -- the relay's hooks -------------------------------------------------------------

    def opened(self, number: int, peer_port: int) -> TappedConnection:
        conn = TappedConnection(number, peer_port=peer_port)
        self._observe_tcp(conn, C2S, "TCP connect")
        return conn

    def refused(self, conn: TappedConnection, exc: OSError) -> None:
        self._observe_tcp(conn, S2C, f"TCP refused: {exc.strerror or exc}", error=True)

    def connecting(self, conn: TappedConnection) -> Awaitable[None] | None:
        return None if self._upstream_open.is_set() else _opened(self._upstream_open)

    def gate(self, conn: TappedConnection, direction: Direction) -> Awaitable[None] | None:
        if direction is S2C and conn.held:
            conn.release.clear()
            return _released(conn)
        return None

    def linger(self, conn: TappedConnection) -> float | None:
        return 0 if conn.held else LINGER

    def received(self, conn: TappedConnection, direction: Direction, data: bytes) -> None:
        if not self.recording:
            return
        try:
            t = self.trace.elapsed()
            for event in self._decode(conn, direction, data):
                self._event(conn, t, direction, event)
        except Exception as exc:  # never let recording break the connection
            self._failed(exc)

    def ended(self, conn: TappedConnection, direction: Direction) -> None:
        if not self.recording:
            return
        try:
            t = self.trace.elapsed()
            for event in self._decode(conn, direction, None):
                self._event(conn, t, direction, event)
            side = "client" if direction is C2S else "server"
            self._observe_tcp(conn, direction, f"TCP close ({side} FIN)")
        except Exception as exc:
            self._failed(exc)

    def closed(self, conn: TappedConnection) -> None:
        self._flush_pending(conn)

    # -- recording ---------------------------------------------------------------------

    def _decode(
        self, conn: TappedConnection, direction: Direction, data: bytes | None
    ) -> list[WireEvent]:
        """The decoder's events; a decoder that raises is switched off for this connection."""
        if not conn.decoding:
            if data:
                error = DecodeError(Layer.TCP, "not decoded: the decoder failed earlier", data)
                return [WireEvent(direction, Layer.TCP, error, data)]
            return []
        d = conn.decoder
        try:
            if data is None:
                return d.client_eof() if direction is C2S else d.server_eof()
            return d.client_data(data) if direction is C2S else d.server_data(data)
        except Exception as exc:
            conn.decoding = False
            reason = f"decoder failed: {type(exc).__name__}: {exc}"
            error = DecodeError(Layer.TCP, reason, data or b"")
            return [WireEvent(direction, Layer.TCP, error, data or b"")]

    def _observe_tcp(
        self, conn: TappedConnection, direction: Direction, label: str, *, error: bool = False
    ) -> None:
        try:
            t = self.trace.elapsed()
            self._event(conn, t, direction, label if not error else "!" + label)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.failures.append(f"{type(exc).__name__}: {exc}")
        del self.failures[:-MAX_FAILURES]
        log.debug("wiretap: recording failed", exc_info=exc)

    def _event(
        self, conn: TappedConnection, t: float, direction: Direction, event: WireEvent | str
    ) -> None:
        request = (
            event.event
            if isinstance(event, WireEvent) and isinstance(event.event, HttpRequest)
            else None
        )
        if self.names.per_request and direction is C2S and request is not None:
            lifeline = self.names.for_request(conn.lifeline, request)
            if lifeline == WEB_LIFELINE:
                self.trace.add_lifeline(self.server_lifeline, self.server_label, "server")
                self.trace.add_lifeline(WEB_LIFELINE, WEB_LABEL, "client")
                conn.lifeline = WEB_LIFELINE
                self._flush_pending(conn)  # the TCP connect that waited for a name
            elif lifeline != KEEP:
                conn.lifeline = None  # resolved below from this request
        if conn.lifeline is None:
            conn.pending.append((t, direction, event))
            if request is not None:
                self._resolve(conn, request.query.get("sid"), request)
            elif isinstance(event, WireEvent):
                self._resolve(conn, None)
            return
        self._record(conn, t, direction, event)

    def _resolve(
        self, conn: TappedConnection, sid: str | None, request: HttpRequest | None = None
    ) -> None:
        """Give the connection its lifeline, then record what waited for it."""
        name, label = self.names.new_session(sid, request)
        conn.lifeline = name
        self.trace.add_lifeline(self.server_lifeline, self.server_label, "server")
        self.trace.add_lifeline(name, label or name, "client")
        self._flush_pending(conn)

    def _flush_pending(self, conn: TappedConnection) -> None:
        if not conn.pending:
            return
        if conn.lifeline is None:
            self._resolve(conn, None)  # a connection that never said anything decodable
            return
        pending, conn.pending = conn.pending, []
        for t, direction, event in pending:
            try:
                self._record(conn, t, direction, event)
            except Exception as exc:
                self._failed(exc)

    def _record(
        self, conn: TappedConnection, t: float, direction: Direction, event: WireEvent | str
    ) -> None:
        assert conn.lifeline is not None
        client, server = conn.lifeline, self.server_lifeline
        source, target = (client, server) if direction is C2S else (server, client)
        if isinstance(event, str):  # a TCP event
            error = event.startswith("!")
            self.trace.record(
                source,
                target,
                Layer.TCP,
                event.lstrip("!"),
                fields={"connection": conn.number, "port": conn.peer_port},
                kind="error" if error else "message",
                phase="ws" if conn.decoder.is_websocket else "http",
                t=t,
            )
            return
        if direction is S2C:
            self.names.learn(conn.lifeline, event.event)
        d = describe(event, direction, conn.decoder.is_websocket)
        self.trace.record(
            source,
            target,
            event.layer,
            d.label,
            fields=d.fields,
            raw=event.raw,
            kind=d.kind,
            phase=d.phase,
            status=d.status,
            t=t,
        )


__all__ = ["LINGER", "TappedConnection", "Wiretap"]
