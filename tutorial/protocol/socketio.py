"""Socket.IO v5 packets, carried in Engine.IO MESSAGE packets.

From the protocol (https://socket.io/docs/v4/socket-io-protocol/), a packet is encoded
as (one line on the wire):

    <packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment id>]
    [JSON-stringified payload without binary]

    + binary attachments extracted

    | Type          | ID | Usage                                                    |
    |---------------|----|----------------------------------------------------------|
    | CONNECT       | 0  | Used during the connection to a namespace.               |
    | DISCONNECT    | 1  | Used when disconnecting from a namespace.                |
    | EVENT         | 2  | Used to send data to the other side.                     |
    | ACK           | 3  | Used to acknowledge an event.                            |
    | CONNECT_ERROR | 4  | Used during the connection to a namespace.               |
    | BINARY_EVENT  | 5  | Used to send binary data to the other side.              |
    | BINARY_ACK    | 6  | Used to acknowledge an event (the response includes binary data). |

    "The namespace is only included if it is different from the main namespace (/)"

So ``42["send-message",{"text":"hi"}]`` is an EVENT on ``/``; ``2/admin,3["x"]`` an
EVENT on ``/admin`` that asks for ack 3; ``51-["upload",{"_placeholder":true,"num":0}]``
a BINARY_EVENT whose one attachment follows as a binary Engine.IO message.

Decoding never raises: what breaks the format becomes a
[DecodeError][tutorial.protocol.layers.DecodeError].
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from tutorial.protocol.layers import DecodeError, Layer
from tutorial.protocol.limits import MAX_ACK_ID, MAX_ATTACHMENTS, MAX_DEPTH, RESERVED_EVENTS

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²"


class SioPacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6

    @property
    def is_binary(self) -> bool:
        return self in (SioPacketType.BINARY_EVENT, SioPacketType.BINARY_ACK)


@dataclass(frozen=True)
class SioPacket:
    """One Socket.IO packet. ``data`` is the decoded JSON payload (``None`` if absent);
    ``binary`` holds the attachments once they have all arrived
    (see [SioDecoder][tutorial.protocol.socketio.SioDecoder]).
    """

    type: SioPacketType
    namespace: str = "/"
    id: int | None = None
    data: Any = None
    attachments: int = 0
    binary: tuple[bytes, ...] = ()

    @property
    def event_name(self) -> str | None:
        """The event of an EVENT packet: the first element of its array."""
        is_event = self.type in (SioPacketType.EVENT, SioPacketType.BINARY_EVENT)
        if is_event and isinstance(self.data, list) and self.data:
            name = self.data[0]
            return name if isinstance(name, str) else None
        return None

    @property
    def args(self) -> list[Any]:
        """The arguments: after the name for an EVENT, all of them for an ACK; with each
        ``{"_placeholder":true,"num":i}`` replaced by attachment ``i`` once it is here."""
        if not isinstance(self.data, list):
            return []
        items = self.data[1:] if self.event_name is not None else self.data
        if self.binary:
            return [_reconstruct(item, self.binary) for item in items]
        return list(items)

    def __str__(self) -> str:
        parts = [f"sio {self.type.name}"]
        if self.namespace != "/":
            parts.append(self.namespace)
        if self.data is not None:
            parts.append(_summary(self.data))
        if self.id is not None:
            parts.append(f"id={self.id}")
        if self.attachments:
            parts.append(f"+{self.attachments} binary")
        return " ".join(parts)


def _summary(value: Any, top: bool = True) -> str:
    """A diagram label for a JSON value: ``["send-message",{…}]``."""
    if isinstance(value, list):
        if not top:
            return "[…]"
        items = [_summary(item, False) for item in value[:4]]
        return "[" + ",".join(items + (["…"] if len(value) > 4 else [])) + "]"
    if isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return text if top and len(text) <= 40 else "{…}"
    if isinstance(value, str) and len(value) > 24:
        value = value[:23] + "…"
    return json.dumps(value, ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not.
    raise ValueError(f"{name} is not JSON")


def _error(reason: str, text: str) -> DecodeError:
    return DecodeError(Layer.SIO, reason, text.encode("utf-8", "surrogatepass"))


def decode_packet(text: str) -> SioPacket | DecodeError:
    """Decode one text packet, field by field in the order of the wire format."""
    if not isinstance(text, str):
        return DecodeError(Layer.SIO, "binary data outside an attachment", bytes(text))
    if not text:
        return _error("empty packet", text)
    # <packet type>
    if text[0] not in "0123456":
        return _error(f"unknown packet type {text[0]!r}", text)
    kind = SioPacketType(int(text[0]))
    pos = 1
    # [<# of binary attachments>-]
    attachments = 0
    if kind.is_binary:
        count = _DIGITS.match(text, pos)
        if count is None or not text.startswith("-", count.end()):
            return _error("binary packet without its '<count>-' prefix", text)
        if len(count.group()) > 4 or int(count.group()) > MAX_ATTACHMENTS:
            return _error("too many attachments", text)
        attachments, pos = int(count.group()), count.end() + 1
    # [<namespace>,]
    namespace = "/"
    if text.startswith("/", pos):
        comma = text.find(",", pos)
        end = len(text) if comma == -1 else comma
        namespace = text[pos:end].partition("?")[0]  # v4 carried a query string here
        pos = end if comma == -1 else end + 1
    # [<acknowledgment id>]
    ack_id = None
    digits = _DIGITS.match(text, pos)
    if digits is not None:
        if len(digits.group()) > 16 or int(digits.group()) > MAX_ACK_ID:
            return _error("acknowledgment id too large", text)
        ack_id, pos = int(digits.group()), digits.end()
    # [JSON-stringified payload without binary]
    data = None
    if pos < len(text):
        try:
            data = json.loads(text[pos:], parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return _error(f"payload is not JSON: {exc}", text)
        if _depth(data) > MAX_DEPTH:
            return _error(f"payload nested deeper than {MAX_DEPTH}", text)
    problem = _check_payload(kind, data, ack_id, pos < len(text))
    if problem:
        return _error(problem, text)
    return SioPacket(kind, namespace, ack_id, data, attachments)


def _check_payload(kind: SioPacketType, data: Any, ack_id: int | None, present: bool) -> str:
    """What the protocol expects of each type's payload; an empty string if all is well."""
    if kind is SioPacketType.CONNECT:
        # From the client: nothing, or an object (the auth data); from the server: {"sid"}.
        return "" if not present or isinstance(data, dict) else "CONNECT payload not an object"
    if kind is SioPacketType.DISCONNECT:
        return "DISCONNECT carries no payload" if present else ""
    if kind is SioPacketType.CONNECT_ERROR:
        # v5: {"message": ...}; v4 sent a bare string.
        ok = isinstance(data, dict | str)
        return "" if ok else "CONNECT_ERROR payload must be an object or a string"
    if kind in (SioPacketType.EVENT, SioPacketType.BINARY_EVENT):
        # The payload is an array: the event name, then its arguments.
        if not isinstance(data, list) or not data:
            return "EVENT payload must be a non-empty array"
        if not isinstance(data[0], str):
            return "EVENT name must be a string"
        if data[0] in RESERVED_EVENTS:
            return f"reserved event name {data[0]!r}"
        return ""
    # ACK and BINARY_ACK: an array of return values, answering the EVENT with this id.
    if not isinstance(data, list):
        return "ACK payload must be an array"
    return "" if ack_id is not None else "ACK without an acknowledgment id"


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest (counted without recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            stack += [(child, depth + 1) for child in children]
    return deepest


def _placeholders(value: Any) -> list[Any]:
    """Every ``{"_placeholder":true,"num":i}`` in a payload, depth first."""
    if isinstance(value, list):
        return [p for item in value for p in _placeholders(item)]
    if isinstance(value, dict):
        if value.get("_placeholder") is True and "num" in value:
            return [value]
        return [p for item in value.values() for p in _placeholders(item)]
    return []


def _reconstruct(value: Any, binary: tuple[bytes, ...]) -> Any:
    if isinstance(value, list):
        return [_reconstruct(item, binary) for item in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True and "num" in value:
            return binary[value["num"]]
        return {key: _reconstruct(item, binary) for key, item in value.items()}
    return value


class SioDecoder:
    """One direction's Socket.IO stream: a BINARY_EVENT or BINARY_ACK waits for the
    attachments that follow it (one binary Engine.IO message each, in placeholder
    order) and is emitted once they are all here.

    Feed it the data of every Engine.IO MESSAGE packet, in order.
    """

    def __init__(self) -> None:
        self._waiting: SioPacket | None = None
        self._text = ""
        self._binary: list[bytes] = []

    @property
    def pending_text(self) -> str | None:
        """The text of the packet that is waiting for attachments, if one is."""
        return self._text if self._waiting is not None else None

    def receive(self, data: str | bytes) -> list[SioPacket | DecodeError]:
        if isinstance(data, bytes | bytearray):
            if self._waiting is None:
                return [DecodeError(Layer.SIO, "attachment with no packet waiting", bytes(data))]
            self._binary.append(bytes(data))
            if len(self._binary) < self._waiting.attachments:
                return []
            return [self._complete()]
        events: list[SioPacket | DecodeError] = []
        if self._waiting is not None:
            have, need = len(self._binary), self._waiting.attachments
            events.append(_error(f"packet got {have} of its {need} attachments", self._text))
            self._waiting = None
        packet = decode_packet(data)
        if isinstance(packet, SioPacket) and packet.attachments:
            self._waiting, self._text, self._binary = packet, data, []
        else:
            events.append(packet)
        return events

    def _complete(self) -> SioPacket | DecodeError:
        packet, self._waiting = self._waiting, None
        assert packet is not None
        for placeholder in _placeholders(packet.data):
            num = placeholder.get("num")
            if type(num) is not int or not 0 <= num < len(self._binary):
                return _error(f"placeholder num {num!r} names no attachment", self._text)
        return replace(packet, binary=tuple(self._binary))
