"""The relay loop both taps share: a loopback TCP proxy that lets a subclass watch.

[Wiretap][tutorial.trace.wiretap.Wiretap] (HTTP/WebSocket) and
[RedisTap][tutorial.trace.redistap.RedisTap] (RESP) differ only in what they make of
the bytes. Both listen on ``host:port`` (port 0: a free one); for each accepted
connection the proxy opens one to ``upstream`` and copies bytes both ways, unchanged,
as they arrive. After copying a chunk it hands a copy to the subclass:

1. [opened][tutorial.trace.proxy.LoopbackProxy.opened]: a client connected; return the
   record of this connection (a [Relayed][tutorial.trace.proxy.Relayed]).
2. [refused][tutorial.trace.proxy.LoopbackProxy.refused]: the upstream could not be
   reached (the client's connection is closed).
3. [received][tutorial.trace.proxy.LoopbackProxy.received]: a chunk was relayed in one
   direction.
4. [ended][tutorial.trace.proxy.LoopbackProxy.ended]: one direction reached its end.
5. [closed][tutorial.trace.proxy.LoopbackProxy.closed]: both sides are closed.

A subclass may also choose the source address of the upstream connection
([source][tutorial.trace.proxy.LoopbackProxy.source]: a tap in front of a balancer
that hashes on the client's address connects from that address), hold one direction
back ([gate][tutorial.trace.proxy.LoopbackProxy.gate], fault injection), hold a new
connection before it reaches the upstream
([connecting][tutorial.trace.proxy.LoopbackProxy.connecting]), and say how long a
connection may outlive the first side to finish
([linger][tutorial.trace.proxy.LoopbackProxy.linger]). Recording must never break the
relay: exceptions raised by the hooks are the subclass's to catch.
[stop][tutorial.trace.proxy.LoopbackProxy.stop] closes the listener and every connection
still being relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

from tutorial.protocol.layers import C2S, S2C, Direction

CHUNK = 65536
"""Bytes read from a socket at a time."""


@dataclass
class Relayed:
    """One relayed TCP connection: its number (1, 2, ...) and the bytes each way."""

    number: int
    bytes_in: int = 0  # client -> server
    bytes_out: int = 0  # server -> client
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    """Set once both sides are closed and the ``closed`` hook has run."""


R = TypeVar("R", bound=Relayed)


class LoopbackProxy(Generic[R]):
    """Listen, relay each connection to ``upstream``, tell the hooks what crossed."""

    def __init__(
        self,
        upstream: tuple[str, int],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keep_closed: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.host = host
        self.port = port
        self.keep_closed = keep_closed
        """How many closed connections ``connections`` keeps (None: all of them; a
        long-running tap keeps a few, so that its memory does not grow with traffic)."""
        self.connections: list[R] = []
        """The connections relayed so far, in order: every open one, and the closed ones
        that ``keep_closed`` allows (the most recently closed)."""
        self.opened_count = 0
        """How many connections were relayed in all."""
        self._closed: deque[R] = deque()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; return the port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every relayed connection. Safe to call twice."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_closed(self, conns: list[R] | None = None, timeout: float = 10.0) -> None:
        """Until each of ``conns`` (None: every connection relayed so far) is closed on
        both sides and recorded as such: how a scenario knows its teardown is on the
        trace, without a pause. Raises ``TimeoutError`` after ``timeout`` seconds."""
        pending = [c.finished.wait() for c in (self.connections if conns is None else conns)]
        if pending:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*pending)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- hooks ---------------------------------------------------------------------------

    def opened(self, number: int, peer_port: int) -> R:
        """A client connected: the record of connection ``number`` (1, 2, ...)."""
        raise NotImplementedError

    def source(self, conn: R, peer_host: str) -> tuple[str, int] | None:
        """The local address to open the upstream connection from (None: any)."""
        return None

    def refused(self, conn: R, exc: OSError) -> None:
        """The upstream could not be reached."""

    def received(self, conn: R, direction: Direction, data: bytes) -> None:
        """``data`` was relayed in ``direction`` (already written to the other side)."""

    def ended(self, conn: R, direction: Direction) -> None:
        """``direction`` ended (its sender closed, or the connection broke)."""

    def closed(self, conn: R) -> None:
        """Both sides of the connection are closed."""

    def gate(self, conn: R, direction: Direction) -> Awaitable[None] | None:
        """Something to wait for before relaying the next chunk (None: go on)."""
        return None

    def connecting(self, conn: R) -> Awaitable[None] | None:
        """Something to wait for before connecting to the upstream (None: go on)."""
        return None

    def linger(self, conn: R) -> float | None:
        """Seconds the other direction may still run once one has finished (None: none,
        it is cancelled at once)."""
        return None

    # -- the loop ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            # asyncio's server callback must not end cancelled (it logs that as an error).
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.opened_count += 1
        conn = self.opened(self.opened_count, int(peer[1]))
        self.connections.append(conn)
        up_writer: asyncio.StreamWriter | None = None
        try:
            wait = self.connecting(conn)
            if wait is not None:
                await wait
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    *self.upstream, local_addr=self.source(conn, str(peer[0]))
                )
            except OSError as exc:
                self.refused(conn, exc)
                return
            pumps = [
                asyncio.create_task(self._pump(conn, reader, up_writer, C2S)),
                asyncio.create_task(self._pump(conn, up_reader, writer, S2C)),
            ]
            try:
                # When one side is done, the other may finish too (or hang up) meanwhile.
                _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                linger = self.linger(conn)
                if pending and linger is not None:
                    await asyncio.wait(pending, timeout=linger)
            finally:
                for pump in pumps:
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pump
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            try:
                self.closed(conn)
            finally:
                conn.finished.set()
                self._forget_closed(conn)

    def _forget_closed(self, conn: R) -> None:
        """Drop the oldest closed connections beyond ``keep_closed``."""
        if self.keep_closed is None:
            return
        self._closed.append(conn)
        while len(self._closed) > self.keep_closed:
            self.connections.remove(self._closed.popleft())

    async def _pump(
        self,
        conn: R,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        try:
            while True:
                gate = self.gate(conn, direction)
                if gate is not None:
                    await gate
                data = await src.read(CHUNK)
                if not data:
                    break
                dst.write(data)  # relay first, unchanged; recording cannot touch it
                if direction is C2S:
                    conn.bytes_in += len(data)
                else:
                    conn.bytes_out += len(data)
                self.received(conn, direction, data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.ended(conn, direction)
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()


__all__ = ["CHUNK", "LoopbackProxy", "Relayed"]
