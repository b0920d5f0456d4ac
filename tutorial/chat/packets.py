"""A defensive Socket.IO packet decoder for the server.

python-socketio decodes every incoming packet with its ``Packet`` class; a malformed
one (invalid JSON, ``42[]``, an unknown packet type, an event name that is not a string)
raises inside the library, which logs a traceback and answers nothing. The library lets
us pass our own class as ``serializer=``: this one turns every malformed packet into an
ordinary EVENT named ``MALFORMED_EVENT``, which the chat server answers with
``error {code: "invalid_payload"}`` like any other bad input.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from socketio import packet as sio_packet

from tutorial import compat
from tutorial.chat.httpguard import body_reader
from tutorial.chat.sendqueue import SendQueue, SendQueuePolicy
from tutorial.protocol.limits import MAX_DEPTH, RESERVED_EVENTS

MALFORMED_EVENT = "__malformed__"


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


class DefensivePacket(sio_packet.Packet):  # type: ignore[misc]
    """``socketio.packet.Packet`` that never raises on input from a client."""

    # What the library's Packet sets (python-socketio ships no type information).
    packet_type: int
    namespace: str | None
    data: Any
    id: int | None
    attachment_count: int

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if encoded_packet is not None and not encoded_packet:
            # An empty Engine.IO MESSAGE (``4``, or ``b`` + empty base64): the library
            # skips decoding and would dispatch an EVENT whose data is None.
            self.attachment_count = self._malformed(encoded_packet, "empty packet")

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
        if kind == sio_packet.EVENT and self.data[0] in RESERVED_EVENTS:
            return self._malformed(encoded_packet, f"event name {self.data[0]!r} is reserved")
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
        if self.packet_type == sio_packet.CONNECT or not isinstance(self.id, int):
            self.id = None
        # else: keep the ack id that was read, so a client waiting for it is answered.
        return 0


def engineio_frame_ok(frame: Any) -> bool:
    """Whether python-engineio can decode this WebSocket frame without raising.

    The server closes a connection cleanly on any other frame
    ([install_engineio_hooks][tutorial.compat.install_engineio_hooks]): python-engineio
    decodes each frame outside its error handling, so an empty frame or one like ``x``
    would escape as an exception (a traceback in aiohttp's log, no CLOSE, a session
    lingering until the ping timeout), and an unknown type like ``9abc`` would log a
    traceback per frame.

    Binary frames always decode (as a binary MESSAGE). A text frame must start with an
    Engine.IO packet type 0-6, or be ``b`` + valid base64.
    """
    if isinstance(frame, bytes | bytearray):
        return True
    if not isinstance(frame, str) or not frame:
        return False
    if frame[0] == "b":
        try:
            base64.b64decode(frame[1:], validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return frame[0] in "0123456"


async def broadcast(
    sio: Any,
    event: str,
    data: Any,
    room: str,
    namespace: str = "/",
    skip_sid: str | None = None,
) -> None:
    """``await sio.emit(event, data, room=room, skip_sid=skip_sid)``: one event to a room.

    The chat server's client manager ([fanout_manager][tutorial.compat.fanout_manager])
    encodes it once and hands it to the fast path
    ([tutorial.chat.fanout][tutorial.chat.fanout]), which writes one pre-built frame to
    each WebSocket recipient; with the fast path off it is python-socketio's own emit.
    """
    await sio.emit(event, data, room=room, namespace=namespace, skip_sid=skip_sid)


def install_engineio_hooks(
    eio: Any, policy: SendQueuePolicy, websocket_compression: bool = True
) -> None:
    """Our pieces in python-engineio (through the seam, [tutorial.compat][]).

    * every WebSocket frame python-engineio could not decode closes the connection
      cleanly ([engineio_frame_ok][tutorial.chat.packets.engineio_frame_ok]), and a
      WebSocket's transport is told to its send queue (unsent bytes count too);
    * every socket's queue is a [SendQueue][tutorial.chat.sendqueue.SendQueue], bounded
      in bytes;
    * a request's environ carries the client's address in ``REMOTE_ADDR`` (the driver
      writes ``127.0.0.1`` for everybody) and, for a POST, the body
      [HttpGuard][tutorial.chat.httpguard.HttpGuard] already read within its time bound
      as ``wsgi.input``;
    * with ``websocket_compression=False`` a client's permessage-deflate offer is
      declined (the broadcast fast path writes the same uncompressed frame to everyone).
    """
    compat.install_engineio_hooks(
        eio,
        accept_frame=engineio_frame_ok,
        on_websocket=_bind_send_queue,
        translate=_translate,
        queue_factory=policy.make_queue,
        websocket_compression=websocket_compression,
    )
    policy.eio = eio


def _bind_send_queue(socket: Any, transport: Any, response: Any) -> None:
    """Tell the socket's [SendQueue][tutorial.chat.sendqueue.SendQueue] its WebSocket."""
    queue = getattr(socket, "queue", None)
    if isinstance(queue, SendQueue):
        queue.socket = socket
        queue.policy.attach_websocket(socket, transport, response)


def _translate(request: Any, environ: dict[str, Any]) -> None:
    environ["REMOTE_ADDR"] = request.remote or ""
    if request.method == "POST":
        environ["wsgi.input"] = body_reader(request)
