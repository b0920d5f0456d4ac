"""The wiretap: a TCP proxy that records every byte it relays into a :class:`Trace`.

A scenario puts it between the clients and the server::

    tap = Wiretap(trace, upstream=("127.0.0.1", server.port))
    await tap.start()
    tap.name_next_connection("alice")      # the next new client session is alice's
    client = ChatClient(tap.url, "alice", "alice")
    ...
    await tap.stop()

For each TCP connection the tap opens one to the upstream server and copies bytes both
ways, unchanged, as they arrive. A copy of each chunk goes to one
:class:`~tutorial.protocol.stream.ConnectionDecoder` per connection, and every
:class:`~tutorial.protocol.stream.WireEvent` it returns becomes one trace event: its
layer, ``label = str(event)``, a small dict of decoded ``fields`` and the exact ``raw``
bytes. TCP connect and close are ``tcp`` events. Nothing that goes wrong while
decoding or recording can break the relayed connection: a decoder failure becomes an
``error`` event, and any exception in recording is caught (and counted).

**Which lifeline is which client.** Clients are not told apart by address (every
client is 127.0.0.1, and HTTP long-polling spreads one session over several TCP
connections), but by Engine.IO session:

1. When a connection's first HTTP request carries ``sid=...`` (a polling request, or
   the WebSocket upgrade of a polling session), it belongs to the lifeline that
   session was opened on.
2. Otherwise it starts a new session: the name ``name_request(request)`` gives (a
   tap behind a load balancer names clients by the ``X-Real-IP`` header the balancer
   adds), else the next name given to :meth:`Wiretap.name_next_connection` (first
   in, first out), else :attr:`Wiretap.default_name`, else a fresh ``client-N``.
3. The server's Engine.IO OPEN packet (``0{"sid":...}``) binds that sid to the
   connection's lifeline; the Socket.IO CONNECT reply (``40{"sid":...}``) binds the
   Socket.IO sid too. :attr:`Wiretap.sid_names` maps both to lifeline ids, which is
   what :class:`~tutorial.trace.spans.ServerSpans` needs to draw the server's messages.

This works for any client (the teaching client, the official JS client, a browser),
since it relies only on what is on the wire. Name the next connection right before
the client connects, and connect clients one at a time.

Events of a connection are held back until its lifeline is known (at its first
complete HTTP request); they keep the time at which their bytes were read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tutorial.protocol import engineio, socketio
from tutorial.protocol.engineio import EioPacket, EioPacketType
from tutorial.protocol.http import HttpRequest, HttpResponse
from tutorial.protocol.layers import DecodeError, Direction, Layer
from tutorial.protocol.socketio import SioPacket, SioPacketType
from tutorial.protocol.stream import C2S, S2C, ConnectionDecoder, WireEvent
from tutorial.protocol.websocket import Close, Frame, FrameDecoder, apply_mask
from tutorial.trace.model import NORMALISATION_RULES, Normaliser, Rule, Trace, TraceEvent
from tutorial.trace.proxy import LoopbackProxy

log = logging.getLogger("tutorial.trace.wiretap")

CHUNK = 65536
#: RFC 6455 section 5.7's sample masking key (the masked "Hello" example): masked
#: frames of a deterministic trace are re-masked with it.
SAMPLE_MASKING_KEY = bytes.fromhex("37fa213d")


@dataclass
class TappedConnection:
    """One TCP connection through the tap: its decoder, its lifeline, its counters."""

    number: int
    peer_port: int
    decoder: ConnectionDecoder = field(default_factory=ConnectionDecoder)
    lifeline: str | None = None
    pending: list[tuple[float, Direction, WireEvent | str]] = field(default_factory=list)
    bytes_in: int = 0  # client -> server
    bytes_out: int = 0  # server -> client
    decoding: bool = True  # False after the decoder itself failed
    held: bool = False  # fault injection: server -> client bytes are held back
    release: asyncio.Event = field(default_factory=asyncio.Event)


class Wiretap(LoopbackProxy):
    """An asyncio TCP proxy on ``host:port`` (port 0: a free one) in front of ``upstream``."""

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
        name_request: Callable[[HttpRequest], str | None] | None = None,
    ) -> None:
        super().__init__(upstream, host, port)
        #: Names a new session from its first HTTP request (None: not by request).
        self.name_request = name_request
        self.trace = trace
        self.server_lifeline = server_lifeline
        self.server_label = server_label
        #: The lifeline of a new session when no name is queued (None: ``client-N``).
        self.default_name = default_name
        #: Engine.IO and Socket.IO sids -> lifeline id, learned from the wire.
        self.sid_names: dict[str, str] = {}
        self.connections: list[TappedConnection] = []
        #: Exceptions caught while recording (the relayed bytes were not affected).
        self.failures: list[str] = []
        #: False: keep relaying, record nothing (e.g. while a scenario tears down).
        self.recording = True
        self._names: deque[tuple[str, str | None]] = deque()
        self._auto = 0

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- naming ----------------------------------------------------------------------

    def name_next_connection(self, name: str, label: str | None = None) -> None:
        """The next connection that starts a new session is ``name``'s (FIFO)."""
        self._names.append((name, label))

    def lifeline_of(self, sid: str) -> str | None:
        return self.sid_names.get(sid)

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

    # -- counters ----------------------------------------------------------------------

    def bytes_by_lifeline(self) -> dict[str, tuple[int, int]]:
        """``{lifeline: (client→server bytes, server→client bytes)}``."""
        out: dict[str, tuple[int, int]] = {}
        for conn in self.connections:
            name = conn.lifeline or "?"
            a, b = out.get(name, (0, 0))
            out[name] = (a + conn.bytes_in, b + conn.bytes_out)
        return out

    # -- relaying ----------------------------------------------------------------------

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = TappedConnection(len(self.connections) + 1, int(peer[1]))
        self.connections.append(conn)
        self._observe_tcp(conn, C2S, "TCP connect")
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                self._observe_tcp(conn, S2C, f"TCP refused: {exc.strerror or exc}", error=True)
                return
            pumps = [
                asyncio.create_task(self._pump(conn, reader, up_writer, C2S)),
                asyncio.create_task(self._pump(conn, up_reader, writer, S2C)),
            ]
            try:
                # When one side is done and the other has finished too, or has hung up.
                _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                if pending:
                    wait = 0 if conn.held else 2.0
                    _, pending = await asyncio.wait(pending, timeout=wait)
                for task_ in pending:
                    task_.cancel()
            finally:
                for task_ in pumps:
                    task_.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task_
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            self._flush_pending(conn)

    async def _pump(
        self,
        conn: TappedConnection,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        try:
            while True:
                if direction is S2C and conn.held:
                    conn.release.clear()
                    await conn.release.wait()
                data = await src.read(CHUNK)
                if not data:
                    break
                dst.write(data)  # relay first, unchanged; recording cannot touch it
                self._observe(conn, direction, data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._observe_eof(conn, direction)
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()

    # -- recording ---------------------------------------------------------------------

    def _observe(self, conn: TappedConnection, direction: Direction, data: bytes) -> None:
        if direction is C2S:
            conn.bytes_in += len(data)
        else:
            conn.bytes_out += len(data)
        if not self.recording:
            return
        try:
            t = self.trace.elapsed()
            events = self._decode(conn, direction, data)
            for event in events:
                self._event(conn, t, direction, event)
        except Exception as exc:  # never let recording break the connection
            self._failed(exc)

    def _observe_eof(self, conn: TappedConnection, direction: Direction) -> None:
        if not self.recording:
            return
        try:
            t = self.trace.elapsed()
            events = self._decode(conn, direction, None)
            for event in events:
                self._event(conn, t, direction, event)
            side = "client" if direction is C2S else "server"
            self._observe_tcp(conn, direction, f"TCP close ({side} FIN)")
        except Exception as exc:
            self._failed(exc)

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
        log.debug("wiretap: recording failed", exc_info=exc)

    def _event(
        self, conn: TappedConnection, t: float, direction: Direction, event: WireEvent | str
    ) -> None:
        if conn.lifeline is None:
            conn.pending.append((t, direction, event))
            if isinstance(event, WireEvent) and isinstance(event.event, HttpRequest):
                self._resolve(conn, event.event.query.get("sid"), event.event)
            elif isinstance(event, WireEvent):
                self._resolve(conn, None)
            return
        self._record(conn, t, direction, event)

    def _resolve(
        self, conn: TappedConnection, sid: str | None, request: HttpRequest | None = None
    ) -> None:
        """Give the connection its lifeline, then record what waited for it."""
        name = self.sid_names.get(sid) if sid else None
        label = None
        if name is None and request is not None and self.name_request is not None:
            name = self.name_request(request)
        if name is None:
            if self._names:
                name, label = self._names.popleft()
            elif self.default_name is not None:
                name = self.default_name
            else:
                self._auto += 1
                name = f"client-{self._auto}"
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
            label = event.lstrip("!")
            phase = "ws" if conn.decoder.is_websocket else "http"
            self.trace.record(
                source,
                target,
                Layer.TCP,
                label,
                fields={"connection": conn.number, "port": conn.peer_port},
                kind="error" if error else "message",
                phase=phase,
                t=t,
            )
            return
        decoded = event.event
        self._learn(conn, direction, decoded)
        layer = event.layer
        if layer is Layer.HTTP:
            phase = "http"
        elif layer is Layer.WS:
            phase = "ws"
        else:
            phase = "ws" if conn.decoder.is_websocket else "http"
        status = None
        if isinstance(decoded, HttpResponse) and decoded.status == 101:
            status = "ok"
        if (
            direction is S2C
            and isinstance(decoded, SioPacket)
            and decoded.type is SioPacketType.CONNECT
        ):
            status = "ok"
        self.trace.record(
            source,
            target,
            layer,
            _one_line(str(event)),
            fields=fields_of(decoded),
            raw=event.raw,
            kind="error" if isinstance(decoded, DecodeError) else "message",
            phase=phase,
            status=status,
            t=t,
        )

    def _learn(self, conn: TappedConnection, direction: Direction, decoded: Any) -> None:
        """Bind the sids the server hands out to this connection's lifeline."""
        if direction is not S2C or conn.lifeline is None:
            return
        if isinstance(decoded, EioPacket) and decoded.type is EioPacketType.OPEN:
            opened = decoded.open_payload
            if opened is not None:
                self.sid_names[opened.sid] = conn.lifeline
        elif isinstance(decoded, SioPacket) and decoded.type is SioPacketType.CONNECT:
            data = decoded.data
            if isinstance(data, dict) and isinstance(data.get("sid"), str):
                self.sid_names[data["sid"]] = conn.lifeline


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def fields_of(event: Any) -> dict[str, Any]:
    """The decoded fields of one wire event: small, JSON-able, one level deep mostly."""
    if isinstance(event, HttpRequest):
        out: dict[str, Any] = {
            "method": event.method,
            "target": event.target,
            "headers": [[k, v] for k, v in event.headers],
        }
        if event.body:
            out["body_length"] = len(event.body)
        return out
    if isinstance(event, HttpResponse):
        out = {
            "status": event.status,
            "reason": event.reason,
            "headers": [[k, v] for k, v in event.headers],
        }
        if event.body:
            out["body_length"] = len(event.body)
        return out
    if isinstance(event, Close):
        return {"opcode": "CLOSE", "code": int(event.code), "reason": event.reason}
    if isinstance(event, Frame):
        return frame_fields(event)
    if isinstance(event, EioPacket):
        out = {"type": event.type.name}
        opened = event.open_payload
        if opened is not None:
            out |= {
                "sid": opened.sid,
                "upgrades": list(opened.upgrades),
                "pingInterval": opened.ping_interval,
                "pingTimeout": opened.ping_timeout,
            }
        elif isinstance(event.data, bytes):
            out["data_length"] = len(event.data)
        elif event.data is not None and event.type is not EioPacketType.MESSAGE:
            out["data"] = event.data
        return out
    if isinstance(event, SioPacket):
        out = {"type": event.type.name, "namespace": event.namespace}
        if event.id is not None:
            out["id"] = event.id
        name = event.event_name
        if name is not None:
            out["event"] = name
            out["args"] = _jsonable(event.args)
        elif event.data is not None:
            out["data"] = _jsonable(event.data)
        return out
    if isinstance(event, DecodeError):
        return {"reason": event.reason, "layer": str(event.layer)}
    return {}


def frame_fields(frame: Frame) -> dict[str, Any]:
    out: dict[str, Any] = {
        "opcode": frame.opcode.name,
        "fin": frame.fin,
        "masked": frame.masked,
        "payload_length": frame.payload_length,
    }
    if frame.rsv1:
        out["rsv1"] = True
    if frame.masking_key is not None:
        out["masking_key"] = frame.masking_key.hex()
    return out


# -- RFC 6455 framing, for re-encoding a frame in deterministic traces ---------------------


def encode_frame(frame: Frame, payload: bytes, masking_key: bytes | None) -> bytes:
    """RFC 6455 5.2: the frame's header bits, ``payload``, masked with ``masking_key``."""
    first = (
        (0x80 if frame.fin else 0)
        | (0x40 if frame.rsv1 else 0)
        | (0x20 if frame.rsv2 else 0)
        | (0x10 if frame.rsv3 else 0)
        | int(frame.opcode)
    )
    mask_bit = 0x80 if masking_key is not None else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if masking_key is None:
        return header + payload
    return header + masking_key + apply_mask(payload, masking_key)


def parse_one_frame(raw: bytes) -> Frame | None:
    for event in FrameDecoder().receive_data(raw):
        if isinstance(event, Frame):
            return event
    return None


# -- deterministic traces ---------------------------------------------------------------

FIXED_TOKEN = "TOKEN"

#: Our additions to the model's rules: the chat's signed login token (it holds a time
#: of one-second resolution, so two tokens are equal or not depending on the clock:
#: all become ``TOKEN``), and the port in a "connect call failed" message.
EXTRA_RULES: tuple[Rule, ...] = (
    Rule(
        "token-json",
        re.compile(r'"token"\s*:\s*"(?P<value>[^"]+)"'),
        'The "token" JSON value (a signed, timed login token)',
        fixed=FIXED_TOKEN,
    ),
    Rule(
        "address-port",
        re.compile(r"\('127\.0\.0\.1', (?P<value>\d+)\)"),
        "The port of a Python socket address ('127.0.0.1', port)",
        fixed="PORT",
    ),
)


class StableNormaliser(Normaliser):
    """:class:`Normaliser` plus :data:`EXTRA_RULES` and a ``token`` field key."""

    def __init__(self) -> None:
        super().__init__(NORMALISATION_RULES + EXTRA_RULES)

    def value(self, v: Any, key: str | None = None) -> Any:
        if key is not None and key.lower() == "token" and isinstance(v, str):
            return FIXED_TOKEN
        return super().value(v, key)


def canonical_order(trace: Trace, server: str = "server") -> Trace:
    """Put runs of server→client wire events in lifeline (column) order.

    The tap reads each TCP connection in order, but the order *between* connections
    (a broadcast reaching four clients) depends on the scheduler. Within a run of
    consecutive events sent by the server to clients, events are stably sorted by
    the column of their target: each connection keeps its own order.
    """
    column = {lf.id: i for i, lf in enumerate(trace.lifelines)}
    events = list(trace.events)
    out: list[TraceEvent] = []
    i = 0

    def in_run(e: TraceEvent) -> bool:
        return e.source == server and not e.is_self and e.raw is not None

    while i < len(events):
        if not in_run(events[i]):
            out.append(events[i])
            i += 1
            continue
        j = i
        while j < len(events) and in_run(events[j]):
            j += 1
        out += sorted(events[i:j], key=lambda e: column.get(e.target, 0))
        i = j
    return Trace(trace.lifelines, out)


def stable_trace(
    trace: Trace, server: str = "server", normaliser: Normaliser | None = None
) -> Trace:
    """The deterministic form of a trace (``tutorial trace --deterministic``).

    1. :func:`canonical_order`; 2. the model's normalisation (sids, ids, times, ports,
    dates, the WebSocket key pair) plus login tokens; 3. every WebSocket frame's
    ``raw`` re-encoded: its payload normalised like any text, and a masked frame
    re-masked with RFC 6455's sample key ``37 fa 21 3d`` (the real key is random).
    Pass a ``normaliser`` to reuse its numbering afterwards (``normaliser.value(x)``
    gives a figure the same ``sid-N`` names as the trace).
    """
    ordered = canonical_order(trace, server)
    normaliser = normaliser or StableNormaliser()
    normal = normaliser.apply(ordered)
    events = [
        _stable_label(before, _stable_frame(after, normaliser))
        for before, after in zip(ordered.events, normal.events, strict=True)
    ]
    return Trace(normal.lifelines, events)


def _decoded_label(layer: Layer, raw: bytes) -> str | None:
    """What the tap would have labelled these Engine.IO / Socket.IO bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if layer is Layer.EIO:
        return _one_line(str(engineio.decode_packet(text)))
    if layer is Layer.SIO:
        return _one_line(str(socketio.decode_packet(text)))
    return None


def _stable_label(before: TraceEvent, after: TraceEvent) -> TraceEvent:
    """A label cut short may have cut an id in half, out of reach of the rules: when the
    label is the tap's own, derive it again from the normalised bytes."""
    if before.raw is None or after.raw is None or before.layer not in (Layer.EIO, Layer.SIO):
        return after
    if _decoded_label(before.layer, before.raw) != before.label:
        return after  # a story label, set by a scenario
    label = _decoded_label(after.layer, after.raw)
    return replace(after, label=label) if label else after


def _stable_frame(event: TraceEvent, normaliser: Normaliser) -> TraceEvent:
    if event.layer is not Layer.WS or event.raw is None or event.kind == "error":
        return event
    frame = parse_one_frame(event.raw)
    if frame is None:
        return event
    payload = frame.payload
    if not frame.rsv1:  # a compressed payload is kept as it is
        with contextlib.suppress(UnicodeDecodeError):
            payload = normaliser.text(payload.decode("utf-8")).encode("utf-8")
    key = SAMPLE_MASKING_KEY if frame.masked else None
    raw = encode_frame(frame, payload, key)
    new = parse_one_frame(raw)
    fields = dict(event.fields)
    if new is not None:
        if "code" not in fields:  # a Close event keeps its code and reason
            fields = frame_fields(new)
        label = str(new) if event.label == str(frame) else event.label
    else:
        label = event.label
    return replace(event, raw=raw, fields=fields, label=label)


__all__ = [
    "SAMPLE_MASKING_KEY",
    "StableNormaliser",
    "TappedConnection",
    "Wiretap",
    "canonical_order",
    "encode_frame",
    "fields_of",
    "stable_trace",
]
