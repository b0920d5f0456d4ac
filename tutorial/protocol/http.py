"""HTTP/1.1 on one TCP connection, decoded with h11, up to the WebSocket upgrade.

A Socket.IO client speaks HTTP first: long-polling is a series of ``GET`` and ``POST``
requests, and the WebSocket transport starts with one ``GET`` carrying
``Upgrade: websocket``, answered by ``101 Switching Protocols``. After that response
the same TCP connection carries WebSocket frames (RFC 6455 section 4.1: "Once the
client's opening handshake has been sent, the client MUST wait for a response from
the server before sending any further data").

h11 is a protocol *endpoint*: one ``h11.Connection`` plays the client or the server,
and it must see both halves of the conversation. It reads a response only once it knows
which request it answers (the answer to ``HEAD`` has no body, a ``101`` switches
protocols only if the request asked to), and it reads the next request on a keep-alive
connection only once the previous response has been sent. A wiretap sees both halves,
so [HttpConnectionDecoder][tutorial.protocol.http.HttpConnectionDecoder] keeps one h11 view per
direction:

- [RequestDecoder][tutorial.protocol.http.RequestDecoder] reads client→server bytes with h11 in
the *server* role;
- [ResponseDecoder][tutorial.protocol.http.ResponseDecoder] reads server→client bytes with h11 in
the *client* role;

and every h11 event one of them reads is *mirrored* into the other with
``Connection.send`` (the bytes ``send`` returns are thrown away). When both views reach
the end of a request/response cycle they start the next one (``start_next_cycle``).
After a ``101``, both views are in h11's ``SWITCHED_PROTOCOL`` state: the bytes h11
received but did not parse (``Connection.trailing_data``) are WebSocket bytes, and
[take_trailing_data][tutorial.protocol.http.HttpConnectionDecoder.take_trailing_data]
hands them over to the frame decoder.

Usage:

    http = HttpConnectionDecoder()
    events = http.client_data(chunk)   # or http.server_data(chunk), or
    pairs = http.receive(Direction.CLIENT_TO_SERVER, chunk)  # (direction, event) pairs
    if http.switched:
        client_ws_bytes, server_ws_bytes = http.take_trailing_data()
        # from now on, feed every further chunk to a websocket.FrameDecoder
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import h11

from tutorial.protocol.layers import DecodeError, Direction, Layer

Headers = tuple[tuple[str, str], ...]


def find_header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name``; names compare case-insensitively (RFC 9110 5.1)."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _headers(head: h11.Request | h11.Response | h11.InformationalResponse) -> Headers:
    # raw_items() keeps the casing that was on the wire; header bytes are latin-1 by RFC.
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers.raw_items())


@dataclass(frozen=True)
class HttpRequest:
    """One complete request: request line, headers, the whole body, and its exact bytes."""

    method: str
    target: str
    headers: Headers
    body: bytes = b""
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        return find_header(self.headers, name)

    @property
    def query(self) -> dict[str, str]:
        """The query string of the target, e.g. ``{"EIO": "4", "transport": "polling"}``."""
        return dict(parse_qsl(urlsplit(self.target).query))

    @property
    def wants_websocket(self) -> bool:
        """RFC 6455 4.1: an opening handshake carries ``Upgrade: websocket``."""
        return (self.header("upgrade") or "").lower() == "websocket"

    def __str__(self) -> str:
        return f"{self.method} {self.target}"


@dataclass(frozen=True)
class HttpResponse:
    """One complete response (or a 1xx informational one), body collected."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        return find_header(self.headers, name)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".rstrip()


HttpEvent = HttpRequest | HttpResponse | DecodeError


def _as_http11(event: h11.Event) -> h11.Event:
    """The event for h11 to *send*: h11 only writes HTTP/1.1, and 1.1 requires a Host."""
    if isinstance(event, h11.Request) and event.http_version != b"1.1":
        headers = list(event.headers.raw_items())
        if not any(name.lower() == b"host" for name, _ in headers):
            headers.append((b"Host", b""))
        return h11.Request(method=event.method, target=event.target, headers=headers)
    if isinstance(event, h11.Response | h11.InformationalResponse) and event.http_version != b"1.1":
        return type(event)(
            status_code=event.status_code, headers=event.headers.raw_items(), reason=event.reason
        )
    return event


