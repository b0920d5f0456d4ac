"""An independent capture of what crosses a wiretap, decoded by wsproto, to check traces.

[Wiretap][tutorial.trace.wiretap.Wiretap] decodes the bytes it relays with the
project's own decoders and records one trace event per frame. To check that a trace
holds every WebSocket frame exactly once, in order, the tests put a second, much
simpler proxy in front of it (``RawCapture``): it keeps every chunk each way, per TCP
connection, and nothing else. ``captured_frames`` then cuts each WebSocket connection's
bytes after the HTTP upgrade and decodes them with wsproto (an independent RFC 6455
implementation); ``traced_frames`` takes the trace's WebSocket events of the same
connections; ``compare`` says where the two differ (a dropped, doubled, swapped or
altered frame), per client and direction.

``captured_stages()`` swaps the scenarios' wiretap for one with a capture in front of
it (the scenario's clients connect to the capture).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from wsproto.frame_protocol import FrameProtocol

from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace
from tutorial.trace.wiretap import Wiretap

C2S, S2C = "client→server", "server→client"


@dataclass
class Captured:
    """One TCP connection through the capture: the chunks each way, in order."""

    number: int
    upstream_port: int = 0  # the local port of the capture's socket to the wiretap
    chunks: dict[str, list[bytes]] = field(default_factory=lambda: {C2S: [], S2C: []})

    def stream(self, direction: str) -> bytes:
        return b"".join(self.chunks[direction])


class RawCapture:
    """A loopback TCP proxy that keeps every byte it relays, per connection; no decoding."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections: list[Captured] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Captured(len(self.connections) + 1)
        self.connections.append(conn)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            conn.upstream_port = int(up_writer.get_extra_info("sockname")[1])
            await asyncio.gather(
                self._pump(reader, up_writer, conn.chunks[C2S]),
                self._pump(up_reader, writer, conn.chunks[S2C]),
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: list[bytes]
    ) -> None:
        try:
            while data := await src.read(65536):
                keep.append(data)
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()


class CapturedWiretap(Wiretap):
    """A wiretap with a [RawCapture] in front: clients connect to the capture."""

    made: ClassVar[list[CapturedWiretap]] = []

    async def start(self) -> int:
        port = await super().start()
        self.capture = RawCapture((self.host, port))
        await self.capture.start()
        CapturedWiretap.made.append(self)
        return port

    @property
    def url(self) -> str:
        return self.capture.url

    async def stop(self) -> None:
        await super().stop()
        await self.capture.stop()


@contextlib.contextmanager
def captured_stages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CapturedWiretap]]:
    """Every wiretap a scenario makes in this block has a capture in front of it."""
    import tutorial.scenarios.base
    import tutorial.scenarios.scaling

    CapturedWiretap.made = []
    monkeypatch.setattr(tutorial.scenarios.base, "Wiretap", CapturedWiretap)
    monkeypatch.setattr(tutorial.scenarios.scaling, "Wiretap", CapturedWiretap)
    yield CapturedWiretap.made


# -- decoding and comparing ---------------------------------------------------------------

Key = tuple[str, str]  # (client lifeline, direction)
WsFrame = tuple[Any, ...]  # wsproto's (opcode, payload, frame_finished, message_finished)


def _frames(data: bytes, *, from_client: bool) -> list[WsFrame]:
    """wsproto's frames of one direction's bytes (``from_client``: masked frames)."""
    protocol = FrameProtocol(client=not from_client, extensions=[])
    protocol.receive_bytes(data)
    return [tuple(f) for f in protocol.received_frames()]


_SWITCH = {
    # The server's 101, and the client's upgrade request (a GET has no body, and the
    # client sends nothing more until the 101 comes); polling requests may come before
    # both on the same kept-alive connection.
    S2C: re.compile(rb"HTTP/1\.1 101 "),
    C2S: re.compile(rb"\r\nupgrade:[ \t]*websocket\r\n", re.IGNORECASE),
}


def _after_upgrade(conn: Captured, direction: str) -> bytes | None:
    """The bytes after the HTTP upgrade, on a connection the server switched to WebSocket."""
    if _SWITCH[S2C].search(conn.stream(S2C)) is None:
        return None
    data = conn.stream(direction)
    switch = _SWITCH[direction].search(data)
    assert switch is not None, f"connection {conn.number}: no upgrade {direction}"
    head = data.find(b"\r\n\r\n", switch.start())
    assert head >= 0, f"connection {conn.number}: no end of the HTTP head {direction}"
    return data[head + 4 :]


@dataclass
class Streams:
    """Per (client, direction): the frames' bytes, and wsproto's frames of those bytes."""

    data: dict[Key, bytes]
    frames: dict[Key, list[WsFrame]]


def captured_frames(tap: CapturedWiretap) -> Streams:
    """What the capture saw, per client lifeline (from the tap's own naming of the same
    TCP connection) and direction: WebSocket connections only, in connection order."""
    lifeline = {c.peer_port: c.lifeline for c in tap.connections}
    data: dict[Key, bytes] = {}
    frames: dict[Key, list[WsFrame]] = {}
    for conn in tap.capture.connections:
        name = lifeline.get(conn.upstream_port)
        for direction in (C2S, S2C):
            rest = _after_upgrade(conn, direction)
            if rest is None:
                continue
            assert name is not None, f"captured connection {conn.number} has no lifeline"
            key = (name, direction)
            data[key] = data.get(key, b"") + rest
            # One decoder per connection: after a close frame, wsproto reads no more.
            frames.setdefault(key, []).extend(_frames(rest, from_client=direction == C2S))
    return Streams(data, frames)


def traced_frames(trace: Trace, clients: set[str]) -> Streams:
    """The trace's WebSocket events between ``clients`` and their server, per client
    and direction: their bytes joined, and wsproto's frames of each event's bytes."""
    data: dict[Key, bytes] = {}
    frames: dict[Key, list[WsFrame]] = {}
    for e in trace.events:
        if e.layer is not Layer.WS or e.raw is None:
            continue
        if e.source in clients:
            key = (e.source, C2S)
        elif e.target in clients:
            key = (e.target, S2C)
        else:
            continue
        data[key] = data.get(key, b"") + e.raw
        one = _frames(e.raw, from_client=key[1] == C2S)
        assert len(one) == 1, f"a trace event of {key} holds {len(one)} frames: {e}"
        frames.setdefault(key, []).extend(one)
    return Streams(data, frames)


def compare(traced: Streams, captured: Streams) -> list[str]:
    """Where the trace and the capture differ (empty: every frame once, in order)."""
    problems: list[str] = []
    for key in sorted(set(traced.frames) | set(captured.frames)):
        mine, theirs = traced.frames.get(key, []), captured.frames.get(key, [])
        if len(mine) != len(theirs):
            problems.append(f"{key}: {len(mine)} frames traced, {len(theirs)} captured")
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            if a != b:
                problems.append(f"{key}: frame {i + 1} traced {a!r}, captured {b!r}")
                break
        if traced.data.get(key, b"") != captured.data.get(key, b""):
            problems.append(f"{key}: the traced frames' bytes are not the captured bytes")
    return problems
