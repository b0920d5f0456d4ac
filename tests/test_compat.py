"""The seam (``tutorial/compat.py``): every access to a library's private parts, run for real.

Each test names the library and the seam function it checks, so that an upgrade that
moves a private name fails here, loudly, and not somewhere deep in a scenario. The
version tests fail first when an upgrade leaves the range the seam was checked with.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from rawclient import RawSocket

import tutorial
from tutorial import compat
from tutorial.chat.sendqueue import SendQueue
from tutorial.chat.server import ChatServer
from tutorial.cluster.redis import RedisProcess


@pytest.mark.parametrize("distribution", sorted(compat.CHECKED))
def test_installed_versions_are_the_ones_the_seam_was_checked_with(distribution: str) -> None:
    first, last = compat.CHECKED[distribution]
    assert compat.version_checked(distribution), (
        f"{distribution} {compat.version(distribution)} is outside {first}-{last}, the "
        f"versions tutorial/compat.py was checked with: re-run tests/test_compat.py, fix "
        f"the accesses it reports, then widen CHECKED"
    )


def test_no_module_outside_the_seam_reaches_a_private_library_name() -> None:
    """``x._name`` where ``x`` is not ``self``/``cls`` (our own objects' privates are ours)."""
    root = Path(tutorial.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "compat.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        annotations = {
            id(n) for a in ast.walk(tree) for ann in _annotations(a) for n in ast.walk(ann)
        }
        for node in ast.walk(tree):
            if id(node) in annotations:
                continue  # a type name (typeshed's zlib._Decompress) is not an access
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__"):
                continue
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            owner = base.id if isinstance(base, ast.Name) else ""
            if isinstance(base, ast.Call) and getattr(base.func, "id", "") == "super":
                owner = "self"
            if owner in {"self", "cls"} or owner.startswith("_"):
                continue
            offenders.append(f"{path.relative_to(root)}:{node.lineno} .{node.attr}")
    assert offenders == [], "private names outside tutorial/compat.py: " + ", ".join(offenders)


def _annotations(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
        return [node.annotation]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        return [node.returns]
    return []


# -- aiosqlite ----------------------------------------------------------------------------


async def test_aiosqlite_runs_our_function_in_its_database_thread_in_order(
    tmp_path: Path,
) -> None:
    """compat.run_in_connection_thread: Connection._execute and ._conn (aiosqlite)."""
    threads: list[int] = []
    db = await aiosqlite.connect(tmp_path / "x.db", isolation_level=None)
    try:
        await db.execute("CREATE TABLE t (n INTEGER)")
        await db.execute("INSERT INTO t VALUES (1)")  # queued before our function

        def work(conn: sqlite3.Connection, extra: int) -> int:
            assert isinstance(conn, sqlite3.Connection)
            threads.append(threading.get_ident())
            conn.execute("INSERT INTO t VALUES (?)", (extra,))
            return int(conn.execute("SELECT SUM(n) FROM t").fetchone()[0])

        assert await compat.run_in_connection_thread(db, work, 41) == 42
        assert threads and threads[0] != threading.get_ident()
        async with db.execute("SELECT COUNT(*) FROM t") as cursor:
            assert (await cursor.fetchone()) == (2,)
    finally:
        await db.close()


# -- python-engineio and python-socketio, on a running server -----------------------------


@pytest.fixture
async def raw_socket(server: ChatServer) -> AsyncIterator[RawSocket]:
    sock = await RawSocket.open(server.port or 0)
    try:
        yield sock
    finally:
        await sock.close()


async def test_engineio_sessions_lists_the_open_sessions(
    server: ChatServer, raw_socket: RawSocket
) -> None:
    """compat.engineio_sessions: AsyncServer.sockets (python-engineio)."""
    sessions = compat.engineio_sessions(server.sio.eio)
    assert [s.sid for s in sessions] == [raw_socket.handshake["sid"]]
    assert all(callable(s.close) for s in sessions)


async def test_a_packet_queued_on_a_session_reaches_its_client(
    server: ChatServer, raw_socket: RawSocket
) -> None:
    """compat.queue_packet: AsyncSocket.queue, .closed, .last_ping (python-engineio)."""
    eio, sid = server.sio.eio, raw_socket.handshake["sid"]
    packet = eio_packet.Packet(eio_packet.MESSAGE, '2["hello-from-the-seam"]')
    assert compat.queue_packet(eio, sid, packet) == compat.QUEUED
    assert await raw_socket.until("42") == '42["hello-from-the-seam"]'
    assert compat.queue_packet(eio, "no-such-session", packet) == compat.GONE
    socket = eio.sockets[sid]
    assert hasattr(socket, "last_ping")
    socket.last_ping = time.time() - eio.ping_timeout - 1  # it missed its pings
    assert compat.queue_packet(eio, sid, packet) == compat.SLOW


async def test_a_session_ended_through_the_seam_closes_its_websocket(
    server: ChatServer, raw_socket: RawSocket
) -> None:
    """compat.engineio_socket, send_queue_of, end_engineio_socket: AsyncServer.sockets,
    AsyncSocket.queue, .closed, .close (python-engineio)."""
    eio, sid = server.sio.eio, raw_socket.handshake["sid"]
    socket = compat.engineio_socket(eio, sid)
    assert socket is not None and compat.engineio_socket(eio, "no-such-session") is None
    assert isinstance(compat.send_queue_of(socket), SendQueue)  # the bound's own queue
    await compat.end_engineio_socket(socket, stop_writer=True)
    await asyncio.wait_for(raw_socket.closed(), 5)
    assert socket.closed


def test_a_sentinel_url_is_read_as_the_redis_manager_reads_it() -> None:
    """compat.parse_redis_sentinel_url: socketio.redis_manager (python-socketio)."""
    sentinels, service, options = compat.parse_redis_sentinel_url(
        "redis+sentinel://h1:26379,h2:26380/0/mymaster"
    )
    assert (sentinels, service, options) == ([("h1", 26379), ("h2", 26380)], "mymaster", {"db": 0})
    assert compat.parse_redis_sentinel_url("redis+sentinel://:pw@h1:26379/")[1:] == (
        None,
        {"password": "pw"},
    )


async def test_an_undecodable_frame_closes_the_connection_through_the_installed_class(
    server: ChatServer, raw_socket: RawSocket
) -> None:
    """compat.install_engineio_hooks: AsyncServer._async, async_drivers.aiohttp.WebSocket
    (the queue, the transport and the address: tests/test_engineio_hooks.py)."""
    from engineio.async_drivers import aiohttp as driver

    installed = server.sio.eio._async["websocket"]
    assert issubclass(installed, driver.WebSocket) and installed is not driver.WebSocket
    assert inspect.iscoroutinefunction(driver.WebSocket.wait)
    assert server.sio.eio.create_queue == server.send_policy.make_queue
    await raw_socket.send("x")  # not an Engine.IO packet
    await asyncio.wait_for(raw_socket.closed(), 5)


async def test_sids_map_to_engineio_sessions_and_back(server: ChatServer) -> None:
    """compat.sid_of_engineio / engineio_of_sid: BaseManager (python-socketio)."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"], wait_timeout=10)
    try:
        eio_sid = str(client.eio.sid)
        sid = compat.sid_of_engineio(server.sio, eio_sid)
        assert sid == client.get_sid("/")
        assert compat.engineio_of_sid(server.sio, sid) == eio_sid
        assert compat.sid_of_engineio(server.sio, "nope") is None
        assert compat.engineio_of_sid(server.sio, "nope") is None
    finally:
        await client.disconnect()


async def test_a_redis_manager_starts_before_any_client_and_stops_cleanly() -> None:
    """compat.start_client_manager / stop_redis_manager: manager_initialized, .thread, .redis."""
    redis = RedisProcess()
    await asyncio.to_thread(redis.start)
    try:
        sio = socketio.AsyncServer(
            async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis.url)
        )
        compat.start_client_manager(sio)
        assert sio.manager_initialized is True
        listener = sio.manager.thread
        assert isinstance(listener, asyncio.Task) and not listener.done()
        compat.start_client_manager(sio)  # idempotent
        assert sio.manager.thread is listener
        await compat.stop_redis_manager(sio)
        assert listener.done()
        plain = socketio.AsyncServer(async_mode="aiohttp")
        compat.start_client_manager(plain)
        await compat.stop_redis_manager(plain)  # no Redis: nothing to do
    finally:
        await asyncio.to_thread(redis.close)


# -- aiohttp -------------------------------------------------------------------------------


async def test_aiohttps_websocket_client_sends_the_sample_key_only_inside_the_context() -> None:
    """compat.sample_websocket_key: the ``os`` reference of aiohttp.client."""
    import aiohttp.client as client_module

    assert inspect.getsource(client_module).count("os.urandom(16)") == 1
    keys: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        keys.append(request.headers["Sec-WebSocket-Key"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with aiohttp.ClientSession() as http:
            with compat.sample_websocket_key():
                async with http.ws_connect(url) as ws:
                    await ws.receive()
            async with http.ws_connect(url) as ws:
                await ws.receive()
    finally:
        await runner.cleanup()
    assert keys[0] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert keys[1] != keys[0]
    assert client_module.os.urandom is __import__("os").urandom


# -- argparse (the standard library) ---------------------------------------------------------


def test_argparse_is_read_through_the_seam() -> None:
    """compat.argparse_actions / _subcommands / _usage: ArgumentParser._actions,
    _SubParsersAction._choices_actions, _mutually_exclusive_groups (the standard library)."""
    import argparse

    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--flag", action="store_true", help="a flag")
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("one", help="the first")
    one.add_argument("path")
    sub.add_parser("two", help="the second")
    assert [a.dest for a in compat.argparse_actions(parser)] == ["help", "flag", "command"]
    assert [(n, h) for n, _, h in compat.argparse_subcommands(parser)] == [
        ("one", "the first"),
        ("two", "the second"),
    ]
    assert compat.argparse_subcommands(one) == []
    assert compat.argparse_usage(parser) == "demo [-h] [--flag] {one,two} ..."
    assert compat.argparse_usage(one) == "demo one [-h] path"


# -- the broadcast fast path (tutorial/chat/fanout.py) -------------------------------------


async def test_a_session_is_read_through_the_seam(server: ChatServer) -> None:
    """compat.engineio_socket / engineio_socket_table / socket_state / send_queue_of:
    AsyncServer.sockets, AsyncSocket.closed, .closing, .upgraded, .upgrading, .last_ping
    and .queue (python-engineio)."""
    eio = server.sio.eio
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"], wait_timeout=10)
    polling = socketio.AsyncClient(reconnection=False)
    await polling.connect(server.url, transports=["polling"])
    try:
        ws_sid, poll_sid = str(client.eio.sid), str(polling.eio.sid)
        table = compat.engineio_socket_table(eio)
        assert table is eio.sockets and set(table) >= {ws_sid, poll_sid}
        socket = compat.engineio_socket(eio, ws_sid)
        assert socket is table[ws_sid] and compat.engineio_socket(eio, "nope") is None
        now = time.time()
        assert compat.socket_state(eio, socket, now) == compat.WEBSOCKET
        assert compat.socket_state(eio, table[poll_sid], now) == compat.POLLING
        assert compat.send_queue_of(socket) is socket.queue
        assert compat.send_queue_of(socket).__class__.__name__ == "SendQueue"
        socket.last_ping = now - eio.ping_timeout - 1
        assert compat.socket_state(eio, socket, now) == compat.SLOW
        socket.last_ping = None
        await socket.close(wait=False)
        assert compat.socket_state(eio, socket, now) == compat.GONE
    finally:
        await client.disconnect()
        await polling.disconnect()


def test_the_driver_call_the_seam_rewrites_is_the_one_it_was_copied_from() -> None:
    """compat.install_engineio_hooks(websocket_compression=False) re-writes
    async_drivers.aiohttp.WebSocket.__call__ with compress=False (python-engineio)."""
    from engineio.async_drivers import aiohttp as driver

    source = inspect.getsource(driver.WebSocket.__call__)
    assert "WebSocketResponse(\n            max_msg_size=self.server.max_http_buffer_size)" in (
        source
    ), "the driver's __call__ changed: update GuardedWebSocket.__call__ in compat.py"
    assert "await self.handler(self)" in source and "self.environ = environ" in source


def test_the_redis_managers_local_delivery_goes_through_super_emit() -> None:
    """compat.fanout_manager: AsyncPubSubManager._handle_emit delivers with super().emit,
    and AsyncManager.emit's signature is the one the subclass overrides (python-socketio)."""
    from socketio.async_pubsub_manager import AsyncPubSubManager

    assert "await super().emit(" in inspect.getsource(AsyncPubSubManager._handle_emit)
    params = list(inspect.signature(socketio.AsyncManager.emit).parameters)
    assert params[:8] == [
        "self",
        "event",
        "data",
        "namespace",
        "room",
        "skip_sid",
        "callback",
        "to",
    ]

    async def deliver(encoded: str, eio_sids: list[str]) -> None:
        pass

    manager = compat.fanout_manager("redis://127.0.0.1:1/0", deliver)
    mro = type(manager).__mro__
    order = [c.__name__ for c in mro]
    assert order.index("AsyncPubSubManager") < order.index("FanoutEmit")
    assert order.index("FanoutEmit") < order.index("AsyncManager")
    assert type(compat.fanout_manager(None, deliver)).__name__ == "FanoutEmit"


async def test_a_broadcast_is_encoded_once_as_asyncmanager_emit_encodes_it(
    server: ChatServer,
) -> None:
    """compat.fanout_manager: the packet handed to the fast path is python-socketio's
    own encoding (BaseManager.rooms, AsyncServer.packet_class, get_participants)."""
    got: list[tuple[str, list[str]]] = []

    async def deliver(encoded: str, eio_sids: list[str]) -> None:
        got.append((encoded, eio_sids))

    manager = server.sio.manager
    original = server._deliver
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"], wait_timeout=10)
    try:
        manager_deliver = compat.fanout_manager(None, deliver)
        manager_deliver.set_server(server.sio)
        manager_deliver.rooms = manager.rooms  # the same rooms, another delivery
        await manager_deliver.emit("hello", {"a": [1, "é"]}, "/", room=None)
        await manager_deliver.emit("many", ("x", 2), "/", to=None, ignore_queue=False)
        await manager_deliver.emit("nobody", None, "/nope")
        from socketio import packet as sio_packet

        def library(*data: Any) -> str:
            packet = server.sio.packet_class(sio_packet.EVENT, namespace="/", data=[*data])
            return str(packet.encode())

        assert [e for e, _ in got] == [library("hello", {"a": [1, "é"]}), library("many", "x", 2)]
        assert got[1][0] == '2["many","x",2]'
        assert got[0][1] == [str(client.eio.sid)]
    finally:
        assert server._deliver == original
        await client.disconnect()


async def test_a_sessions_pings_are_routed_and_read_through_the_seam(
    server: ChatServer, raw_socket: RawSocket
) -> None:
    """compat.route_engineio_pings, ping_packet, ping_due, ping_sent, pong_missing,
    engineio_sid, forget_if_closed: AsyncServer.start_background_task,
    AsyncSocket._send_ping as schedule_ping's target, .last_ping, .closing, .closed,
    .sid, AsyncServer.sockets (python-engineio)."""
    eio, sid = server.sio.eio, raw_socket.handshake["sid"]
    socket = eio.sockets[sid]
    assert compat.engineio_sid(socket) == sid
    routed: list[Any] = []
    compat.route_engineio_pings(eio, routed.append)
    socket.last_ping = time.time()  # a ping answered: the library schedules the next
    socket.schedule_ping()
    assert routed == [socket], "schedule_ping no longer starts _send_ping through the server"
    other = eio.start_background_task(asyncio.sleep, 0)  # anything else: the library's
    await other
    assert compat.ping_packet().encode() == "2"
    assert compat.ping_due(socket)
    sent = compat.ping_sent(socket)
    assert socket.last_ping == sent and compat.pong_missing(socket, sent)
    socket.schedule_ping()  # what a PONG does: last_ping cleared
    assert not compat.pong_missing(socket, sent)
    compat.forget_if_closed(eio, socket)
    assert sid in eio.sockets, "an open session was forgotten"
    await compat.end_engineio_socket(socket, stop_writer=True)
    assert not compat.ping_due(socket)
    compat.forget_if_closed(eio, socket)
    assert sid not in eio.sockets
