"""TLS records, as a tap in front of a TLS-terminating load balancer sees them.

What crosses the wire between a browser and nginx with TLS is a stream of *records*
(RFC 8446 section 5.1, and RFC 5246 6.2 before it)::

    struct {
        ContentType type;                 /* 1 byte: 20, 21, 22 or 23 */
        ProtocolVersion legacy_record_version;   /* 2 bytes: 0x0301 or 0x0303 */
        uint16 length;                    /* 2 bytes, at most 2^14 + 256 */
        opaque fragment[TLSPlaintext.length];
    } TLSPlaintext;

Only the first messages are readable: the ``ClientHello`` and ``ServerHello`` of the
handshake (and in TLS 1.2 the certificate). Everything after them, the HTTP upgrade
and every WebSocket frame included, is ``application_data``: ciphertext whose only
visible property is its length. That is the lesson of TLS termination: in front of
the balancer a tap sees sizes; behind it, Engine.IO in clear text.

[RecordDecoder][tutorial.protocol.tls.RecordDecoder] takes the bytes of one direction in
any chunks and returns a [TlsRecord][tutorial.protocol.tls.TlsRecord] per complete
record (or a [DecodeError][tutorial.protocol.layers.DecodeError], after which it stops:
no later byte can be placed on a record boundary).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tutorial.protocol.layers import DecodeError, Layer

#: RFC 8446 5.1: "The length MUST NOT exceed 2^14 + 256 bytes" (TLSCiphertext).
MAX_RECORD = 2**14 + 256
HEADER = 5


class ContentType(IntEnum):
    """RFC 8446 5.1, ``enum { ... } ContentType``."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(IntEnum):
    """RFC 8446 4, ``enum { ... } HandshakeType`` (the ones a tap can still read)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    SERVER_HELLO_DONE = 14
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


CONTENT_TYPES = frozenset(t.value for t in ContentType)
"""Every record type byte this decoder knows."""
HANDSHAKE_TYPES = frozenset(t.value for t in HandshakeType)
"""Every handshake type byte this decoder knows."""

_NAMES = {
    HandshakeType.CLIENT_HELLO: "ClientHello",
    HandshakeType.SERVER_HELLO: "ServerHello",
    HandshakeType.NEW_SESSION_TICKET: "NewSessionTicket",
    HandshakeType.CERTIFICATE: "Certificate",
    HandshakeType.SERVER_KEY_EXCHANGE: "ServerKeyExchange",
    HandshakeType.SERVER_HELLO_DONE: "ServerHelloDone",
    HandshakeType.CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
    HandshakeType.FINISHED: "Finished",
}


@dataclass(frozen=True)
class TlsRecord:
    """One record: its header fields, what can still be read of it, its bytes."""

    content_type: ContentType
    version: int
    length: int
    raw: bytes
    handshake: HandshakeType | None = None  # the first message, if still readable
    server_name: str | None = None  # a ClientHello's SNI, if it sent one

    @property
    def encrypted(self) -> bool:
        return self.content_type is ContentType.APPLICATION_DATA

    @property
    def kind(self) -> str:
        """A short name: ``ClientHello``, ``application data``, ``alert`` ..."""
        if self.handshake is not None:
            return _NAMES.get(self.handshake, f"handshake {int(self.handshake)}")
        if self.content_type is ContentType.HANDSHAKE:
            return "handshake (encrypted)"
        return self.content_type.name.lower().replace("_", " ")

    def __str__(self) -> str:
        if self.encrypted:
            return f"TLS application data, {self.length} bytes (encrypted)"
        sni = f" (SNI {self.server_name})" if self.server_name else ""
        return f"TLS {self.kind}{sni}, {self.length} bytes"


class RecordDecoder:
    """Bytes of one direction in, [TlsRecord][tutorial.protocol.tls.TlsRecord] out; sans-I/O."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False

    def receive_data(self, data: bytes) -> list[TlsRecord | DecodeError]:
        if self._failed:
            return []
        self._buffer += data
        out: list[TlsRecord | DecodeError] = []
        while len(self._buffer) >= HEADER:
            kind, version, length = struct.unpack("!BHH", self._buffer[:HEADER])
            if kind not in CONTENT_TYPES or version >> 8 != 3:
                self._failed = True
                out.append(
                    DecodeError(
                        Layer.TLS,
                        f"not a TLS record header: {bytes(self._buffer[:5]).hex()}",
                        bytes(self._buffer),
                    )
                )
                return out
            if length > MAX_RECORD:
                self._failed = True
                out.append(
                    DecodeError(
                        Layer.TLS,
                        f"record length {length} > 2^14 + 256",
                        bytes(self._buffer[:HEADER]),
                    )
                )
                return out
            if len(self._buffer) < HEADER + length:
                break
            raw = bytes(self._buffer[: HEADER + length])
            del self._buffer[: HEADER + length]
            out.append(_record(ContentType(kind), version, length, raw))
        return out


def _record(kind: ContentType, version: int, length: int, raw: bytes) -> TlsRecord:
    handshake = None
    server_name = None
    fragment = raw[HEADER:]
    if kind is ContentType.HANDSHAKE and fragment:
        # RFC 8446 4: struct { HandshakeType msg_type; uint24 length; ... } Handshake.
        # A readable handshake record starts with a known type and a length that fits.
        msg_type = fragment[0]
        inner = int.from_bytes(fragment[1:4], "big") if len(fragment) >= 4 else -1
        if msg_type in HANDSHAKE_TYPES and 0 <= inner <= len(fragment) - 4:
            handshake = HandshakeType(msg_type)
            if handshake is HandshakeType.CLIENT_HELLO:
                server_name = client_hello_sni(fragment[4 : 4 + inner])
    return TlsRecord(kind, version, length, raw, handshake, server_name)


def client_hello_sni(body: bytes) -> str | None:
    """The ``server_name`` extension of a ClientHello body (RFC 6066 3), if present."""
    try:
        # legacy_version (2), random (32), legacy_session_id <0..32>
        i = 34
        i += 1 + body[i]
        # cipher_suites <2..2^16-2>, legacy_compression_methods <1..2^8-1>
        i += 2 + int.from_bytes(body[i : i + 2], "big")
        i += 1 + body[i]
        end = i + 2 + int.from_bytes(body[i : i + 2], "big")
        i += 2
        while i + 4 <= end:
            ext_type = int.from_bytes(body[i : i + 2], "big")
            ext_len = int.from_bytes(body[i + 2 : i + 4], "big")
            data = body[i + 4 : i + 4 + ext_len]
            if ext_type == 0 and len(data) >= 5:  # server_name: list<2>, type<1>, name<2>
                name_len = int.from_bytes(data[3:5], "big")
                return data[5 : 5 + name_len].decode("ascii", "replace")
            i += 4 + ext_len
    except IndexError:
        return None
    return None
