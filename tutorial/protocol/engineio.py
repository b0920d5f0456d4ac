"""Engine.IO v4 packets and long-polling payloads.

Engine.IO is the layer under Socket.IO that keeps one session alive across transports.
From the protocol (https://socket.io/docs/v4/engine-io-protocol/):

    An Engine.IO packet consists of:
    - a packet type
    - an optional packet payload

    | Type    | ID | Usage                                            |
    |---------|----|--------------------------------------------------|
    | open    | 0  | Used during the handshake.                       |
    | close   | 1  | Used to indicate that a transport can be closed. |
    | ping    | 2  | Used in the heartbeat mechanism.                 |
    | pong    | 3  | Used in the heartbeat mechanism.                 |
    | message | 4  | Used to send a payload to the other side.        |
    | upgrade | 5  | Used during the upgrade process.                 |
    | noop    | 6  | Used during the upgrade process.                 |

A packet is encoded as ``<packet type>[<data>]``: ``4hello`` is a message, ``2probe`` a
ping. On WebSocket, one packet is one WebSocket message, and a binary message is a
``message`` packet whose data is the bytes themselves, with no type prefix (new in v4). On
HTTP long-polling, one body carries several packets separated by the record separator
``\\x1e`` (v3 used length prefixes), and binary data travels as ``b`` + base64.

The functions here never raise on bad input: they return a
[DecodeError][tutorial.protocol.layers.DecodeError].
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeGuard

from tutorial.protocol.layers import DecodeError, Layer

RECORD_SEPARATOR = "\x1e"
PROBE = "probe"


class EioPacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True)
class OpenPayload:
    """The handshake: the server's first packet carries JSON-encoded handshake data."""

    sid: str  # the session id, repeated in every later polling request (?sid=)
    upgrades: tuple[str, ...]  # transports the client may upgrade to, e.g. ("websocket",)
    ping_interval: int  # ms between the server's pings (the heartbeat)
    ping_timeout: int  # ms the server waits for the pong before closing
    # "server configured maximum number of bytes per chunk, used by the client to
    # aggregate packets into payloads" (absent before v4)
    max_payload: int | None

    def __str__(self) -> str:
        return f"sid={self.sid}"


@dataclass(frozen=True)
class EioPacket:
    """One Engine.IO packet; ``data`` is the payload text, bytes for binary, or ``None``."""

    type: EioPacketType
    data: str | bytes | None = None

    @property
    def is_probe(self) -> bool:
        """The upgrade handshake: the client sends ``2probe`` on the new WebSocket, the
        server answers ``3probe``, then the client sends ``5`` (upgrade)."""
        return self.type in (EioPacketType.PING, EioPacketType.PONG) and self.data == PROBE

    @property
    def open_payload(self) -> OpenPayload | None:
        """The handshake data of an OPEN packet (``None`` for other packets, or bad JSON)."""
        if self.type is not EioPacketType.OPEN or not isinstance(self.data, str):
            return None
        payload = decode_open(self.data)
        return payload if isinstance(payload, OpenPayload) else None

    def __str__(self) -> str:
        label = f"eio {self.type.name}"
        if isinstance(self.data, bytes):
            return f"{label} {len(self.data)} bytes"
        opened = self.open_payload
        if opened is not None:
            return f"{label} {opened}"
        if self.data:
            return f"{label} {self.data if len(self.data) <= 40 else self.data[:39] + '…'}"
        return label


