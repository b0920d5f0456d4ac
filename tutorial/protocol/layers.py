"""The layers of the stack, the two directions of a connection, and the decode error.

A Socket.IO chat message crosses five layers on its way from browser to server:

    tcp   the byte stream
    tls   TLS records, where a TLS terminator (nginx) is in the way: ciphertext
    http  the upgrade request and response, or the long-polling requests
    ws    RFC 6455 frames
    eio   Engine.IO v4 packets (open, ping, pong, message, ...)
    sio   Socket.IO v5 packets (connect, event, ack, ...)

and ``app`` names what the chat itself makes of it. Every decoder in this package tags
what it produces with one of these, and none of them raises into its caller: bytes it
cannot make sense of become a [DecodeError][tutorial.protocol.layers.DecodeError], which is an
event like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layer(StrEnum):
    """One layer of the stack, outermost first."""

    TCP = "tcp"
    TLS = "tls"
    HTTP = "http"
    WS = "ws"
    EIO = "eio"
    SIO = "sio"
    APP = "app"


class Direction(StrEnum):
    """Which way bytes travel on one TCP connection, or an event of the chat contract."""

    CLIENT_TO_SERVER = "client→server"
    SERVER_TO_CLIENT = "server→client"

    @property
    def label(self) -> str:
        """For a reader: ``client → server``."""
        return self.value.replace("→", " → ")


C2S = Direction.CLIENT_TO_SERVER
"""Short names for the two directions."""
S2C = Direction.SERVER_TO_CLIENT


@dataclass(frozen=True)
class DecodeError:
    """Bytes a decoder could not make sense of, kept so that a trace can show them."""

    layer: Layer
    reason: str
    raw: bytes = b""

    def __str__(self) -> str:
        return f"{self.layer} decode error: {self.reason}"
