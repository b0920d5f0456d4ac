"""The broadcast fast path: one WebSocket frame per broadcast, written to every recipient.

python-socketio (5.18) sends a room broadcast by encoding the packet once, then creating
one task per recipient that puts it on that socket's queue; each socket's writer task
wakes, takes it, and has aiohttp build and write its own frame. For 100 recipients
that is 100 tasks, 100 wake-ups and 100 frames holding the same bytes.

Here the frame is built once, and written to each recipient's transport at once:

1. The chat server's client manager ([fanout_manager][tutorial.compat.fanout_manager])
   encodes the Socket.IO packet as the library does, and calls
   [Fanout.deliver][tutorial.chat.fanout.Fanout.deliver] with the room's Engine.IO
   sessions on this server. Messages from other servers (Redis) arrive through the same
   manager, so they take the same path.
2. ``deliver`` builds the Engine.IO MESSAGE (``4`` + the packet) and its RFC 6455 text
   frame once ([text_frame][tutorial.protocol.websocket.text_frame]).
3. For each session, the frame is **corked for the transport**, to be written with the
   other frames corked for that connection in one ``write`` (one system call for
   several broadcasts), when all of these hold: the session is on its WebSocket (not
   long-polling, not mid-upgrade); that WebSocket did not negotiate permessage-deflate;
   its send queue is [idle][tutorial.chat.sendqueue.SendQueue.idle] (nothing queued,
   and its writer waits for more, so everything sent earlier is already in the
   transport); and the per-connection bound
   ([SendQueuePolicy.admit][tutorial.chat.sendqueue.SendQueuePolicy.admit]) lets it
   through. A reader that does not read fills its transport's buffer, is refused by
   the bound, and is closed with 1008, its memory released.
4. Otherwise the same Engine.IO packet goes on the session's queue, the way the
   library's own send would put it there: long-polling, an upgrade in progress, a
   compressed WebSocket, a writer still busy. A session that missed its pings gets the
   library's ``send_packet``, which closes it; a closed one is skipped (the library
   skips it too).
5. **The cork.** Corked frames are written once a turn of the event loop has gone by
   with no new broadcast, or ``max_cork`` (5 ms) after the first, whichever comes
   first. A group commit ([tutorial.chat.store][]) stores several messages at once, and
   the room's lock then passes from one broadcast to the next, one per turn of the
   loop: their frames leave together, about 3 to 4 per write under the bench's load
   instead of 1.1. Order per connection holds: anything put on a connection's queue
   (an ack, a ping, the library's own emit) first writes what is corked for it
   ([SendQueue.put_nowait][tutorial.chat.sendqueue.SendQueue.put_nowait]), so the
   sender's ack still follows its message. An idle server adds one turn of the loop.

Everything else (the handshake, polling, acks, emits with a callback, the Redis
manager's publishing) is python-socketio's. The bytes each client receives are the
bytes ``sio.emit`` would send it (``tests/test_fanout.py`` reads both off the wire).

**permessage-deflate.** A compressed WebSocket keeps a deflate context per connection
(RFC 7692 context takeover), so one frame cannot serve two of them. The server declines
the extension by default (``ServerConfig.websocket_compression``), as Node's socket.io 4
does (``perMessageDeflate: false``): chat messages are a few hundred bytes, where
deflate saves little and costs a compressor per connection. A server that allows it
still works: its compressed connections take the queue, and aiohttp compresses per
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from engineio import packet as eio_packet

from tutorial import compat
from tutorial.chat.sendqueue import SendQueue, SendQueuePolicy
from tutorial.protocol.websocket import text_frame

FANOUT_LIBRARIES = ("python-engineio", "python-socketio", "aiohttp")


def fanout_supported() -> bool:
    """Whether the installed libraries are the versions the seam's accesses for this path
    were checked against ([CHECKED][tutorial.compat.CHECKED]); the server falls back to
    python-socketio's own emit otherwise."""
    try:
        return all(compat.version_checked(name) for name in FANOUT_LIBRARIES)
    except Exception:
        return False


@dataclass
class FanoutCounters:
    """Deliveries by path since the server started (``/stats`` shows them)."""

    written: int = 0  # the pre-built frame written to the transport
    queued: int = 0  # put on the session's queue (polling, busy writer, compressed)
    refused: int = 0  # the per-connection bound said no (the connection was closed)
    gone: int = 0  # the session had closed
    writes: int = 0  # transport writes (system calls) that carried the written frames


MAX_CORK_SECONDS = 0.005
"""How long frames may wait corked while broadcasts keep coming turn after turn."""


