"""Every byte of a wire unit, named: annotated bytes for the trace inspector.

A decoder ([websocket][tutorial.protocol.websocket], [http][tutorial.protocol.http],
[engineio][tutorial.protocol.engineio], [socketio][tutorial.protocol.socketio]) turns
bytes into meaning; this module says *where* each piece of meaning sits in the bytes.
[annotate][tutorial.protocol.annotate.annotate] takes one unit's exact bytes at one layer
(a WebSocket frame, an HTTP message, an Engine.IO packet, a Socket.IO packet) and returns an
[Annotated][tutorial.protocol.annotate.Annotated]:
the bytes cut into named, typed [Span][tutorial.protocol.annotate.Span] objects, in wire order,
that cover every
bit exactly once. Header bits that share a byte (FIN, RSV1-3 and the opcode; MASK and
the 7-bit length) are spans of a few bits; everything else is whole bytes:

    >>> frame = annotate(Layer.WS, bytes.fromhex("8185" "37fa213d" "7f9f4d5158"))
    >>> [(s.name, s.value) for s in frame.spans][:2]
    [('FIN', '1: the final fragment'), ('RSV1', '0')]
    >>> frame.decoded[-1]
    ('unmasked payload', "'Hello'")

Bad bytes never raise: a truncated or corrupted unit is annotated as far as it can be
read, the rest is one ``error`` span, and ``Annotated.problem`` says what is wrong.

Sans-I/O, like the decoders: bytes in, frozen dataclasses out.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tutorial.protocol.engineio import RECORD_SEPARATOR, EioPacketType
from tutorial.protocol.layers import Layer
from tutorial.protocol.socketio import SioPacketType
from tutorial.protocol.websocket import CloseCode, Opcode, accept_key, apply_mask

#: Payload text longer than this is cut with "…" in a span's value (the bytes stay whole).
MAX_VALUE = 120


class Role(StrEnum):
    """What kind of field a span is: the inspector colours spans by role."""

    FLAG = "flag"  # a one-bit header field
    OPCODE = "opcode"  # what a unit is: WebSocket opcode, packet type
    LENGTH = "length"  # how long what follows is
    KEY = "key"  # the masking key
    PAYLOAD = "payload"  # application data
    LINE = "line"  # an HTTP request or status line
    HEADER = "header"  # one HTTP header line
    SEPARATOR = "separator"  # a delimiter: CRLF CRLF, the record separator, "-" or ","
    NAMESPACE = "namespace"
    ACK = "ack"  # a Socket.IO acknowledgement id
    JSON = "json"  # a JSON document
    ERROR = "error"  # bytes that cannot be read as the layer says they should


@dataclass(frozen=True)
class Span:
    """One field: bits ``[start, end)`` of the unit, bit 0 being the most significant bit
    of byte 0 (the order RFC 6455 draws them in)."""

    start: int
    end: int
    name: str
    value: str
    role: Role
    note: str = ""  # what the field is for, from the spec

    @property
    def byte_start(self) -> int:
        return self.start // 8

    @property
    def byte_end(self) -> int:
        """One past the last byte that holds a bit of this span."""
        return -(-self.end // 8)

    @property
    def is_bits(self) -> bool:
        """True for a field smaller than its byte (shown as bits, not hex)."""
        return self.start % 8 != 0 or self.end % 8 != 0

    def bits(self, raw: bytes) -> str:
        """The span's bits as ``0``/``1`` characters."""
        return "".join(str((raw[i // 8] >> (7 - i % 8)) & 1) for i in range(self.start, self.end))

    def hex(self, raw: bytes) -> str:
        return raw[self.byte_start : self.byte_end].hex(" ")

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass(frozen=True)
class Annotated:
    """One unit's bytes cut into spans, with a title, decoded fields and any problem."""

    layer: Layer
    raw: bytes
    spans: tuple[Span, ...]
    title: str
    decoded: tuple[tuple[str, str], ...] = ()
    problem: str | None = None

    def gaps_and_overlaps(self) -> list[str]:
        """Where the spans fail to cover every bit exactly once (empty when they do)."""
        problems, at = [], 0
        for span in self.spans:
            if span.start > at:
                problems.append(f"bits {at}-{span.start} not covered")
            elif span.start < at:
                problems.append(f"{span.name} overlaps bits {span.start}-{at}")
            if span.end <= span.start:
                problems.append(f"{span.name} is empty")
            at = max(at, span.end)
        if at != 8 * len(self.raw):
            problems.append(f"spans end at bit {at}, the unit has {8 * len(self.raw)}")
        return problems

    def span(self, name: str) -> Span:
        """The first span called ``name`` (``KeyError`` if there is none)."""
        for s in self.spans:
            if s.name == name:
                return s
        raise KeyError(name)

    def __str__(self) -> str:
        return self.title


# -- a little builder: fields in wire order, never past the end ------------------------


class _Cursor:
    """Walks the bytes left to right, as the spec lays the fields out."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.bit = 0
        self.spans: list[Span] = []
        self.problem: str | None = None

    @property
    def byte(self) -> int:
        return self.bit // 8

    @property
    def left(self) -> int:
        """Whole bytes left after the cursor."""
        return len(self.raw) - -(-self.bit // 8)

    def add(self, nbits: int, name: str, value: str, role: Role, note: str = "") -> None:
        self.spans.append(Span(self.bit, self.bit + nbits, name, value, role, note))
        self.bit += nbits

    def take(self, nbytes: int, name: str, value: str, role: Role, note: str = "") -> None:
        self.add(8 * nbytes, name, value, role, note)

    def fail(self, problem: str, name: str = "unreadable bytes") -> None:
        """Everything from here to the end is one error span (if any bytes are left)."""
        self.problem = self.problem or problem
        if self.bit < 8 * len(self.raw):
            rest = 8 * len(self.raw) - self.bit
            self.add(rest, name, f"{rest // 8} bytes", Role.ERROR, problem)


def _text(data: bytes, limit: int = MAX_VALUE) -> str:
    """Bytes as a quoted string if they are UTF-8, else as hex; cut at ``limit``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        shown = data[: limit // 3].hex(" ")
        return shown + (" …" if len(data) > limit // 3 else "")
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def _plural(n: int, word: str = "byte") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- RFC 6455: one WebSocket frame ---------------------------------------------------

#: RFC 6455 5.2 and 11.8, what each opcode "denotes".
OPCODE_MEANINGS: dict[int, str] = {
    0x0: "a continuation frame",
    0x1: "a text frame",
    0x2: "a binary frame",
    0x8: "a connection close",
    0x9: "a ping",
    0xA: "a pong",
}


def annotate_frame(raw: bytes, *, inflated: bytes | None = None) -> Annotated:
    """One RFC 6455 frame, field by field in the order of section 5.2.

    ``inflated``: the message this frame's compressed payload inflates to, when the
    caller knows it (permessage-deflate keeps one window across messages, so a frame
    alone may not inflate); without it a compressed payload is inflated on its own if
    it can be.
    """
    c = _Cursor(raw)
    decoded: list[tuple[str, str]] = []
    if not raw:
        return Annotated(Layer.WS, raw, (), "empty WebSocket frame", (), "no bytes at all")
    b0 = raw[0]
    fin, rsv = b0 >> 7, [(b0 >> s) & 1 for s in (6, 5, 4)]
    opcode = b0 & 0x0F
    # "FIN: 1 bit. Indicates that this is the final fragment in a message."
    c.add(
        1,
        "FIN",
        "1: the final fragment" if fin else "0: more fragments follow",
        Role.FLAG,
        "Indicates that this is the final fragment in a message.",
    )
    # "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated"
    rsv1_value = "1: compressed (permessage-deflate)" if rsv[0] else "0"
    c.add(1, "RSV1", rsv1_value, Role.FLAG, "Reserved; RFC 7692 uses it for a compressed message.")
    c.add(1, "RSV2", str(rsv[1]), Role.FLAG, "Reserved: MUST be 0 unless an extension says so.")
    c.add(1, "RSV3", str(rsv[2]), Role.FLAG, "Reserved: MUST be 0 unless an extension says so.")
    known = opcode in OPCODE_MEANINGS
    name = Opcode(opcode).name if known else "reserved"
    meaning = OPCODE_MEANINGS.get(opcode, "reserved: the connection MUST fail")
    c.add(
        4,
        "opcode",
        f"{opcode:#x} {name}: {meaning}",
        Role.OPCODE,
        "Defines the interpretation of the Payload data.",
    )
    if not known:
        c.problem = f"reserved opcode {opcode:#x}"
    if len(raw) < 2:
        c.fail("truncated: the second header byte (MASK, payload length) is missing")
        return _frame_result(c, decoded, opcode, None)
    b1 = raw[1]
    masked, length7 = b1 >> 7, b1 & 0x7F
    c.add(
        1,
        "MASK",
        "1: the payload is masked" if masked else "0: not masked",
        Role.FLAG,
        'Defines whether the "Payload data" is masked; every client frame is.',
    )
    length = length7
    if length7 <= 125:
        c.add(
            7,
            "payload length",
            f"{length7}: {_plural(length7)}",
            Role.LENGTH,
            "Payload length: if 0-125, that is the payload length.",
        )
    else:
        width = 2 if length7 == 126 else 8
        c.add(
            7,
            "payload length",
            f"{length7}: the length follows in {width} bytes",
            Role.LENGTH,
            "If 126, the following 2 bytes are the payload length; if 127, the following 8 bytes.",
        )
        if c.left < width:
            c.fail(f"truncated: the {8 * width}-bit extended length is cut short")
            return _frame_result(c, decoded, opcode, None)
        length = int.from_bytes(raw[2 : 2 + width], "big")
        c.take(
            width,
            f"extended payload length ({8 * width}-bit)",
            _plural(length),
            Role.LENGTH,
            "Interpreted as an unsigned integer in network byte order.",
        )
        if width == 8 and length >> 63:
            c.fail("64-bit payload length with its most significant bit set")
            return _frame_result(c, decoded, opcode, None)
        if (width == 2 and length < 126) or (width == 8 and length < 0x10000):
            c.problem = f"length {length} not in its minimal encoding"
    key = None
    if masked:
        if c.left < 4:
            c.fail("truncated: the masking key is cut short")
            return _frame_result(c, decoded, opcode, length)
        key = raw[c.byte : c.byte + 4]
        c.take(
            4,
            "masking key",
            key.hex(" "),
            Role.KEY,
            "All frames sent from the client to the server are masked by this 32-bit value.",
        )
    data = raw[c.byte : c.byte + length]
    payload = apply_mask(data, key) if key is not None else data
    if length:
        _payload_spans(c, opcode, payload, length, masked=key is not None)
    if len(data) < length:
        c.problem = f"truncated: the payload length says {length} bytes, {len(data)} are here"
    elif c.left > 0:
        c.fail(f"{_plural(c.left)} after the end of the frame", "bytes after the frame")
    if key is not None and data:
        decoded.append(("masked payload", data[:48].hex(" ") + (" …" if len(data) > 48 else "")))
        decoded.append(("XOR masking key", (key * 12)[: min(len(data), 48)].hex(" ")))
    if data and key is not None:
        decoded.append(("unmasked payload", _text(payload)))
    if rsv[0] and data:
        text = inflated if inflated is not None else _inflate(payload)
        decoded.append(
            (
                "inflated",
                _text(text) if text is not None else "(needs the window of the messages before it)",
            )
        )
    return _frame_result(c, decoded, opcode, length)


def _payload_spans(c: _Cursor, opcode: int, payload: bytes, length: int, *, masked: bool) -> None:
    here = min(length, c.left)
    if here == 0:
        return
    note = (
        "Payload data, masked: XOR with the masking key to read it." if masked else "Payload data."
    )
    if opcode == Opcode.CLOSE and here >= 2:
        # 5.5.1: "the first two bytes of the body MUST be a 2-byte unsigned integer
        # (in network byte order) representing a status code [...] Following the 2-byte
        # integer, the body MAY contain UTF-8-encoded data with value /reason/".
        number = int.from_bytes(payload[:2], "big")
        try:
            code = f"{number} {CloseCode(number).name}"
        except ValueError:
            code = str(number)
        c.take(2, "close status code", code, Role.PAYLOAD, "Why the endpoint is closing (7.4).")
        if here > 2:
            c.take(here - 2, "close reason", _text(payload[2:]), Role.PAYLOAD, "UTF-8 text.")
        return
    c.take(here, "payload", f"{_plural(length)}: {_text(payload)}", Role.PAYLOAD, note)


def _inflate(payload: bytes) -> bytes | None:
    # RFC 7692 7.2.2: append 00 00 ff ff, then inflate (a raw DEFLATE stream).
    try:
        return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff", 1 << 20)
    except zlib.error:
        return None


def _frame_result(
    c: _Cursor, decoded: list[tuple[str, str]], opcode: int, length: int | None
) -> Annotated:
    name = Opcode(opcode).name if opcode in OPCODE_MEANINGS else f"opcode {opcode:#x}"
    masked = any(s.name == "MASK" and s.value.startswith("1") for s in c.spans)
    title = f"WebSocket frame: {name}{', masked' if masked else ''}"
    if length is not None:
        title += f", {_plural(length)} of payload"
    if c.problem:
        title += " (damaged)"
    return Annotated(Layer.WS, c.raw, tuple(c.spans), title, tuple(decoded), c.problem)


# -- HTTP/1.1: request or status line, headers, body ---------------------------------


def _header_note(name: str, value: str) -> str:
    """What a header does in the handshake (RFC 6455 4.1 and 4.2.2)."""
    key = name.lower()
    if key == "sec-websocket-key":
        return (
            f"A random 16-byte nonce, base64. The server must answer with "
            f"base64(SHA-1(key + GUID)) = {accept_key(value.strip())}."
        )
    return {
        "upgrade": "Asks to switch protocols (with Connection: Upgrade).",
        "connection": "Upgrade: this connection is to change protocol.",
        "sec-websocket-version": "13: the version of RFC 6455.",
        "sec-websocket-accept": "Proves the server read the key: base64(SHA-1(key + GUID)).",
        "sec-websocket-extensions": "Extensions offered or agreed, e.g. permessage-deflate.",
        "host": "The server's name and port.",
        "content-length": "How many bytes of body follow the blank line.",
        "transfer-encoding": "chunked: the body comes in length-prefixed chunks.",
        "content-type": "The kind of data in the body.",
    }.get(key, "")


def annotate_http(raw: bytes, *, polling: bool | None = None) -> Annotated:
    """An HTTP/1.1 message: its first line, each header line, the blank line, the body.

    ``polling``: whether the body is an Engine.IO long-polling payload (by default,
    when the request line or the body looks like one).
    """
    c = _Cursor(raw)
    decoded: list[tuple[str, str]] = []
    end_of_head = raw.find(b"\r\n\r\n")
    head_end = len(raw) if end_of_head < 0 else end_of_head + 2
    lines = raw[:head_end].split(b"\r\n")
    first = lines[0].decode("latin-1") if lines else ""
    is_response = first.startswith("HTTP/")
    title = "HTTP " + ("response" if is_response else "request")
    pos = 0
    chunked = False
    for number, line in enumerate(lines):
        if pos >= head_end:
            break
        size = len(line) + 2 if pos + len(line) + 2 <= head_end else len(line)
        if size == 0:
            break
        text = line.decode("latin-1")
        if number == 0:
            if is_response:
                note = "Status line: version, status code, reason (RFC 9112 4)."
                c.take(size, "status line", text, Role.LINE, note)
            else:
                note = "Request line: method, target, version (RFC 9112 3)."
                c.take(size, "request line", text, Role.LINE, note)
            title += f": {text}"
        else:
            name, sep, value = text.partition(":")
            if not sep:
                c.take(size, "not a header line", text, Role.ERROR, "A header line is name: value.")
                c.problem = c.problem or f"line {number + 1} is not a header: {text[:40]!r}"
            else:
                c.take(size, name.strip(), value.strip(), Role.HEADER, _header_note(name, value))
                low = name.strip().lower()
                if low == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                if low == "sec-websocket-key":
                    decoded.append(("expected Sec-WebSocket-Accept", accept_key(value.strip())))
        pos += size
    if end_of_head < 0:
        c.fail("truncated: the head has no blank line (CRLF CRLF) at its end")
        return Annotated(Layer.HTTP, raw, tuple(c.spans), title, tuple(decoded), c.problem)
    c.take(2, "end of head", "CRLF: a blank line", Role.SEPARATOR, "The headers end here.")
    body = raw[end_of_head + 4 :]
    if body:
        if polling is None:
            polling = b"transport=polling" in raw[:head_end] or body[:1] in b"0123456b"
        if polling and not chunked:
            _polling_body(c, body, decoded)
        else:
            what = "chunked transfer coding" if chunked else _text(body)
            c.take(len(body), "body", f"{_plural(len(body))}: {what}", Role.PAYLOAD)
    return Annotated(Layer.HTTP, raw, tuple(c.spans), title, tuple(decoded), c.problem)


def _polling_body(c: _Cursor, body: bytes, decoded: list[tuple[str, str]]) -> None:
    """An Engine.IO v4 payload: packets separated by the record separator 0x1e."""
    records = body.split(RECORD_SEPARATOR.encode())
    for i, record in enumerate(records):
        if i:
            c.take(
                1,
                "record separator",
                "0x1e",
                Role.SEPARATOR,
                "Engine.IO v4 separates the packets of a polling body with \\x1e.",
            )
        if record:
            c.take(
                len(record),
                f"Engine.IO packet {i + 1}",
                _text(record),
                Role.PAYLOAD,
                "One packet of the long-polling payload.",
            )
    decoded.append(("Engine.IO packets in the body", str(sum(1 for r in records if r))))


# -- Engine.IO v4 ---------------------------------------------------------------------

#: The protocol's "Usage" column (https://socket.io/docs/v4/engine-io-protocol/).
EIO_USAGE: dict[EioPacketType, str] = {
    EioPacketType.OPEN: "Used during the handshake.",
    EioPacketType.CLOSE: "Used to indicate that a transport can be closed.",
    EioPacketType.PING: "Used in the heartbeat mechanism.",
    EioPacketType.PONG: "Used in the heartbeat mechanism.",
    EioPacketType.MESSAGE: "Used to send a payload to the other side.",
    EioPacketType.UPGRADE: "Used during the upgrade process.",
    EioPacketType.NOOP: "Used during the upgrade process.",
}


def annotate_eio(raw: bytes, *, binary: bool = False) -> Annotated:
    """One Engine.IO packet: ``<packet type>[<data>]``, or a binary MESSAGE's bytes."""
    c = _Cursor(raw)
    decoded: list[tuple[str, str]] = []
    if binary:
        c.take(
            len(raw),
            "binary data",
            _plural(len(raw)),
            Role.PAYLOAD,
            "On WebSocket a binary message is a MESSAGE packet with no type prefix.",
        )
        return Annotated(Layer.EIO, raw, tuple(c.spans), "Engine.IO MESSAGE (binary)")
    if not raw:
        return Annotated(Layer.EIO, raw, (), "empty Engine.IO packet", (), "empty packet")
    head = raw[:1]
    if head == b"b":
        c.take(1, "packet type", "b: binary MESSAGE, base64 (polling)", Role.OPCODE)
        if len(raw) > 1:
            c.take(len(raw) - 1, "base64 data", _text(raw[1:]), Role.PAYLOAD)
        return Annotated(Layer.EIO, raw, tuple(c.spans), "Engine.IO MESSAGE (base64)")
    if head not in [str(int(t)).encode() for t in EioPacketType]:
        c.fail(f"unknown Engine.IO packet type {head!r}")
        return Annotated(Layer.EIO, raw, tuple(c.spans), "not an Engine.IO packet", (), c.problem)
    kind = EioPacketType(int(head))
    c.take(1, "packet type", f"{int(kind)} = {kind.name}", Role.OPCODE, EIO_USAGE[kind])
    data = raw[1:]
    title = f"Engine.IO {kind.name}"
    if data:
        if kind is EioPacketType.OPEN:
            c.take(
                len(data),
                "handshake data",
                _text(data),
                Role.JSON,
                "JSON: sid, upgrades, pingInterval, pingTimeout, maxPayload.",
            )
            decoded += _json_fields(data)
        elif kind is EioPacketType.MESSAGE:
            c.take(
                len(data),
                "data",
                _text(data),
                Role.PAYLOAD,
                "The Socket.IO packet this message carries.",
            )
        elif data == b"probe":
            c.take(
                5,
                "data",
                "probe",
                Role.PAYLOAD,
                "The upgrade test: 2probe on the new WebSocket, answered by 3probe.",
            )
            title += " probe"
        else:
            c.take(len(data), "data", _text(data), Role.PAYLOAD)
    return Annotated(Layer.EIO, raw, tuple(c.spans), title, tuple(decoded), c.problem)


def _json_fields(data: bytes) -> list[tuple[str, str]]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return [("JSON", "not valid JSON")]
    if isinstance(value, dict):
        return [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in value.items()]
    return [("JSON", json.dumps(value, ensure_ascii=False)[:MAX_VALUE])]


# -- Socket.IO v5 ---------------------------------------------------------------------

#: The protocol's "Usage" column (https://socket.io/docs/v4/socket-io-protocol/).
SIO_USAGE: dict[SioPacketType, str] = {
    SioPacketType.CONNECT: "Used during the connection to a namespace.",
    SioPacketType.DISCONNECT: "Used when disconnecting from a namespace.",
    SioPacketType.EVENT: "Used to send data to the other side.",
    SioPacketType.ACK: "Used to acknowledge an event.",
    SioPacketType.CONNECT_ERROR: "Used during the connection to a namespace.",
    SioPacketType.BINARY_EVENT: "Used to send binary data to the other side.",
    SioPacketType.BINARY_ACK: "Used to acknowledge an event (the response includes binary data).",
}


def _digits(raw: bytes, pos: int) -> int:
    """The end of the run of ASCII digits that starts at ``pos``."""
    end = pos
    while end < len(raw) and 0x30 <= raw[end] <= 0x39:
        end += 1
    return end


def annotate_sio(raw: bytes) -> Annotated:
    """One Socket.IO packet, in the order of its wire format:
    ``<packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment id>][JSON]``.
    """
    c = _Cursor(raw)
    decoded: list[tuple[str, str]] = []
    if not raw:
        return Annotated(Layer.SIO, raw, (), "empty Socket.IO packet", (), "empty packet")
    head = raw[:1]
    if not b"0" <= head <= b"6":
        c.fail(f"unknown Socket.IO packet type {head!r}")
        return Annotated(Layer.SIO, raw, tuple(c.spans), "not a Socket.IO packet", (), c.problem)
    kind = SioPacketType(int(head))
    c.take(1, "packet type", f"{int(kind)} = {kind.name}", Role.OPCODE, SIO_USAGE[kind])
    pos = 1
    if kind.is_binary:
        end = _digits(raw, pos)
        if end == pos or raw[end : end + 1] != b"-":
            c.fail("binary packet without its '<count>-' prefix")
            return _sio_result(c, kind, decoded)
        count = int(raw[pos:end])
        c.take(
            end - pos,
            "attachments",
            _plural(count, "attachment"),
            Role.LENGTH,
            "How many binary attachments follow, one Engine.IO message each.",
        )
        c.take(1, "attachments end", "-", Role.SEPARATOR)
        pos = end + 1
    namespace = "/"
    if raw[pos : pos + 1] == b"/":
        comma = raw.find(b",", pos)
        end = len(raw) if comma < 0 else comma
        namespace = raw[pos:end].decode("utf-8", "replace")
        c.take(
            end - pos,
            "namespace",
            namespace,
            Role.NAMESPACE,
            "Only present when it is not the main namespace (/).",
        )
        if comma >= 0:
            c.take(1, "namespace end", ",", Role.SEPARATOR)
        pos = end + (1 if comma >= 0 else 0)
    decoded.append(("namespace", namespace))
    end = _digits(raw, pos)
    if end > pos:
        ack = raw[pos:end].decode("ascii")
        note = (
            "The sender asks for an acknowledgement with this id."
            if kind is not SioPacketType.ACK
            else "Answers the EVENT that carried this id."
        )
        c.take(end - pos, "ack id", ack, Role.ACK, note)
        decoded.append(("ack id", ack))
        pos = end
    if pos < len(raw):
        body = raw[pos:]
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            c.fail(f"payload is not JSON: {exc}", "payload (not JSON)")
            return _sio_result(c, kind, decoded)
        c.take(len(body), "payload", _text(body), Role.JSON, _payload_note(kind))
        if kind in (SioPacketType.EVENT, SioPacketType.BINARY_EVENT) and isinstance(value, list):
            if value and isinstance(value[0], str):
                decoded.append(("event", value[0]))
                value = value[1:]
            for i, arg in enumerate(value):
                decoded.append((f"argument {i + 1}", json.dumps(arg, ensure_ascii=False)))
        elif isinstance(value, dict):
            decoded += [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in value.items()]
        else:
            decoded.append(("data", json.dumps(value, ensure_ascii=False)))
    return _sio_result(c, kind, decoded)


def _payload_note(kind: SioPacketType) -> str:
    if kind in (SioPacketType.EVENT, SioPacketType.BINARY_EVENT):
        return "JSON array: the event name, then its arguments."
    if kind in (SioPacketType.ACK, SioPacketType.BINARY_ACK):
        return "JSON array: the values the handler returned."
    if kind is SioPacketType.CONNECT:
        return "JSON object: auth data (client) or the session id (server)."
    return "JSON."


def _sio_result(c: _Cursor, kind: SioPacketType, decoded: list[tuple[str, str]]) -> Annotated:
    event = next((v for k, v in decoded if k == "event"), None)
    title = f"Socket.IO {kind.name}" + (f" {event!r}" if event else "")
    return Annotated(Layer.SIO, c.raw, tuple(c.spans), title, tuple(decoded), c.problem)


# -- RFC 8446 5.1: one TLS record ---------------------------------------------------------


def annotate_tls(raw: bytes) -> Annotated:
    """One TLS record: the five header bytes of RFC 8446 section 5.1, then what can
    still be read of the fragment (a hello's handshake header), or its ciphertext."""
    from tutorial.protocol.tls import HEADER, ContentType, RecordDecoder, TlsRecord

    c = _Cursor(raw)
    got = RecordDecoder().receive_data(raw)
    record = got[0] if got and isinstance(got[0], TlsRecord) else None
    if record is None or len(raw) != HEADER + record.length:
        c.fail("not one whole TLS record")
        return Annotated(Layer.TLS, raw, tuple(c.spans), "not a TLS record", (), c.problem)
    kind = record.content_type
    c.take(
        1,
        "content type",
        f"{int(kind)} ({kind.name.lower()})",
        Role.OPCODE,
        "what the fragment is: 20 change_cipher_spec, 21 alert, 22 handshake, 23 data",
    )
    c.take(
        2,
        "legacy record version",
        f"0x{record.version:04x}",
        Role.FLAG,
        "fixed for compatibility; the real version is agreed in the hellos",
    )
    c.take(2, "length", _plural(record.length), Role.LENGTH, "of the fragment that follows")
    if record.handshake is not None:
        c.take(1, "handshake type", record.kind, Role.OPCODE)
        c.take(3, "handshake length", _plural(int.from_bytes(raw[6:9], "big")), Role.LENGTH)
        if c.left:
            c.take(
                c.left,
                "handshake body",
                _text(raw[9:]),
                Role.PAYLOAD,
                f"readable: server name {record.server_name}"
                if record.server_name
                else "readable: sent before any key is agreed",
            )
    elif c.left:
        secret = kind is ContentType.APPLICATION_DATA or kind is ContentType.HANDSHAKE
        c.take(
            c.left,
            "ciphertext" if secret else "fragment",
            _plural(record.length),
            Role.PAYLOAD,
            "encrypted: a tap sees only its length" if secret else "",
        )
    decoded = (("record", record.kind), ("length", str(record.length)))
    return Annotated(Layer.TLS, raw, tuple(c.spans), str(record), decoded)


# -- one entry point ------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What a caller may know beyond the bytes
    (see [annotate][tutorial.protocol.annotate.annotate])."""

    inflated: bytes | None = None  # a compressed frame's message, inflated
    binary: bool = False  # an Engine.IO packet that was a binary message
    polling: bool | None = None  # an HTTP body that is a long-polling payload


_ANNOTATORS: dict[Layer, Callable[[bytes, Options], Annotated]] = {
    Layer.WS: lambda raw, o: annotate_frame(raw, inflated=o.inflated),
    Layer.HTTP: lambda raw, o: annotate_http(raw, polling=o.polling),
    Layer.EIO: lambda raw, o: annotate_eio(raw, binary=o.binary),
    Layer.SIO: lambda raw, o: annotate_sio(raw),
    Layer.TLS: lambda raw, o: annotate_tls(raw),
}


def annotate(layer: Layer | str, raw: bytes, options: Options | None = None) -> Annotated:
    """The bytes of one unit at ``layer``, cut into named spans. Never raises."""
    layer = Layer(layer)
    options = options or Options()
    annotator = _ANNOTATORS.get(layer)
    if annotator is None:
        span = Span(0, 8 * len(raw), "bytes", _text(raw), Role.PAYLOAD)
        return Annotated(layer, raw, (span,) if raw else (), f"{layer} bytes")
    try:
        return annotator(raw, options)
    except Exception as exc:  # a bug here must not take the inspector down
        c = _Cursor(raw)
        c.fail(f"could not annotate: {type(exc).__name__}: {exc}")
        return Annotated(layer, raw, tuple(c.spans), f"{layer} bytes", (), c.problem)


__all__ = [
    "EIO_USAGE",
    "OPCODE_MEANINGS",
    "SIO_USAGE",
    "Annotated",
    "Options",
    "Role",
    "Span",
    "annotate",
    "annotate_eio",
    "annotate_frame",
    "annotate_http",
    "annotate_sio",
]
