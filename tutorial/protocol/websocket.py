"""RFC 6455 WebSocket frames, and the messages they carry, decoded from raw bytes.

One [FrameDecoder][tutorial.protocol.websocket.FrameDecoder] reads one direction of a connection,
from the first byte after
the ``101 Switching Protocols`` response. It emits, in order:

- a [Frame][tutorial.protocol.websocket.Frame] for every frame, with every header field of section
5.2;
- a [Message][tutorial.protocol.websocket.Message] when a text or binary message is complete
(section 5.4,
  fragmentation; RFC 7692, permessage-deflate);
- a [Close][tutorial.protocol.websocket.Close] for a close frame, with its status code and reason
(section 5.5.1);
- a [DecodeError][tutorial.protocol.layers.DecodeError] for anything that breaks the RFC. A frame
that breaks a rule
  but whose length is known is reported and skipped; a length that cannot be trusted
  stops the direction, since no later byte can be placed on a frame boundary.

The parser is a generator over a tiny stream reader, as in websockets' ``Frame.parse``:
``data = yield from read_exact(2)`` suspends until two bytes are there, so a frame split
across TCP reads needs no special case.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import IntEnum

from tutorial.protocol.layers import DecodeError, Layer
from tutorial.protocol.limits import MAX_FRAME_SIZE

# RFC 6455 1.3: 'the server has to take the value [of Sec-WebSocket-Key] and concatenate
# this with the Globally Unique Identifier (GUID, [RFC4122]) "258EAFA5-E914-47DA-95CA-
# C5AB0DC85B11" in string form [...] A SHA-1 hash (160 bits) [...], base64-encoded [...],
# of this concatenation is then returned in the server's handshake.'
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

DEFAULT_MAX_SIZE = MAX_FRAME_SIZE  # refuse frames and messages larger than this

SAMPLE_MASKING_KEY = bytes.fromhex("37fa213d")
"""RFC 6455 section 5.7's sample masking key (the masked "Hello" example): masked frames of a
deterministic trace are re-masked with it.
"""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``Sec-WebSocket-Key: key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


class Opcode(IntEnum):
    """RFC 6455 5.2: "Opcode: 4 bits. Defines the interpretation of the Payload data"."""

    CONT = 0x0  # continuation frame
    TEXT = 0x1
    BINARY = 0x2
    # 0x3-0x7 are reserved for further non-control frames
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA
    # 0xB-0xF are reserved for further control frames

    @property
    def is_control(self) -> bool:
        # 5.5: "Control frames are identified by opcodes where the most significant bit of
        # the opcode is 1."
        return bool(self & 0x8)


class CloseCode(IntEnum):
    """RFC 6455 7.4.1 status codes, and those IANA registered since (1012-1014)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never on the wire: "no status code was actually present"
    ABNORMAL_CLOSURE = 1006  # never on the wire: closed without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire: the TLS handshake failed


# 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame".
_NEVER_SENT = {1004, CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE}


@dataclass(frozen=True)
class Frame:
    """One frame, every field of the base framing protocol (RFC 6455 5.2):

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-------+-+-------------+-------------------------------+
        |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
        |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
        |N|V|V|V|       |S|             |   (if payload len==126/127)   |
        | |1|2|3|       |K|             |                               |
        +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
        |     Extended payload length continued, if payload len == 127  |
        + - - - - - - - - - - - - - - - +-------------------------------+
        |                               |Masking-key, if MASK set to 1  |
        +-------------------------------+-------------------------------+
        | Masking-key (continued)       |          Payload Data         |
        +-------------------------------- - - - - - - - - - - - - - - - +

    ``payload`` is unmasked; ``raw`` is the frame exactly as it was on the wire.
    """

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: Opcode
    masked: bool
    payload_length: int
    length_form: int  # 7, 16 or 64: how many bits carried the payload length
    masking_key: bytes | None
    payload: bytes
    raw: bytes

    def __str__(self) -> str:
        rsv = "".join(
            f" rsv{i}=1" for i, bit in enumerate((self.rsv1, self.rsv2, self.rsv3), 1) if bit
        )
        return (
            f"{self.opcode.name} fin={int(self.fin)}{rsv} mask={int(self.masked)} "
            f"len={self.payload_length}"
        )