class Fanout:
    """Writes broadcasts for one python-socketio server (see the module's text)."""

    def __init__(
        self, eio: Any, policy: SendQueuePolicy, max_cork: float = MAX_CORK_SECONDS
    ) -> None:
        self.eio = eio
        self.policy = policy
        self.max_cork = max_cork
        self.counters = FanoutCounters()
        # Frames corked per transport, as [bytes, its queue, frame, frame, ...]; written
        # together (one write, one system call, for several broadcasts) when the
        # broadcasts stop coming, after at most max_cork, or before anything else is
        # queued to that connection.
        self._pending: dict[Any, list[Any]] = {}
        self._corked_at = 0.0  # loop time of the first frame of the current cork
        self._fresh = False  # frames corked since the last turn's check

    async def deliver(self, encoded: str, eio_sids: list[str]) -> None:
        """Send one encoded Socket.IO packet to each of these Engine.IO sessions."""
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(pkt.encode())
        size = len(frame)
        eio = self.eio
        policy = self.policy
        limit = policy.max_bytes
        websocket_of = policy.websocket_of
        counters = self.counters
        pending = self._pending
        state_of = compat.socket_state
        WEBSOCKET, GONE = compat.WEBSOCKET, compat.GONE
        now = time.time()
        late: list[str] = []
        written = counters.written
        sockets = compat.engineio_socket_table(eio)
        for eio_sid in eio_sids:
            socket = sockets.get(eio_sid)
            if socket is None:
                counters.gone += 1
                continue
            state = state_of(eio, socket, now)
            if state is not WEBSOCKET:
                if state is GONE:
                    counters.gone += 1
                elif state is compat.SLOW:
                    late.append(eio_sid)
                else:
                    compat.send_queue_of(socket).put_nowait(pkt)
                    counters.queued += 1
                continue
            queue = compat.send_queue_of(socket)
            websocket = websocket_of(socket)
            if websocket is None or not isinstance(queue, SendQueue) or not queue.idle:
                queue.put_nowait(pkt)
                counters.queued += 1
                continue
            transport, response = websocket
            if response.compress or response.closed or transport.is_closing():
                queue.put_nowait(pkt)
                counters.queued += 1
                continue
            corked = pending.get(transport)
            held = transport.get_write_buffer_size() + (corked[0] if corked else 0)
            if held + size > limit and held and not policy.admit(socket, size + held):
                # Over the bound: the policy closed the connection (1008) and dropped
                # what was queued; what is corked here goes too.
                pending.pop(transport, None)
                counters.refused += 1
                continue
            if corked is None:
                if not pending:
                    loop = asyncio.get_running_loop()
                    self._corked_at = loop.time()
                    loop.call_soon(self._turn, True)
                pending[transport] = [size, queue, frame]
                queue.corked_by, queue.corked_on = self, transport  # see SendQueue.put_nowait
            else:
                corked[0] += size
                corked.append(frame)
            counters.written += 1
        if counters.written != written:
            self._fresh = True
        for eio_sid in late:
            # The library's send: it closes a session that went quiet.
            with contextlib.suppress(Exception):
                await eio.send_packet(eio_sid, pkt)

    def _turn(self, first: bool) -> None:
        """Once per turn of the event loop while frames are corked: write them all, unless
        broadcasts are still coming turn after turn (a group commit's messages, each
        broadcast as the room's lock passes to the next) and the cork is younger than
        ``max_cork``. The first check always waits one more turn: the next broadcast of
        such a chain runs in the turn after the first one's."""
        loop = asyncio.get_running_loop()
        if (first or self._fresh) and loop.time() - self._corked_at < self.max_cork:
            self._fresh = False
            loop.call_soon(self._turn, False)
            return
        self._flush()

    def release(self, transport: Any) -> None:
        """Write what is corked for ``transport`` now: its queue is about to take a packet
        (an ack, a ping, the library's own emit), which must follow those frames."""
        corked = self._pending.pop(transport, None)
        if corked is not None:
            self._write(transport, corked)

    def _flush(self) -> None:
        """Write each transport's corked frames, in order, in one write."""
        pending, self._pending = self._pending, {}
        for transport, corked in pending.items():
            self._write(transport, corked)

    def _write(self, transport: Any, corked: list[Any]) -> None:
        corked[1].corked_by = None
        if transport.is_closing():
            return
        self.counters.writes += 1
        with contextlib.suppress(Exception):
            transport.write(corked[2] if len(corked) == 3 else b"".join(corked[2:]))


__all__ = ["Fanout", "FanoutCounters", "fanout_supported"]
