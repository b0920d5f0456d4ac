"""The bound on what the server holds for one connection: its send queue, in bytes.

A client that stops reading (a stalled phone, a hostile script that only answers
pings) does not stop the server from sending to it. Every frame meant for it waits in
its python-engineio queue, then in its socket's write buffer, and without a bound the
server's memory grows for as long as the connection lives.

The policy, in one place, for every path that sends to a connection:

* **The limit** is ``max_bytes`` per connection (``tutorial serve --max-send-queue``,
  1 MiB by default): the frames waiting in its Engine.IO queue plus what its transport
  has not yet handed to the kernel. Sizes are counted in characters of the encoded
  packet (bytes for ASCII; the chat's JSON escapes everything else). A packet is
  always admitted to an empty queue, whatever its size: one big ``room-joined``
  history is not a slow reader, many packets piling up is.
* **Past the limit** the connection is closed: what was queued is dropped (the memory
  is released at once), a WebSocket gets a close frame with code **1008** (policy
  violation) and the reason ``send queue over N bytes``, then its TCP connection is
  aborted after a short grace; a long-polling session is closed the Engine.IO way
  (a CLOSE packet on its next GET). The server's ``disconnect`` runs as for any other
  close, and ``on_overflow`` is told (the chat server logs it and counts it).
* **Who calls it:** python-engineio's own sends (every ``emit``) go through
  [SendQueue][tutorial.chat.sendqueue.SendQueue], which engineio uses as each socket's queue; a
  path that writes
  frames to a connection's transport itself must ask
  [SendQueuePolicy.admit][tutorial.chat.sendqueue.SendQueuePolicy.admit]
  first and skip the write when it answers ``False``.

A reconnecting client loses nothing it was promised: messages are in the store, and
it asks for what it missed with its per-room offsets (see docs/explanation/limits.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from engineio import packet as eio_packet

from tutorial import compat

log = logging.getLogger("tutorial.chat.sendqueue")

DEFAULT_MAX_SEND_QUEUE = 1024 * 1024
MIN_SEND_QUEUE = 16 * 1024
# RFC 6455 section 7.4.1: "1008 indicates that an endpoint is terminating the connection
# because it has received a message that violates its policy."
CLOSE_POLICY_VIOLATION = 1008
# How long a closed WebSocket may still drain its last bytes (the close frame) before
# its TCP connection is aborted.
CLOSE_GRACE_SECONDS = 2.0

# Engine.IO packets that still go out on a connection the bound has closed.
_CLOSING_PACKETS = frozenset({eio_packet.CLOSE, eio_packet.NOOP})


def packet_size(pkt: Any) -> int:
    """The size a queued Engine.IO packet counts for: its encoded data, at least 1."""
    data = getattr(pkt, "data", None)
    if isinstance(data, str | bytes | bytearray):
        return len(data) + 1
    if data is None:
        return 1
    return 64  # the OPEN packet's small dict


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked (server to client) RFC 6455 CLOSE frame: ``0x88``, length, code, reason."""
    body = code.to_bytes(2, "big") + reason.encode()[:123]
    return bytes([0x88, len(body)]) + body


OverflowHook = Callable[[str, int], None]


