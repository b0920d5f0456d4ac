"""A defensive Socket.IO packet decoder for the server.

python-socketio decodes every incoming packet with its ``Packet`` class; a malformed
one (invalid JSON, ``42[]``, an unknown packet type, an event name that is not a string)
raises inside the library, which logs a traceback and answers nothing. The library lets
us pass our own class as ``serializer=``: this one turns every malformed packet into an
ordinary EVENT named :data:`MALFORMED_EVENT`, which the chat server answers with
``error {code: "invalid_payload"}`` like any other bad input.
"""

from __future__ import annotations

from typing import Any

from socketio import packet as sio_packet

MALFORMED_EVENT = "__malformed__"

# Deeper JSON than this is refused before it reaches a handler.
MAX_DEPTH = 32


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counting stops at ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


class DefensivePacket(sio_packet.Packet):
    """``socketio.packet.Packet`` that never raises on input from a client."""

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments: int = super().decode(encoded_packet)
        except Exception as exc:  # the library raises ValueError, TypeError, JSONDecodeError
            return self._malformed(encoded_packet, f"undecodable packet: {type(exc).__name__}")
        kind = self.packet_type
        if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK, sio_packet.CONNECT_ERROR):
            return self._malformed(
                encoded_packet, "binary and CONNECT_ERROR packets are not accepted"
            )
        if kind not in (
            sio_packet.CONNECT,
            sio_packet.DISCONNECT,
            sio_packet.EVENT,
            sio_packet.ACK,
        ):
            return self._malformed(encoded_packet, "unknown packet type")
        if _depth(self.data, MAX_DEPTH) > MAX_DEPTH:
            return self._malformed(encoded_packet, "payload nested too deeply")
        if kind == sio_packet.EVENT and (
            not isinstance(self.data, list) or not self.data or not isinstance(self.data[0], str)
        ):
            return self._malformed(encoded_packet, "an EVENT must be a JSON array led by a name")
        if kind == sio_packet.CONNECT and self.data is not None and not isinstance(self.data, dict):
            # A CONNECT whose auth is not an object: let the connect handler refuse it.
            self.data = {MALFORMED_EVENT: "CONNECT auth payload must be a JSON object"}
        return attachments

    def _malformed(self, encoded_packet: Any, reason: str) -> int:
        text = encoded_packet if isinstance(encoded_packet, str) else ""
        if text.startswith("0"):
            # A CONNECT we could not read: the connect handler refuses it cleanly.
            self.packet_type = sio_packet.CONNECT
            self.data = {MALFORMED_EVENT: reason}
        else:
            self.packet_type = sio_packet.EVENT
            self.data = [MALFORMED_EVENT, reason]
        self.namespace = None
        self.id = None
        return 0