def decode_open(data: str) -> OpenPayload | DecodeError:
    """Parse the JSON of an OPEN packet, e.g. ``{"sid":"lv_VI97HAXpY6yYWAAAC",
    "upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}``.
    """
    raw = data.encode("utf-8", "surrogatepass")
    try:
        fields = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return DecodeError(Layer.EIO, f"OPEN handshake is not JSON: {exc}", raw)
    if not isinstance(fields, dict):
        return DecodeError(Layer.EIO, "OPEN handshake is not a JSON object", raw)
    sid, upgrades = fields.get("sid"), fields.get("upgrades", [])
    interval, timeout = fields.get("pingInterval"), fields.get("pingTimeout")
    max_payload = fields.get("maxPayload")
    if not isinstance(sid, str) or not sid:
        return DecodeError(Layer.EIO, "OPEN handshake has no sid", raw)
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        return DecodeError(Layer.EIO, "OPEN upgrades is not a list of strings", raw)
    if not (_is_int(interval) and _is_int(timeout)):
        return DecodeError(Layer.EIO, "OPEN pingInterval/pingTimeout are not integers", raw)
    if max_payload is not None and not _is_int(max_payload):
        return DecodeError(Layer.EIO, "OPEN maxPayload is not an integer", raw)
    return OpenPayload(sid, tuple(upgrades), interval, timeout, max_payload)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_packet(encoded: str | bytes) -> EioPacket | DecodeError:
    """One packet: a WebSocket message (text or binary), or one record of a polling body."""
    if isinstance(encoded, bytes | bytearray):
        # On WebSocket a binary message is a MESSAGE packet: no type prefix, just bytes.
        return EioPacket(EioPacketType.MESSAGE, bytes(encoded))
    raw = encoded.encode("utf-8", "surrogatepass")
    if not encoded:
        return DecodeError(Layer.EIO, "empty packet", raw)
    if encoded[0] == "b":
        # Polling bodies are text: binary data is base64-encoded behind a "b".
        try:
            return EioPacket(EioPacketType.MESSAGE, base64.b64decode(encoded[1:], validate=True))
        except (binascii.Error, ValueError):
            return DecodeError(Layer.EIO, "b-prefixed packet is not base64", raw)
    if encoded[0] not in "0123456":
        return DecodeError(Layer.EIO, f"unknown packet type {encoded[0]!r}", raw)
    packet = EioPacket(EioPacketType(int(encoded[0])), encoded[1:] or None)
    if packet.type is EioPacketType.OPEN:
        opened = decode_open(encoded[1:])
        if isinstance(opened, DecodeError):
            return DecodeError(Layer.EIO, opened.reason, raw)
    return packet


def split_payload(body: str | bytes) -> list[str] | DecodeError:
    """A polling body cut at the record separators; an empty body holds no packet."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return DecodeError(Layer.EIO, "polling body is not UTF-8", bytes(body))
        return text.split(RECORD_SEPARATOR) if text else []
    return body.split(RECORD_SEPARATOR) if body else []


def decode_payload(body: str | bytes) -> list[EioPacket | DecodeError]:
    """The packets of a long-polling request or response body, e.g. ``40\\x1e42[...]``."""
    records = split_payload(body)
    if isinstance(records, DecodeError):
        return [records]
    return [decode_packet(record) for record in records]


def encode_packet(packet: EioPacket, *, b64: bool = False) -> str | bytes:
    """The wire form of ``packet``: bytes for binary on WebSocket, ``b``+base64 if ``b64``."""
    if isinstance(packet.data, bytes):
        return "b" + base64.b64encode(packet.data).decode("ascii") if b64 else packet.data
    return f"{int(packet.type)}{packet.data or ''}"


def encode_payload(packets: Iterable[EioPacket]) -> str:
    """A long-polling body: packets joined by ``\\x1e``, binary as ``b`` + base64."""
    return RECORD_SEPARATOR.join(str(encode_packet(p, b64=True)) for p in packets)


def open_packet(
    sid: str,
    upgrades: Iterable[str] = ("websocket",),
    ping_interval: int = 25000,
    ping_timeout: int = 20000,
    max_payload: int = 1000000,
) -> EioPacket:
    """An OPEN packet as a server sends it (for tests and examples)."""
    fields: dict[str, Any] = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval,
        "pingTimeout": ping_timeout,
        "maxPayload": max_payload,
    }
    return EioPacket(EioPacketType.OPEN, json.dumps(fields, separators=(",", ":")))