@dataclass(frozen=True)
class Message:
    """A complete text or binary message, reassembled from its frames (and inflated)."""

    opcode: Opcode
    data: bytes | str
    frames: tuple[Frame, ...]
    compressed: bool = False

    def __str__(self) -> str:
        if isinstance(self.data, str):
            text = self.data if len(self.data) <= 40 else self.data[:39] + "…"
            return f"{self.opcode.name} {text!r}"
        return f"{self.opcode.name} {len(self.data)} bytes"


@dataclass(frozen=True)
class Close:
    """A close frame's body: status code and reason (RFC 6455 5.5.1)."""

    code: CloseCode | int
    reason: str
    frame: Frame

    def __str__(self) -> str:
        name = f" {self.code.name}" if isinstance(self.code, CloseCode) else ""
        reason = f" {self.reason!r}" if self.reason else ""
        return f"CLOSE {int(self.code)}{name}{reason}"


WsEvent = Frame | Message | Close | DecodeError


# --- permessage-deflate (RFC 7692) --------------------------------------------------


@dataclass(frozen=True)
class PerMessageDeflate:
    """The permessage-deflate parameters a server accepted (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def no_context_takeover(self, client_to_server: bool | None) -> bool:
        """Whether the sender of this direction starts each message with a fresh window."""
        if client_to_server is None:
            return self.client_no_context_takeover or self.server_no_context_takeover
        if client_to_server:
            return self.client_no_context_takeover
        return self.server_no_context_takeover


def parse_extensions(header: str | None) -> PerMessageDeflate | None:
    """Read ``Sec-WebSocket-Extensions`` of a 101 response; ``None`` if no deflate.

    RFC 6455 9.1: ``extension-list = 1#extension``, ``extension = extension-token
    *( ";" extension-param )``; e.g. ``permessage-deflate; client_max_window_bits=12``.
    """
    for extension in (header or "").split(","):
        name, *params = (part.strip() for part in extension.split(";"))
        if name.lower() != "permessage-deflate":
            continue
        values: dict[str, str | None] = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"') or None
        return PerMessageDeflate(
            server_no_context_takeover="server_no_context_takeover" in values,
            client_no_context_takeover="client_no_context_takeover" in values,
            server_max_window_bits=_window_bits(values.get("server_max_window_bits")),
            client_max_window_bits=_window_bits(values.get("client_max_window_bits")),
        )
    return None


def _window_bits(value: str | None) -> int:
    # RFC 7692 7.1.2: a decimal integer from 8 to 15; absent means 15.
    if value is not None and value.isdigit() and 8 <= int(value) <= 15:
        return int(value)
    return 15


# RFC 7692 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload
# of the message. Decompress the resulting data using DEFLATE."
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


# --- the frame parser ---------------------------------------------------------------


class StreamReader:
    """A byte buffer read by generators (websockets' ``streams.StreamReader``, reduced)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.taken = bytearray()  # bytes read since the last forget(): the frame so far

    def forget(self) -> None:
        self.taken.clear()

    def feed_data(self, data: bytes) -> None:
        self.buffer += data

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """``data = yield from reader.read_exact(n)``: wait until ``n`` bytes are there."""
        while len(self.buffer) < n:
            yield
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        self.taken += data
        return data


class _LostFraming(Exception):
    """Raised inside the parser when no later byte can be placed on a frame boundary."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 5.3: "Octet i of the transformed data ("transformed-octet-i") is the XOR
    of octet i of the original data ("original-octet-i") with octet at index i modulo 4
    of the masking key ("masking-key-octet-j")"."""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(frame: Frame, payload: bytes, masking_key: bytes | None) -> bytes:
    """RFC 6455 5.2, the other way: ``frame``'s header bits around ``payload``.

    The payload length is written in the shortest of the three forms, and with a
    ``masking_key`` the MASK bit is set and the payload masked (5.3). Used to re-encode
    a recorded frame with a new payload or key (deterministic traces re-mask with
    [SAMPLE_MASKING_KEY][tutorial.protocol.websocket.SAMPLE_MASKING_KEY]).
    """
    first = (
        (0x80 if frame.fin else 0)
        | (0x40 if frame.rsv1 else 0)
        | (0x20 if frame.rsv2 else 0)
        | (0x10 if frame.rsv3 else 0)
        | int(frame.opcode)
    )
    header = _header(first, masking_key is not None, len(payload))
    if masking_key is None:
        return header + payload
    return header + masking_key + apply_mask(payload, masking_key)


def _header(first: int, masked: bool, n: int) -> bytes:
    """5.2: the first byte, then MASK and the payload length in its shortest form."""
    mask_bit = 0x80 if masked else 0
    if n < 126:
        return struct.pack("!BB", first, mask_bit | n)
    if n < 1 << 16:
        return struct.pack("!BBH", first, mask_bit | 126, n)
    return struct.pack("!BBQ", first, mask_bit | 127, n)


def text_frame(text: str) -> bytes:
    """A server's whole text message as one frame: FIN, no RSV bits, opcode 1, unmasked
    (5.1: "A server MUST NOT mask any frames that it sends to the client"), the UTF-8
    payload after the length. The bytes aiohttp's ``send_str`` writes for ``text`` on a
    connection without permessage-deflate; the broadcast fast path builds one per
    broadcast ([tutorial.chat.fanout][]).
    """
    payload = text.encode("utf-8")
    return _header(0x80 | Opcode.TEXT, False, len(payload)) + payload


def decode_one_frame(raw: bytes) -> Frame | None:
    """The first frame in ``raw`` (None if there is no whole, valid one)."""
    for event in FrameDecoder().receive_data(raw):
        if isinstance(event, Frame):
            return event
    return None


def parse_frame(
    read_exact: Callable[[int], Generator[None, None, bytes]], max_size: int = DEFAULT_MAX_SIZE
) -> Generator[None, None, Frame | DecodeError]:
    """Read one frame, top to bottom as section 5.2 lays it out.

    Returns the [Frame][tutorial.protocol.websocket.Frame], or a
    [DecodeError][tutorial.protocol.layers.DecodeError] for a whole frame that cannot
    be one (a reserved opcode). Raises ``_LostFraming`` when the length is unusable.
    """
    head = yield from read_exact(2)
    raw = bytearray(head)
    fin = bool(head[0] & 0b1000_0000)  # "Indicates that this is the final fragment"
    rsv1, rsv2, rsv3 = (bool(head[0] & bit) for bit in (0b0100_0000, 0b0010_0000, 0b0001_0000))
    opcode_bits = head[0] & 0b0000_1111
    masked = bool(head[1] & 0b1000_0000)  # "Defines whether the "Payload data" is masked"
    length = head[1] & 0b0111_1111
    # "Payload length: 7 bits, 7+16 bits, or 7+64 bits. [...] If 0-125, that is the
    # payload length. If 126, the following 2 bytes interpreted as a 16-bit unsigned
    # integer are the payload length. If 127, the following 8 bytes interpreted as a
    # 64-bit unsigned integer (the most significant bit MUST be 0) are the payload length."
    length_form = 7
    if length == 126:
        extended = yield from read_exact(2)
        raw += extended
        length, length_form = int.from_bytes(extended, "big"), 16
    elif length == 127:
        extended = yield from read_exact(8)
        raw += extended
        length, length_form = int.from_bytes(extended, "big"), 64
        if length >> 63:
            raise _LostFraming(
                "64-bit payload length with its most significant bit set", bytes(raw)
            )
    if length > max_size:
        raise _LostFraming(f"frame of {length} bytes is over the {max_size}-byte limit", bytes(raw))
    # "Masking-key: 0 or 4 bytes [...] present if the mask bit is set to 1"
    masking_key = (yield from read_exact(4)) if masked else None
    if masking_key is not None:
        raw += masking_key
    data = yield from read_exact(length)
    raw += data
    try:
        opcode = Opcode(opcode_bits)
    except ValueError:
        # 5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the
        # WebSocket Connection_." The length is sound, so a tap can read on.
        return DecodeError(Layer.WS, f"reserved opcode {opcode_bits:#x}", bytes(raw))
    payload = apply_mask(data, masking_key) if masking_key is not None else data
    return Frame(
        fin, rsv1, rsv2, rsv3, opcode, masked, length, length_form, masking_key, payload, bytes(raw)
    )


def check_frame(
    frame: Frame, *, deflate: bool = False, client_to_server: bool | None = None
) -> list[str]:
    """The rules of RFC 6455 (and 7692) that this well-formed frame breaks, if any."""
    problems = []
    # 5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated
    # that defines meanings for non-zero values."
    if frame.rsv1 and not deflate:
        problems.append("RSV1 set but permessage-deflate was not negotiated")
    if frame.rsv2 or frame.rsv3:
        problems.append("RSV2/RSV3 set but no extension defines them")
    # 5.2: "the minimal number of bytes MUST be used to encode the length"
    if (frame.length_form == 16 and frame.payload_length < 126) or (
        frame.length_form == 64 and frame.payload_length < 0x10000
    ):
        problems.append(f"length {frame.payload_length} not in its minimal encoding")
    # 5.1: "a client MUST mask all frames that it sends to the server" and "A server
    # MUST NOT mask any frames that it sends to the client".
    if client_to_server is True and not frame.masked:
        problems.append("client frame is not masked")
    if client_to_server is False and frame.masked:
        problems.append("server frame is masked")
    if frame.opcode.is_control:
        # 5.5: "All control frames MUST have a payload length of 125 bytes or less and
        # MUST NOT be fragmented."
        if frame.payload_length > 125:
            problems.append("control frame payload over 125 bytes")
        if not frame.fin:
            problems.append("fragmented control frame")
        # RFC 7692 6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of
        # control frames and non-first fragments of a data message."
        if frame.rsv1 and deflate:
            problems.append("RSV1 set on a control frame")
    return problems


# --- from frames to messages ---------------------------------------------------------


def parse_close(frame: Frame) -> Close | DecodeError:
    """5.5.1: "the first two bytes of the body MUST be a 2-byte unsigned integer (in
    network byte order) representing a status code [...] Following the 2-byte integer,
    the body MAY contain UTF-8-encoded data with value /reason/"."""
    body = frame.payload
    if not body:
        # 7.1.5: "If this Close control frame contains no status code, _The WebSocket
        # Connection Close Code_ is considered to be 1005."
        return Close(CloseCode.NO_STATUS_RCVD, "", frame)
    if len(body) == 1:
        return DecodeError(Layer.WS, "close frame body of one byte", frame.raw)
    number = int.from_bytes(body[:2], "big")
    # 7.4.2: 0-999 unused, 1000-2999 for the protocol, 3000-4999 for libraries and apps.
    if number in _NEVER_SENT or not (1000 <= number <= 4999):
        return DecodeError(Layer.WS, f"invalid close code {number}", frame.raw)
    try:
        code: CloseCode | int = CloseCode(number)
    except ValueError:
        if number < 3000:
            return DecodeError(Layer.WS, f"unassigned close code {number}", frame.raw)
        code = number
    try:
        reason = body[2:].decode("utf-8")
    except UnicodeDecodeError:
        return DecodeError(Layer.WS, "close reason is not UTF-8", frame.raw)
    return Close(code, reason, frame)


class MessageAssembler:
    """Frames in, messages out: fragmentation (5.4) and permessage-deflate (RFC 7692)."""

    def __init__(
        self,
        deflate: PerMessageDeflate | None = None,
        *,
        client_to_server: bool | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.deflate = deflate
        self.max_size = max_size
        self._no_takeover = deflate is not None and deflate.no_context_takeover(client_to_server)
        self._inflater: zlib._Decompress | None = None
        self._frames: list[Frame] = []

    def receive_frame(self, frame: Frame) -> list[Message | Close | DecodeError]:
        if frame.opcode is Opcode.CLOSE:
            return [parse_close(frame)]
        if frame.opcode.is_control:
            # 5.4: "Control frames [...] MAY be injected in the middle of a fragmented
            # message."
            return []  # ping and pong: the frame says it all
        events: list[Message | Close | DecodeError] = []
        if frame.opcode is Opcode.CONT:
            if not self._frames:
                return [DecodeError(Layer.WS, "continuation frame with no message", frame.raw)]
            if frame.rsv1:
                # RFC 7692 6.1: not on "non-first fragments of a data message"
                return [DecodeError(Layer.WS, "RSV1 set on a continuation frame", frame.raw)]
            self._frames.append(frame)
        else:
            if self._frames:
                # 5.4: "fragments of one message MUST NOT be interleaved between the
                # fragments of another message"
                lost = b"".join(f.raw for f in self._frames)
                events.append(DecodeError(Layer.WS, "new message before the last ended", lost))
            self._frames = [frame]
        if sum(f.payload_length for f in self._frames) > self.max_size:
            lost = b"".join(f.raw for f in self._frames)
            self._frames = []
            return [*events, DecodeError(Layer.WS, "message over the size limit", lost)]
        if frame.fin:
            events.append(self._complete())
        return events

    def _complete(self) -> Message | DecodeError:
        frames, self._frames = tuple(self._frames), []
        first = frames[0]
        data = b"".join(f.payload for f in frames)
        if first.rsv1:
            inflated = self._inflate(data)
            if isinstance(inflated, str):
                return DecodeError(Layer.WS, inflated, b"".join(f.raw for f in frames))
            data = inflated
        if first.opcode is Opcode.TEXT:
            # 5.6: "The "Payload data" is text data encoded as UTF-8."
            try:
                return Message(first.opcode, data.decode("utf-8"), frames, first.rsv1)
            except UnicodeDecodeError:
                return DecodeError(Layer.WS, "text message is not UTF-8", data)
        return Message(first.opcode, data, frames, first.rsv1)

    def _inflate(self, data: bytes) -> bytes | str:
        """Inflate one compressed message; a string is an error."""
        if self._inflater is None or self._no_takeover:
            # Negative wbits: a raw DEFLATE stream, no zlib header (RFC 7692 7.2.1). A
            # 15-bit window also reads data compressed with a smaller one.
            self._inflater = zlib.decompressobj(-15)
        try:
            out = self._inflater.decompress(data + _DEFLATE_TAIL, self.max_size)
        except zlib.error as exc:
            self._inflater = None  # the shared window is lost; later messages may fail too
            return f"cannot inflate message: {exc}"
        if self._inflater.unconsumed_tail:
            self._inflater = None
            return "inflated message over the size limit"
        return out


class FrameDecoder:
    """One direction of a WebSocket connection: bytes in, frames and messages out.

    ``client_to_server`` enables the masking rule of 5.1 and picks which
    ``*_no_context_takeover`` flag applies; ``deflate`` is what the 101 response's
    ``Sec-WebSocket-Extensions`` header agreed
    (see [parse_extensions][tutorial.protocol.websocket.parse_extensions]).
    Call ``receive_data`` with each chunk, in order, and ``eof`` at the end.
    """

    def __init__(
        self,
        *,
        client_to_server: bool | None = None,
        deflate: PerMessageDeflate | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.client_to_server = client_to_server
        self.deflate = deflate
        self.max_size = max_size
        self.stopped = False
        self._reader = StreamReader()
        self._assembler = MessageAssembler(
            deflate, client_to_server=client_to_server, max_size=max_size
        )
        self._events: list[WsEvent] = []
        self._parser = self._parse()
        next(self._parser)  # run up to the first read

    def receive_data(self, data: bytes) -> list[WsEvent]:
        """Decode what ``data`` completes; partial frames wait for the next call."""
        if self.stopped:
            if not data:
                return []
            return [DecodeError(Layer.WS, "not decoded: framing lost earlier", data)]
        self._reader.feed_data(data)
        try:
            next(self._parser)
        except StopIteration:
            self.stopped = True
        events, self._events = self._events, []
        return events

    def eof(self) -> list[WsEvent]:
        """The connection closed: bytes still waiting are an unfinished frame."""
        rest = bytes(self._reader.taken + self._reader.buffer)
        if self.stopped or not rest:
            return []
        self.stopped = True
        self._reader.buffer.clear()
        return [DecodeError(Layer.WS, "connection closed in the middle of a frame", rest)]

    def _parse(self) -> Generator[None, None, None]:
        deflate = self.deflate is not None
        while True:
            self._reader.forget()
            try:
                frame = yield from parse_frame(self._reader.read_exact, self.max_size)
            except _LostFraming as exc:
                rest = bytes(self._reader.buffer)
                self._reader.buffer.clear()
                self._events.append(DecodeError(Layer.WS, exc.reason, exc.raw + rest))
                return
            if isinstance(frame, DecodeError):
                self._events.append(frame)
                continue
            self._events.append(frame)
            problems = check_frame(frame, deflate=deflate, client_to_server=self.client_to_server)
            for problem in problems:
                self._events.append(DecodeError(Layer.WS, problem, frame.raw))
            if not problems:
                self._events += self._assembler.receive_frame(frame)
