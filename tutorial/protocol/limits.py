"""Every limit and reserved name of the chat system, in one table.

The decoders, the server and the docs read these; nothing else spells a limit's value.

| name | value | who enforces it |
|---|---|---|
| `MAX_TEXT_LENGTH` | 2000 characters | the server (`message_too_long`) |
| `MAX_SAFE_INTEGER` | 2**53 - 1 | the catalog's validation (JSON's safe integers) |
| `MAX_DEPTH` | 32 | the Socket.IO decoder and the server's packet guard |
| `MAX_ACK_ID` | 2**53 - 1 | the Socket.IO decoder |
| `MAX_ATTACHMENTS` | 1000 | the Socket.IO decoder |
| `RESERVED_EVENTS` | six names | the Socket.IO decoder and the server's packet guard |
| `MAX_HTTP_BUFFER_SIZE` | 64 KiB | the server (python-engineio closes the connection) |
| `MAX_PROTOCOL_STRIKES` | 10 | the server (disconnects after that many bad packets) |
| `MAX_FRAME_SIZE` | 16 MiB | the RFC 6455 decoder (a longer frame stops the direction) |
| `MAX_RESP_LINE`, `MAX_RESP_BULK` | 64 KiB, 512 MiB | the RESP decoder |
"""

from __future__ import annotations

MAX_TEXT_LENGTH = 2000
"""Characters in one chat message (``send-message``'s ``text``)."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Integers a client may send: JSON's safe range (what a JavaScript client can represent; it
also fits every database's BIGINT).
"""

MAX_DEPTH = 32
"""How deeply a Socket.IO payload's arrays and objects may nest: nesting is how one packet
can exhaust a stack.
"""

MAX_ACK_ID = 2**53 - 1
"""The largest acknowledgment id: the largest integer a JavaScript peer counts exactly."""

MAX_ATTACHMENTS = 1000
"""Binary attachments one Socket.IO packet may announce."""

RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names socket.io-parser refuses: they are the library's own events. A client that
sends an EVENT with one of them gets ``invalid_payload``; the decoder marks it.
"""

MAX_HTTP_BUFFER_SIZE = 64 * 1024
"""Bytes in one HTTP body or WebSocket message: a chat event is at most a few KiB; 64 KiB
leaves room for a polling batch.
"""

MAX_PROTOCOL_STRIKES = 10
"""Unreadable packets a connection may send before the server disconnects it."""

MAX_FRAME_SIZE = 16 * 1024 * 1024
"""The RFC 6455 decoder refuses frames and messages larger than this."""

MAX_RESP_LINE = 64 * 1024
"""The RESP decoder refuses a line (simple string, length prefix) longer than this."""
MAX_RESP_BULK = 512 * 1024 * 1024
"""and a bulk string longer than this (Redis's own limit)."""
