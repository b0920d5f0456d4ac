"""The wiretap: a transparent TCP proxy that records what it relays, layer by layer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tutorial.chat.server import ChatServer
from tutorial.client.client import ChatClient, ClientOptions
from tutorial.compat import sample_websocket_key
from tutorial.protocol.layers import Layer
from tutorial.protocol.websocket import SAMPLE_MASKING_KEY
from tutorial.trace.model import Trace
from tutorial.trace.normalise import SAMPLE_WS_ACCEPT, SAMPLE_WS_KEY, stable_trace
from tutorial.trace.wiretap import Wiretap


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    """An upstream that sends back every byte it gets, then closes when the client does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def relay(port: int, chunks: list[bytes]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        while len(received) < sum(map(len, chunks[: chunks.index(chunk) + 1])):
            received += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return received


async def test_bytes_pass_through_unchanged_both_ways(echo: int) -> None:
    trace = Trace()
    async with Wiretap(trace, ("127.0.0.1", echo)) as tap:
        chunks = [os.urandom(1), os.urandom(70000), bytes(range(256)) * 3]
        assert await relay(tap.port, chunks) == b"".join(chunks)
    assert tap.connections[0].bytes_in == tap.connections[0].bytes_out == 70769


async def test_garbage_bytes_become_error_events_and_the_connection_survives(echo: int) -> None:
    trace = Trace()
    garbage = b"\x00\xff not HTTP at all \r\n\r\n\x81\x85"
    async with Wiretap(trace, ("127.0.0.1", echo)) as tap:
        tap.name_next_connection("mallory")
        assert await relay(tap.port, [garbage, b"still here"]) == garbage + b"still here"
        await trace.wait_for(lambda e: e.kind == "error")
    errors = [e for e in trace.events if e.kind == "error"]
    assert errors, "the undecodable bytes are recorded as errors"
    assert {e.source for e in trace.events if e.source != "server"} == {"mallory"}
    assert next(e.label for e in trace.events if e.layer is Layer.TCP) == "TCP connect"
    assert tap.failures == []


async def test_wait_closed_returns_once_a_connection_and_its_record_have_ended(
    echo: int,
) -> None:
    trace = Trace()
    async with Wiretap(trace, ("127.0.0.1", echo)) as tap:
        tap.name_next_connection("alice")
        reader, writer = await asyncio.open_connection("127.0.0.1", tap.port)
        request = b"GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: x\r\n\r\n"  # names the lifeline
        writer.write(request)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(request)), 5) == request
        assert [c.lifeline for c in tap.connections] == ["alice"]
        with pytest.raises(TimeoutError):  # still open: it does not return
            await tap.wait_closed(tap.connections_of("alice"), timeout=0.05)
        writer.close()
        await tap.wait_closed(tap.connections_of("alice"), timeout=5)
        closes = [e.label for e in trace.events if e.label.startswith("TCP close")]
        assert sorted(closes) == ["TCP close (client FIN)", "TCP close (server FIN)"]


async def test_a_refused_upstream_is_recorded_not_raised() -> None:
    trace = Trace()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with Wiretap(trace, ("127.0.0.1", port)) as tap:
        reader, writer = await asyncio.open_connection("127.0.0.1", tap.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert any(e.label.startswith("TCP refused") and e.kind == "error" for e in trace.events)


async def test_a_held_connection_reaches_an_upstream_that_starts_meanwhile() -> None:
    """hold_new_connections: a client that connects while the server is down waits at
    the tap and reaches the server once it is back (unheld, it would be refused)."""

    async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(65536))
        await writer.drain()
        writer.close()

    trace = Trace()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with Wiretap(trace, ("127.0.0.1", port)) as tap:
        tap.hold_new_connections()
        arrived = asyncio.Event()
        hold = tap.connecting
        tap.connecting = lambda conn: (arrived.set(), hold(conn))[1]  # type: ignore[method-assign]
        reader, writer = await asyncio.open_connection("127.0.0.1", tap.port)
        writer.write(b"are you back?")
        await asyncio.wait_for(arrived.wait(), 5)  # the tap has it, the server is down
        upstream = await asyncio.start_server(echo_once, "127.0.0.1", port)
        try:
            tap.release_new_connections()
            assert await asyncio.wait_for(reader.readexactly(13), 5) == b"are you back?"
        finally:
            writer.close()
            upstream.close()
    assert not any(e.label.startswith("TCP refused") for e in trace.events)


async def handshake_through_tap(server: ChatServer, transports: tuple[str, ...]) -> Trace:
    trace = Trace()
    tap = Wiretap(trace, ("127.0.0.1", server.port or 0))
    await tap.start()
    tap.name_next_connection("client")
    client = ChatClient(tap.url, options=ClientOptions(transports=transports))
    try:
        with sample_websocket_key():
            await client.connect()
        # connect() returns on the server's CONNECT; the tap records it as it relays it.
        await trace.wait_for(lambda e: e.layer is Layer.SIO and e.source == "server")
        if "polling" in transports:  # the upgrade goes on after connect(): its last packet
            await trace.wait_for(lambda e: e.layer is Layer.EIO and e.raw == b"5")
    finally:
        tap.recording = False
        await client.close()
        await tap.stop()
    return trace