class SendQueuePolicy:
    """The per-connection bound, shared by every [SendQueue][tutorial.chat.sendqueue.SendQueue] of
    one server."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_SEND_QUEUE,
        on_overflow: OverflowHook | None = None,
        close_grace: float = CLOSE_GRACE_SECONDS,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("the send queue bound must be a positive number of bytes")
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow
        self.close_grace = close_grace
        self.overflows = 0
        self.eio: Any = None  # python-engineio's AsyncServer, to find a queue's socket
        self._transports: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._websockets: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )

    # -- wiring --------------------------------------------------------------------------

    def make_queue(self, *args: Any, **kwargs: Any) -> SendQueue:
        """The queue factory python-engineio calls for each new socket."""
        return SendQueue(self, *args, **kwargs)

    def attach_transport(self, socket: Any, transport: Any) -> None:
        """The socket's WebSocket transport, whose unsent bytes count toward the bound."""
        self._transports[socket] = transport

    def attach_websocket(self, socket: Any, transport: Any, response: Any) -> None:
        """The socket's WebSocket: its transport and its ``aiohttp.web.WebSocketResponse``."""
        self._transports[socket] = transport
        self._websockets[socket] = (transport, response)

    def websocket_of(self, socket: Any) -> tuple[Any, Any] | None:
        """``(transport, response)`` of an Engine.IO socket's WebSocket (None: none yet)."""
        return self._websockets.get(socket)

    def transport_of(self, socket: Any) -> Any:
        """The WebSocket transport of an Engine.IO socket (None for long-polling)."""
        return self._transports.get(socket) if socket is not None else None

    # -- the bound ------------------------------------------------------------------------

    def queued_bytes(self, socket: Any) -> int:
        """What the server holds for this connection: queue plus unsent transport bytes."""
        queue = getattr(socket, "queue", None)
        held = queue.bytes if isinstance(queue, SendQueue) else 0
        transport = self._transports.get(socket)
        if transport is not None:
            with contextlib.suppress(Exception):
                held += int(transport.get_write_buffer_size())
        return held

    def admit(self, socket: Any, nbytes: int) -> bool:
        """May ``nbytes`` more be sent to this connection? ``False`` closes it (over the bound).

        For a path that writes frames to the connection's transport itself.
        """
        queue = getattr(socket, "queue", None)
        if isinstance(queue, SendQueue) and queue.overflowed:
            return False
        held = self.queued_bytes(socket)
        if held + nbytes <= self.max_bytes or (held == 0 and nbytes > self.max_bytes):
            return True
        if isinstance(queue, SendQueue):
            self.overflow(queue, socket)
        return False

    def _admit_to_queue(self, queue: SendQueue, nbytes: int) -> bool:
        if queue.bytes == 0 and nbytes > self.max_bytes:
            return True  # one big packet on an empty queue is not a pile-up
        held = queue.bytes + nbytes
        if held <= self.max_bytes:
            socket = queue.socket
            transport = self._transports.get(socket) if socket is not None else None
            if transport is None:
                return True
            with contextlib.suppress(Exception):
                held += int(transport.get_write_buffer_size())
            if held <= self.max_bytes:
                return True
        self.overflow(queue)
        return False

    def overflow(self, queue: SendQueue, socket: Any = None) -> None:
        """Past the bound: drop what is queued, close the connection, tell the owner."""
        if queue.overflowed:
            return
        queue.overflowed = True
        dropped = queue.drop_all()
        self.overflows += 1
        socket = socket or queue.socket or self._find_socket(queue)
        sid = getattr(socket, "sid", "?")
        reason = f"send queue over {self.max_bytes} bytes"
        log.warning(
            "closing %s: %s (the client does not read); dropped %d bytes", sid, reason, dropped
        )
        if self.on_overflow is not None:
            with contextlib.suppress(Exception):
                self.on_overflow(sid, dropped)
        transport = self.transport_of(socket)
        if transport is not None:
            # WebSocket: a close frame behind what the kernel already has, then the end.
            with contextlib.suppress(Exception):
                transport.write(close_frame(CLOSE_POLICY_VIOLATION, reason))
                transport.close()
            close_later(transport, self.close_grace)
            return
        if socket is not None:
            # Long-polling: the Engine.IO close; its next GET carries the CLOSE packet.
            task = asyncio.ensure_future(_close_polling(socket))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def end_session(self, eio_sid: str) -> None:
        """End an Engine.IO session now, without waiting for its client (it may not read).

        The Engine.IO CLOSE is queued; on a WebSocket the writer's stop signal follows it
        (the writer then closes the WebSocket with code 1000), and the TCP connection is
        aborted after the grace period if the client reads nothing.
        """
        socket = None if self.eio is None else compat.engineio_socket(self.eio, eio_sid)
        if socket is None:
            return
        transport = self.transport_of(socket)
        await compat.end_engineio_socket(socket, stop_writer=transport is not None)
        if transport is not None:
            close_later(transport, self.close_grace)

    def _find_socket(self, queue: SendQueue) -> Any:
        if self.eio is None:
            return None
        for socket in compat.engineio_sessions(self.eio):
            if compat.send_queue_of(socket) is queue:
                queue.socket = socket
                return socket
        return None


