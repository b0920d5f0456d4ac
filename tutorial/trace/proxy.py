"""The listening half shared by the taps: a loopback TCP proxy's lifecycle.

:class:`~tutorial.trace.wiretap.Wiretap` (HTTP/WebSocket) and
:class:`~tutorial.trace.redistap.RedisTap` (RESP) differ in what they decode; both
listen on ``host:port`` (port 0: a free one), relay each accepted connection to
``upstream`` in :meth:`LoopbackProxy._relay`, and on :meth:`LoopbackProxy.stop` close
the listener and every connection still being relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Self

from tutorial.protocol.layers import Direction

Pump = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Direction], Awaitable[None]]


class LoopbackProxy:
    """Listen, hand each connection to ``_relay``, stop everything on ``stop``."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream
        self.host = host
        self.port = port
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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

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
        raise NotImplementedError

    async def relay_both_ways(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pump: Pump,
        local_addr: tuple[str, int] | None = None,
    ) -> bool:
        """Open the upstream (from ``local_addr``, if given), run ``pump(src, dst,
        direction)`` both ways until one side is done, then close both connections.
        False when the upstream refused the connection (nothing was relayed)."""
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    *self.upstream, local_addr=local_addr
                )
            except OSError:
                return False
            pumps = [
                asyncio.create_task(pump(reader, up_writer, Direction.CLIENT_TO_SERVER)),
                asyncio.create_task(pump(up_reader, writer, Direction.SERVER_TO_CLIENT)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            return True
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