async def test_a_real_handshake_is_recorded_with_every_packet_and_its_bytes(
    server: ChatServer,
) -> None:
    trace = await handshake_through_tap(server, ("websocket",))
    events = trace.events
    request = next(e for e in events if e.layer is Layer.HTTP and e.source == "client")
    assert request.raw is not None
    assert f"Sec-WebSocket-Key: {SAMPLE_WS_KEY}\r\n".encode() in request.raw  # the real bytes
    assert request.phase == "http"
    upgrade = next(e for e in events if e.fields.get("status") == 101)
    assert upgrade.raw is not None and upgrade.status == "ok"
    assert f"Sec-WebSocket-Accept: {SAMPLE_WS_ACCEPT}\r\n".encode() in upgrade.raw
    opened = next(e for e in events if e.layer is Layer.EIO and e.fields.get("type") == "OPEN")
    assert opened.raw is not None and opened.raw.startswith(b'0{"sid":')
    assert opened.phase == "ws"
    connects = [e for e in events if e.layer is Layer.SIO and e.fields.get("type") == "CONNECT"]
    assert [(e.source, e.target) for e in connects] == [("client", "server"), ("server", "client")]
    assert connects[0].raw is not None and connects[0].raw.startswith(b"0")
    assert connects[1].status == "ok" and connects[1].raw is not None
    assert connects[1].raw.startswith(b'0{"sid":')
    frames = [e for e in events if e.layer is Layer.WS]
    assert frames and all(e.raw for e in frames)


async def test_polling_connections_of_one_session_share_one_lifeline(server: ChatServer) -> None:
    trace = await handshake_through_tap(server, ("polling", "websocket"))
    clients = {lf.id for lf in trace.lifelines if lf.kind == "client"}
    assert clients == {"client"}
    probes = [e.raw for e in trace.events if e.layer is Layer.EIO]
    assert b"2probe" in probes and b"3probe" in probes and b"5" in probes


async def test_deterministic_frames_are_remasked_with_the_rfc_sample_key(
    server: ChatServer,
) -> None:
    stable = stable_trace(await handshake_through_tap(server, ("websocket",)))
    masked = [e for e in stable.events if e.layer is Layer.WS and e.fields.get("masked")]
    assert masked
    for event in masked:
        assert event.raw is not None and event.raw[2:6] == SAMPLE_MASKING_KEY
        assert event.fields["masking_key"] == SAMPLE_MASKING_KEY.hex()
    reply = next(e for e in stable.events if e.layer is Layer.SIO and e.status == "ok")
    assert reply.raw == b'0{"sid":"sid-2"}'


def test_the_sample_key_shim_is_scoped() -> None:
    import aiohttp.client

    real = aiohttp.client.os
    with sample_websocket_key():
        assert aiohttp.client.os.urandom(16) == b"the sample nonce"
        assert len(aiohttp.client.os.urandom(4)) == 4
        assert aiohttp.client.os.getpid() == os.getpid()
    assert aiohttp.client.os is real


class ClosingTap(Wiretap):
    """A wiretap that tells when a relayed connection has closed (both sides done)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed_count = 0
        self.closing = asyncio.Event()

    def closed(self, conn: Any) -> None:
        super().closed(conn)
        self.closed_count += 1
        self.closing.set()

    async def until_closed(self, count: int, timeout: float = 10) -> None:
        async def wait() -> None:
            while self.closed_count < count:
                self.closing.clear()
                await self.closing.wait()

        await asyncio.wait_for(wait(), timeout)


async def one_session_through(tap: Wiretap, user: str) -> tuple[socketio.AsyncClient, str]:
    """A python-socketio client logs in through ``tap`` over WebSocket (one TCP connection)."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        tap.url,
        transports=["websocket"],
        auth={"username": user, "password": user},
        wait_timeout=10,  # python-socketio's 1 s default is too short on a busy machine
    )
    return sio, str(sio.eio.sid)


async def test_a_long_running_tap_keeps_a_bounded_record(server: ChatServer) -> None:
    """Sessions come and go through a tap with bounds: it remembers the open connections,
    the last ``keep_closed`` closed ones and the last ``keep_sids`` sids, while every
    connection's bytes still pass and a live session keeps its lifeline."""
    trace = Trace()
    upstream = ("127.0.0.1", server.port or 0)
    async with ClosingTap(trace, upstream, keep_closed=2, keep_sids=4) as tap:
        for _ in range(30):
            sio, _ = await one_session_through(tap, "alice")
            await sio.disconnect()
        await tap.until_closed(30)
        assert tap.opened_count == 30
        assert len(tap.connections) == 2
        assert len(tap.sid_names) == 4
        live, eio_sid = await one_session_through(tap, "bob")
        try:
            assert tap.lifeline_of(eio_sid) is not None  # the newest is remembered
            assert [c.number for c in tap.connections] == [29, 30, 31]
        finally:
            await live.disconnect()


async def test_a_tap_without_bounds_keeps_every_connection(server: ChatServer) -> None:
    trace = Trace()
    async with ClosingTap(trace, ("127.0.0.1", server.port or 0)) as tap:
        for _ in range(5):
            sio, _ = await one_session_through(tap, "alice")
            await sio.disconnect()
        await tap.until_closed(5)
        assert [c.number for c in tap.connections] == [1, 2, 3, 4, 5]
        assert len(tap.sid_names) == 10  # an Engine.IO and a Socket.IO sid each
