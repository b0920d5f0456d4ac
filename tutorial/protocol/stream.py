"""One TCP connection, decoded through every layer: HTTP, WebSocket, Engine.IO, Socket.IO.

A wiretap copies the bytes it relays into a
[ConnectionDecoder][tutorial.protocol.stream.ConnectionDecoder], one per TCP
connection: [client_data][tutorial.protocol.stream.ConnectionDecoder.client_data] for what the
client sent,
[server_data][tutorial.protocol.stream.ConnectionDecoder.server_data] for what the server sent, in
the order they
were read, and the ``*_eof`` methods when a side closes. Each call returns the
[WireEvent][tutorial.protocol.stream.WireEvent] objects that the bytes complete, outer layer
first: a frame, then the
Engine.IO packet its message carries, then the Socket.IO packet inside that.

The connection speaks HTTP until a ``101 Switching Protocols`` answers an upgrade
request; after that, each direction is a stream of RFC 6455 frames, compressed if the
101 agreed on permessage-deflate. On HTTP long-polling (``transport=polling`` in the
request target), the bodies of the ``POST`` requests and of the answers to ``GET``
requests are Engine.IO payloads.

Still sans-I/O: no sockets, no clock. The caller stamps events with times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tutorial.protocol import engineio, socketio
from tutorial.protocol.engineio import EioPacket, EioPacketType
from tutorial.protocol.http import HttpConnectionDecoder, HttpEvent, HttpRequest, HttpResponse
from tutorial.protocol.layers import C2S, S2C, DecodeError, Direction, Layer
from tutorial.protocol.socketio import SioDecoder, SioPacket
from tutorial.protocol.websocket import (
    Close,
    Frame,
    FrameDecoder,
    Message,
    WsEvent,
    parse_extensions,
)

Decoded = HttpRequest | HttpResponse | Frame | Close | EioPacket | SioPacket | DecodeError


@dataclass(frozen=True)
class WireEvent:
    """One unit at one layer: ``raw`` is its exact bytes at that layer (the HTTP message,
    the frame, the Engine.IO packet text in UTF-8, the Socket.IO packet text in UTF-8)."""

    direction: Direction
    layer: Layer
    event: Decoded
    raw: bytes

    def __str__(self) -> str:
        return str(self.event)


class ConnectionDecoder:
    """Both directions of one TCP connection, from the first HTTP byte to the last frame."""

    def __init__(self) -> None:
        self.http = HttpConnectionDecoder()
        self.upgrade: HttpResponse | None = None  # the 101, once seen
        self._frames: dict[Direction, FrameDecoder] | None = None
        self._sio = {C2S: SioDecoder(), S2C: SioDecoder()}
        self._unanswered: deque[HttpRequest] = deque()  # requests waiting for a response

    @property
    def is_websocket(self) -> bool:
        return self._frames is not None

    def client_data(self, data: bytes) -> list[WireEvent]:
        """Bytes the client sent (client→server)."""
        return self._receive(C2S, data)

    def server_data(self, data: bytes) -> list[WireEvent]:
        """Bytes the server sent (server→client)."""
        return self._receive(S2C, data)

    def client_eof(self) -> list[WireEvent]:
        """The client closed its side: whatever it left unfinished is reported."""
        return self._eof(C2S)

    def server_eof(self) -> list[WireEvent]:
        return self._eof(S2C)

    # --- internals ---------------------------------------------------------------

    def _receive(self, direction: Direction, data: bytes) -> list[WireEvent]:
        if self._frames is not None:
            return self._ws(direction, self._frames[direction].receive_data(data))
        return self._after_http(self.http.receive(direction, data))

    def _eof(self, direction: Direction) -> list[WireEvent]:
        if self._frames is not None:
            return self._ws(direction, self._frames[direction].eof())
        return self._after_http(self.http.eof(direction))

    def _after_http(self, pairs: list[tuple[Direction, HttpEvent]]) -> list[WireEvent]:
        out: list[WireEvent] = []
        for direction, event in pairs:
            out += self._http(direction, event)
        if self.http.switched and self._frames is None:
            # RFC 7692 5: the extension is in use only if the 101 says so.
            header = self.upgrade.header("Sec-WebSocket-Extensions") if self.upgrade else None
            deflate = parse_extensions(header)
            self._frames = {
                C2S: FrameDecoder(client_to_server=True, deflate=deflate),
                S2C: FrameDecoder(client_to_server=False, deflate=deflate),
            }
            client_rest, server_rest = self.http.take_trailing_data()
            out += self._receive(C2S, client_rest) if client_rest else []
            out += self._receive(S2C, server_rest) if server_rest else []
        return out

    def _http(self, direction: Direction, event: HttpEvent) -> list[WireEvent]:
        out = [WireEvent(direction, Layer.HTTP, event, event.raw)]
        if isinstance(event, HttpRequest):
            self._unanswered.append(event)
            if event.method == "POST" and _is_polling(event):
                out += self._payload(C2S, event.body)
        elif isinstance(event, HttpResponse):
            if event.status == 101:
                self.upgrade = event
            if event.status < 200:
                return out  # informational: the final response is still to come
            request = self._unanswered.popleft() if self._unanswered else None
            polled = request is not None and request.method == "GET" and _is_polling(request)
            if polled and event.status == 200:
                out += self._payload(S2C, event.body)
        return out

    def _payload(self, direction: Direction, body: bytes) -> list[WireEvent]:
        records = engineio.split_payload(body)
        if isinstance(records, DecodeError):
            return [WireEvent(direction, Layer.EIO, records, records.raw)]
        out: list[WireEvent] = []
        for record in records:
            out += self._eio(direction, record)
        return out

    def _ws(self, direction: Direction, events: list[WsEvent]) -> list[WireEvent]:
        out: list[WireEvent] = []
        for event in events:
            if isinstance(event, Message):
                out += self._eio(direction, event.data)
            elif isinstance(event, Close):
                # One frame, one event: the close frame's header came out just before
                # its body; the Close (code, reason, and the frame) takes its place.
                if out and out[-1].event is event.frame:
                    out.pop()
                out.append(WireEvent(direction, Layer.WS, event, event.frame.raw))
            else:
                out.append(WireEvent(direction, Layer.WS, event, event.raw))
        return out

    def _eio(self, direction: Direction, encoded: str | bytes) -> list[WireEvent]:
        raw = encoded if isinstance(encoded, bytes) else encoded.encode("utf-8", "surrogatepass")
        packet = engineio.decode_packet(encoded)
        out = [WireEvent(direction, Layer.EIO, packet, raw)]
        if isinstance(packet, EioPacket) and packet.type is EioPacketType.MESSAGE:
            out += self._socketio(direction, packet.data or "")
        return out

    def _socketio(self, direction: Direction, data: str | bytes) -> list[WireEvent]:
        decoder = self._sio[direction]
        header = decoder.pending_text  # a binary packet's text, if it awaits attachments
        out: list[WireEvent] = []
        for packet in decoder.receive(data):
            if isinstance(packet, socketio.SioPacket):
                text = header if packet.attachments and header is not None else data
                raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
                out.append(WireEvent(direction, Layer.SIO, packet, raw))
            else:
                out.append(WireEvent(direction, Layer.SIO, packet, packet.raw))
        return out


def _is_polling(request: HttpRequest) -> bool:
    return request.query.get("transport") == "polling"