class _DirectionDecoder:
    """One direction of the connection, read by one h11 view."""

    role: type[h11.CLIENT] | type[h11.SERVER]

    def __init__(self) -> None:
        self._conn = h11.Connection(self.role)
        self._fed = bytearray()  # bytes given to h11 and not yet part of a returned message
        self._head: h11.Request | h11.Response | None = None
        self._body = bytearray()
        self._errors: list[DecodeError] = []
        self._trailing = b""
        # Called with each h11 event this view reads; HttpConnectionDecoder points it at
        # the other view's mirror().
        self.on_event: Callable[[h11.Event], None] = lambda event: None
        self.failed = False
        self.switched = False

    def receive_data(self, data: bytes) -> list[HttpEvent]:
        """Decode what ``data`` completes. Alone, a view stops after one cycle (see module)."""
        self.feed(data)
        return self.drain()[0]

    def feed(self, data: bytes) -> None:
        if not data:
            return  # h11 reads b"" as end of file; that is eof()'s job
        if self.switched:
            self._trailing += data
        elif not self.failed:
            self._fed += data
            self._conn.receive_data(data)

    def eof(self) -> None:
        """The peer closed its half: a body read until close ends, a partial message fails."""
        if not (self.failed or self.switched):
            self._conn.receive_data(b"")

    def mirror(self, event: h11.Event) -> None:
        """Tell this view what the other direction said, so that h11 can follow along."""
        if self.failed or self.switched or isinstance(event, h11.ConnectionClosed):
            return
        try:
            self._conn.send(_as_http11(event))
        except h11.LocalProtocolError as exc:
            self._errors.append(self._fail(f"h11 cannot follow the peer: {exc}"))

    def take_trailing_data(self) -> bytes:
        """After the switch: the bytes that follow the HTTP part (WebSocket frames)."""
        data, self._trailing = self._trailing, b""
        return data

    def drain(self) -> tuple[list[HttpEvent], bool]:
        """Read every event h11 can give now. Returns them and whether anything moved."""
        events: list[HttpEvent] = list(self._errors)
        self._errors.clear()
        moved = bool(events)
        conn = self._conn
        while not (self.failed or self.switched):
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()  # keep-alive: the next request/response pair
                moved = True
            if self._waiting_for_peer():
                break
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                events.append(self._fail(str(exc)))
                moved = True
                break
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                break
            if event is h11.PAUSED:
                if conn.their_state is h11.SWITCHED_PROTOCOL:
                    self.switched = True
                    self._trailing = conn.trailing_data[0] + self._trailing
                    self._fed.clear()
                    moved = True
                break
            assert isinstance(event, h11.Event)  # NEED_DATA and PAUSED are handled above
            moved = True
            message = self._handle(event)
            self.on_event(event)
            if message is not None:
                events.append(message)
        return events, moved

    def _waiting_for_peer(self) -> bool:
        return False

    def _handle(self, event: h11.Event) -> HttpEvent | None:
        if isinstance(event, h11.Request | h11.Response):
            self._head, self._body = event, bytearray()
        elif isinstance(event, h11.Data):
            self._body += event.data
        elif isinstance(event, h11.InformationalResponse):
            return self._message(event, b"")
        elif isinstance(event, h11.EndOfMessage) and self._head is not None:
            head, self._head = self._head, None
            return self._message(head, bytes(self._body))
        return None

    def _take_raw(self) -> bytes:
        # Everything h11 has consumed so far and not yet attributed belongs to this message.
        end = len(self._fed) - len(self._conn.trailing_data[0])
        raw = bytes(self._fed[:end])
        del self._fed[:end]
        return raw

    def _message(self, head: h11.Event, body: bytes) -> HttpEvent:
        raw = self._take_raw()
        if isinstance(head, h11.Request):
            return HttpRequest(
                head.method.decode("ascii"),
                head.target.decode("latin-1"),
                _headers(head),
                body,
                raw,
            )
        assert isinstance(head, h11.Response | h11.InformationalResponse)
        return HttpResponse(
            head.status_code, head.reason.decode("latin-1"), _headers(head), body, raw
        )

    def _fail(self, reason: str) -> DecodeError:
        self.failed = True
        raw = bytes(self._fed)
        self._fed.clear()
        return DecodeError(Layer.HTTP, reason, raw)


class RequestDecoder(_DirectionDecoder):
    """Client→server bytes: h11 in the server role reads the requests."""

    role = h11.SERVER


class ResponseDecoder(_DirectionDecoder):
    """Server→client bytes: h11 in the client role reads the responses."""

    role = h11.CLIENT

    def _waiting_for_peer(self) -> bool:
        # h11 would read a response that answers no request (a server may send 408 first);
        # we wait until the request it answers has been mirrored into this view.
        return self._conn.our_state is h11.IDLE


class HttpConnectionDecoder:
    """Both directions of one HTTP/1.1 connection, each mirrored into the other."""

    def __init__(self) -> None:
        self.requests = RequestDecoder()
        self.responses = ResponseDecoder()
        self.requests.on_event = self.responses.mirror
        self.responses.on_event = self.requests.mirror

    def client_data(self, data: bytes) -> list[HttpEvent]:
        """Bytes the client sent. Returns the requests (and responses) they complete."""
        return [event for _, event in self.receive(Direction.CLIENT_TO_SERVER, data)]

    def server_data(self, data: bytes) -> list[HttpEvent]:
        """Bytes the server sent. Returns the responses (and requests) they complete."""
        return [event for _, event in self.receive(Direction.SERVER_TO_CLIENT, data)]

    def receive(self, direction: Direction, data: bytes) -> list[tuple[Direction, HttpEvent]]:
        """Bytes that went ``direction``; each event comes with the direction it went.

        A chunk from one side can complete a message of the other side: h11 reads a
        pipelined request only once the previous response has been seen.
        """
        self._side(direction).feed(data)
        return self._pump()

    def eof(self, direction: Direction) -> list[tuple[Direction, HttpEvent]]:
        """The side that sends ``direction`` closed the connection."""
        self._side(direction).eof()
        return self._pump()

    @property
    def switched(self) -> bool:
        """True once a ``101`` answered an upgrade request: the rest is WebSocket."""
        return self.requests.switched and self.responses.switched

    def take_trailing_data(self) -> tuple[bytes, bytes]:
        """``(client bytes, server bytes)`` received after the HTTP part, once each."""
        return self.requests.take_trailing_data(), self.responses.take_trailing_data()

    def _side(self, direction: Direction) -> _DirectionDecoder:
        if direction is Direction.CLIENT_TO_SERVER:
            return self.requests
        return self.responses

    def _pump(self) -> list[tuple[Direction, HttpEvent]]:
        # A message read on one side can unblock the other (a request lets h11 read its
        # response; a response ends the cycle so the next request can be read): drain
        # both sides until neither moves.
        events: list[tuple[Direction, HttpEvent]] = []
        moved = True
        while moved:
            request_events, moved_requests = self.requests.drain()
            response_events, moved_responses = self.responses.drain()
            events += [(Direction.CLIENT_TO_SERVER, e) for e in request_events]
            events += [(Direction.SERVER_TO_CLIENT, e) for e in response_events]
            moved = moved_requests or moved_responses
        return events