_closing: set[asyncio.Future[None]] = set()  # close tasks in flight (kept referenced)


def close_later(transport: Any, grace: float = CLOSE_GRACE_SECONDS) -> None:
    """Abort ``transport`` after ``grace`` seconds, if it has not closed by then.

    ``transport.close()`` waits for its buffer to drain, which never happens when the
    peer does not read: this puts a time bound on it.
    """
    asyncio.get_running_loop().call_later(grace, _abort, transport)


def _abort(transport: Any) -> None:
    with contextlib.suppress(Exception):
        transport.abort()


async def _close_polling(socket: Any) -> None:
    with contextlib.suppress(Exception):
        await socket.close(wait=False, abort=False)


class SendQueue(asyncio.Queue):  # type: ignore[type-arg]
    """python-engineio's per-socket outgoing queue, sized in bytes and bounded.

    python-engineio creates one per socket through ``create_queue``; every packet the
    library sends goes through ``put_nowait``, and the socket's writer takes them
    out with ``get``. ``None`` (the writer's stop signal) always goes through.
    """

    def __init__(self, policy: SendQueuePolicy, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.bytes = 0
        self.overflowed = False
        self.socket: Any = None
        self.waiting = 0  # the socket's writer is inside get(), holding nothing unsent
        # The broadcast fast path holding frames for this connection, not yet written
        # (tutorial.chat.fanout): they go out before anything queued after them.
        self.corked_by: Any = None
        self.corked_on: Any = None  # the transport those frames wait for

    @property
    def idle(self) -> bool:
        """Nothing queued, and the reader (the socket's writer task) waits for more.

        The writer takes packets out with ``get`` (then whatever else is queued) and
        sends each before it calls ``get`` again. So while it waits in ``get`` with
        nothing queued, everything it took has been written to the transport, and a
        frame written to the transport now goes out after them: the broadcast fast path
        ([tutorial.chat.fanout][]) writes directly only then, and queues otherwise.
        """
        return self.waiting > 0 and not self.qsize() and not self.overflowed

    async def get(self) -> Any:
        self.waiting += 1
        try:
            return await super().get()
        finally:
            self.waiting -= 1

    def put_nowait(self, item: Any) -> None:
        """Queue a packet, within the bound; first, write the frames the broadcast fast
        path holds corked for this connection, which must reach it before this packet."""
        if self.corked_by is not None:
            fanout, self.corked_by = self.corked_by, None
            fanout.release(self.corked_on)
        if item is None:
            super().put_nowait(item)
            return
        if self.overflowed:
            if getattr(item, "packet_type", None) in _CLOSING_PACKETS:
                super().put_nowait(item)
            return  # the connection is closing: nothing more is held for it
        size = packet_size(item)
        if not self.policy._admit_to_queue(self, size):
            return
        self.bytes += size
        super().put_nowait(item)

    def _get(self) -> Any:
        item = super()._get()
        if item is not None:
            self.bytes = max(0, self.bytes - packet_size(item))
        return item

    def drop_all(self) -> int:
        """Empty the queue (each item marked done, so ``join`` returns); the bytes dropped."""
        dropped = self.bytes
        while True:
            try:
                self.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.task_done()
        self.bytes = 0
        return dropped
