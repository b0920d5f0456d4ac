"""What the limits take from python-engineio's internals (``packets.install_engineio_hooks``).

python-engineio has no public hook for a socket's send queue, the WebSocket transport
under it, or the client's address (its aiohttp driver writes ``127.0.0.1`` for every
client). The server reaches them through a few private names, bounded by the versions
in ``pyproject.toml`` (python-engineio < 5). These tests drive real connections and
fail with a message naming the broken piece if an upgrade moves any of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import socketio
from rawclient import RawSocket, Recorder

from tutorial.chat.sendqueue import SendQueue
from tutorial.chat.server import ChatServer

MakeServer = Callable[..., Awaitable[ChatServer]]


async def test_every_socket_queue_is_a_bounded_send_queue(custom_server: MakeServer) -> None:
    # A short ping: a closed polling client's last long-poll is answered sooner.
    server = await custom_server(ping_interval=1.0, ping_timeout=1.0)
    polling = Recorder(server.url, "alice", transports=("polling",))
    raw = await RawSocket.open(server.port)
    try:
        await polling.login("alice")
        await raw.connect({"username": "bob", "password": "bob"})
        queues = [type(s.queue) for s in server.sio.eio.sockets.values()]
        assert queues == [SendQueue, SendQueue], (
            "python-engineio no longer builds socket queues with create_queue()"
        )
    finally:
        await polling.close()
        await raw.ws.close()


async def test_a_websocket_transport_is_known_to_its_send_queue(server: ChatServer) -> None:
    raw = await RawSocket.open(server.port)
    try:
        await raw.connect({"username": "bob", "password": "bob"})
        (socket,) = server.sio.eio.sockets.values()
        transport = server.send_policy.transport_of(socket)
        assert transport is not None, (
            "GuardedWebSocket could not find the socket (handler.__self__) or the request "
            "(environ['aiohttp.request'])"
        )
        assert transport.get_extra_info("peername")[1] == raw.ws.local_address[1]
    finally:
        await raw.ws.close()


async def test_the_connect_handler_sees_the_clients_own_address(server: ChatServer) -> None:
    # A client bound to 127.0.0.2: python-engineio alone would report 127.0.0.1.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
    sio = socketio.AsyncClient(reconnection=False, http_session=session)
    try:
        await sio.connect(
            server.url,
            transports=["websocket"],
            auth={"username": "eve", "password": "eve"},
            wait_timeout=10,
        )
        (session_state,) = server.sessions.values()
        assert session_state.address == "127.0.0.2", "REMOTE_ADDR is not the client's address"
    finally:
        await sio.disconnect()
        await session.close()
