"""The broadcast fast path (``tutorial/chat/fanout.py``), read off the wire.

* the fast path and python-socketio's own emit put the very same bytes on a WebSocket;
* its frames are RFC 6455 frames byte for byte (wsproto, an independent encoder, agrees);
* every client, WebSocket or long-polling, gets every message once in seq order;
* messages from another server (Redis) take it too;
* a client that does not read is refused by the per-connection bound and closed (1008);
* permessage-deflate is declined by default; allowed, its connections take the queue;
* with the libraries outside the versions the seam was checked with, the server falls
  back to ``sio.emit``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from rawclient import Recorder
from test_limits_connections import NeverReader, client_text_frame
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from tests.conftest import make_config
from tutorial import compat
from tutorial.chat.server import ChatServer
from tutorial.chat.store import UserRecord
from tutorial.cluster.redis import RedisProcess
from tutorial.protocol.websocket import text_frame

pytestmark = pytest.mark.timeout(90)


class WireClient(NeverReader):
    """A raw WebSocket client that keeps every server frame exactly as it came."""

    async def raw_frame(self, timeout: float = 5.0) -> bytes:
        """The next server frame's bytes: header, extended length, payload."""

        async def read() -> bytes:
            head = await self.reader.readexactly(2)
            n = head[1] & 0x7F
            extra = b""
            if n == 126:
                extra = await self.reader.readexactly(2)
                n = int.from_bytes(extra, "big")
            elif n == 127:
                extra = await self.reader.readexactly(8)
                n = int.from_bytes(extra, "big")
            return head + extra + await self.reader.readexactly(n)

        return await asyncio.wait_for(read(), timeout)

    async def next_event_frame(self, name: str) -> bytes:
        """The next frame carrying the Socket.IO EVENT ``name`` (skipping pings)."""
        while True:
            raw = await self.raw_frame()
            if f'42["{name}"'.encode() in raw[:64]:
                return raw


async def open_wire(srv: ChatServer, user: str = "alice") -> WireClient:
    client = await WireClient.open(
        srv.port or 0, {"username": user, "password": user}, ("general",)
    )
    client.writer.transport.resume_reading()
    return client


# -- the same bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"text": "hi"}, id="7-bit-length"),
        pytest.param({"text": "é ✓ 🎉 " * 40}, id="16-bit-length-unicode"),
        pytest.param({"text": "x" * 70_000}, id="64-bit-length"),
        pytest.param(("two", ["args"]), id="tuple-args"),
    ],
)
async def test_the_fast_path_and_sio_emit_put_the_same_bytes_on_the_wire(
    server: ChatServer, payload: Any
) -> None:
    assert server.fanout is not None, "the fast path is on by default"
    wire = await open_wire(server)
    try:
        before = server.fanout.counters.written
        await server.sio.emit("probe", payload, room="general")  # the fast path
        fast = await wire.next_event_frame("probe")
        assert server.fanout.counters.written == before + 1
        # python-socketio's own AsyncManager.emit: a task per recipient, its queue, and
        # aiohttp's send_str building the frame.
        await socketio.AsyncManager.emit(server.sio.manager, "probe", payload, "/", room="general")
        library = await wire.next_event_frame("probe")
        assert fast == library
        assert server.fanout.counters.written == before + 1  # the library's went its way
        body = fast[2 + {126: 2, 127: 8}.get(fast[1] & 0x7F, 0) :].decode()
        args = list(payload) if isinstance(payload, tuple) else [payload]
        assert body == "42" + json.dumps(["probe", *args], separators=(",", ":"))
    finally:
        wire.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_a_text_frame_is_what_wsproto_sends_as_a_server(size: int) -> None:
    text = "4" + "x" * (size - 1) if size else ""
    server = Connection(ConnectionType.SERVER)
    assert text_frame(text) == server.send(TextMessage(data=text))


def test_a_frame_with_a_wrong_length_form_is_told_apart() -> None:
    """The comparison above can fail: the same payload with its length in the 16-bit
    form (allowed by nobody: 5.2 asks for the minimal form) is another frame."""
    good = text_frame("hi")
    padded = bytes([0x81, 126, 0, 2]) + b"hi"
    assert good != padded
    assert good == bytes([0x81, 2]) + b"hi"


# -- order and exactly-once, WebSocket and polling alike ---------------------------------


@pytest.fixture
async def busy_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    srv = ChatServer(make_config(tmp_path, demo=False, rate_capacity=1e9, rate_per_second=1e9))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def room_of(srv: ChatServer, transports: dict[str, str]) -> dict[str, Any]:
    """One raw python-socketio client per name, on its transport, all in ``busy``."""
    assert srv.tokens is not None
    await srv.store.add_room("busy", private=False, members=[])
    clients: dict[str, socketio.AsyncClient] = {}
    received: dict[str, list[dict[str, Any]]] = {}
    arrived = asyncio.Event()  # set at each arrival: waiters re-check, no polling

    def on_message(data: dict[str, Any], got: list[dict[str, Any]]) -> None:
        got.append(data)
        arrived.set()

    for name, transport in transports.items():
        await srv.store.add_user(UserRecord(name, "00", "token-login-only"))
        sio = socketio.AsyncClient(reconnection=False)
        got: list[dict[str, Any]] = []
        received[name] = got
        sio.on("new-message", lambda data, got=got: on_message(data, got))
        await sio.connect(srv.url, transports=[transport], auth={"token": srv.tokens.issue(name)})
        assert (await sio.call("join-room", {"roomId": "busy"}, timeout=10))["ok"]
        clients[name] = sio
    return {"clients": clients, "received": received, "arrived": arrived}


async def test_every_client_gets_every_message_once_in_seq_order_on_either_transport(
    busy_server: ChatServer,
) -> None:
    transports = {f"ws{i}": "websocket" for i in range(4)} | {"poll0": "polling"}
    world = await room_of(busy_server, transports)
    clients, received = world["clients"], world["received"]
    senders, per_sender = ["ws0", "ws1", "ws2"], 25
    total = len(senders) * per_sender
    try:

        async def send_all(name: str) -> None:
            async def one(k: int) -> None:
                payload = {"roomId": "busy", "text": f"{name} {k}", "clientMsgId": f"{name}-{k}"}
                ack = await clients[name].call("send-message", payload, timeout=30)
                assert ack["ok"], ack

            await asyncio.gather(*(one(k) for k in range(per_sender)))
            await one(0)  # a resend: stored and delivered once

        await asyncio.gather(*(send_all(n) for n in senders))
        # A marker after everything: once every client has it, nothing else is coming
        # (each connection keeps its order).
        marker = {"roomId": "busy", "text": "marker", "clientMsgId": "marker"}
        assert (await clients["ws3"].call("send-message", marker, timeout=30))["ok"]

        async def all_in() -> None:
            while any(len(got) < total + 1 for got in received.values()):
                world["arrived"].clear()
                await world["arrived"].wait()

        await asyncio.wait_for(all_in(), 30)
        stored = await busy_server.store.history("busy", since=0, limit=10_000)
        assert [m.seq for m in stored] == list(range(1, total + 2))
        expected = [m.to_event() for m in stored]
        for name, got in received.items():
            assert got == expected, f"{name} did not get every message once, in seq order"
        counters = busy_server.fanout.counters if busy_server.fanout else None
        assert counters is not None
        assert counters.written > 0, "no delivery took the fast path"
        assert counters.queued > 0, "the polling client's deliveries must be queued"
    finally:
        for sio in clients.values():
            await sio.disconnect()


async def test_corked_frames_share_writes_and_stay_ahead_of_what_is_queued_after_them(
    custom_server: Callable[..., Any],
) -> None:
    """A burst of sends, committed together, is broadcast turn after turn: the frames
    of those turns wait corked and leave in fewer writes than frames. Each sender's ack
    goes through its queue, after its message's broadcast: on alice's wire every
    ``new-message`` comes before the ack of that message, and in seq order."""
    srv = await custom_server(rate_capacity=1e9, rate_per_second=1e9)
    assert srv.fanout is not None
    alice, bob = await open_wire(srv, "alice"), await open_wire(srv, "bob")
    burst = 40
    try:
        frames, writes = srv.fanout.counters.written, srv.fanout.counters.writes
        alice.writer.write(
            b"".join(
                client_text_frame(
                    f"42{100 + k}"
                    + json.dumps(
                        [
                            "send-message",
                            {"roomId": "general", "text": f"m{k}", "clientMsgId": f"m{k}"},
                        ]
                    )
                )
                for k in range(burst)
            )
        )
        order: dict[str, list[str]] = {"alice": [], "bob": []}
        for name, wire in (("alice", alice), ("bob", bob)):
            wanted = {"msg": burst, "ack": burst if name == "alice" else 0}
            while any(
                len([x for x in order[name] if x.startswith(kind)]) < n
                for kind, n in wanted.items()
            ):
                raw = await wire.raw_frame()
                body = raw[2 + {126: 2, 127: 8}.get(raw[1] & 0x7F, 0) :].decode()
                if body.startswith('42["new-message"'):
                    message = json.loads(body[2:])[1]
                    order[name].append(f"msg {message['clientMsgId']} {message['seq']}")
                elif body.startswith("43"):
                    ack = json.loads(body[body.index("[") :])[0]
                    order[name].append(f"ack m{int(body[2 : body.index('[')]) - 100} {ack['seq']}")
        for name, seen in order.items():
            got = [int(x.split()[2]) for x in seen if x.startswith("msg")]
            assert got == sorted(got), f"{name} got broadcasts out of seq order"
        acked = [x for x in order["alice"] if x.startswith("ack")]
        for ack in acked:  # "ack mK seq" comes after "msg mK seq"
            _, msg_id, seq = ack.split()
            assert order["alice"].index(f"msg {msg_id} {seq}") < order["alice"].index(ack), (
                f"the ack of {msg_id} overtook its broadcast on alice's wire"
            )
        frames = srv.fanout.counters.written - frames
        writes = srv.fanout.counters.writes - writes
        assert frames >= burst and writes < frames, (frames, writes)
    finally:
        alice.close()
        bob.close()


# -- messages from another server ---------------------------------------------------------


async def test_messages_from_another_server_through_redis_take_the_fast_path(
    tmp_path: Path,
) -> None:
    redis = RedisProcess()
    await asyncio.to_thread(redis.start)
    servers: list[ChatServer] = []
    recorders: list[Recorder] = []
    try:
        for name in ("one", "two"):
            config = make_config(tmp_path, redis_url=redis.url, name=name)
            srv = ChatServer(config)
            await srv.start()
            compat.start_client_manager(srv.sio)
            servers.append(srv)
        one, two = servers
        assert isinstance(two.sio.manager, socketio.AsyncRedisManager)
        alice, bob = Recorder(one.url, "alice"), Recorder(two.url, "bob")
        recorders += [alice, bob]
        await alice.login("alice", rooms=("general",))
        await bob.login("bob", rooms=("general",))
        written = two.fanout.counters.written if two.fanout else 0
        await alice.say("general", "across the cluster")
        message = await bob.next("new-message", match=lambda m: m["text"] == "across the cluster")
        assert message["user"] == "alice"
        assert two.fanout is not None and two.fanout.counters.written > written
    finally:
        for rec in recorders:
            await rec.close()
        for srv in servers:
            await srv.stop()
        await asyncio.to_thread(redis.close)


# -- the per-connection bound ---------------------------------------------------------------


async def test_a_client_that_does_not_read_is_refused_by_the_fast_path_and_closed(
    custom_server: Callable[..., Any],
) -> None:
    import socket

    srv = await custom_server(max_send_queue=32 * 1024, rate_capacity=1e9, rate_per_second=1e9)
    stalled = await NeverReader.open(
        srv.port, {"username": "alice", "password": "alice"}, ("general",)
    )
    bob = Recorder(srv.url, "bob")
    try:
        local_port = stalled.writer.get_extra_info("sockname")[1]
        for transport in srv.send_policy._transports.values():
            if transport.get_extra_info("peername")[1] == local_port:
                transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
                )
        await bob.login("bob", rooms=("general",))
        text = "x" * 1900
        for k in range(400):
            payload = {"roomId": "general", "text": text, "clientMsgId": f"f{k}"}
            assert (await bob.call("send-message", payload))["ok"]
            if srv.send_policy.overflows:
                break
        assert srv.send_policy.overflows == 1, "the client that does not read was never cut off"
        assert srv.fanout.counters.refused >= 1, "the fast path did not ask the bound"
        assert await bob.next("user-left", timeout=10) == {"roomId": "general", "user": "alice"}
        assert not [s for s in srv.sessions.values() if s.user == "alice"]
        assert srv.fanout._pending == {}, "frames held for a closed connection"
        await bob.say("general", "still here")
    finally:
        stalled.close()
        await bob.close()


# -- permessage-deflate ----------------------------------------------------------------------


@pytest.mark.parametrize("allowed", [False, True], ids=["declined", "allowed"])
async def test_permessage_deflate_is_declined_by_default_and_queued_when_allowed(
    custom_server: Callable[..., Any], allowed: bool
) -> None:
    srv = await custom_server(websocket_compression=allowed)
    url = f"{srv.url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, compress=15) as ws:
        assert bool(ws.compress) is allowed
        assert (await ws.receive_str()).startswith("0")
        await ws.send_str("40" + json.dumps({"username": "alice", "password": "alice"}))
        while not (await ws.receive_str()).startswith("40"):
            pass
        await ws.send_str('421["join-room",{"roomId":"general"}]')
        while not (await ws.receive_str()).startswith("431"):
            pass
        written, queued = srv.fanout.counters.written, srv.fanout.counters.queued
        await srv.sio.emit("probe", {"n": 1}, room="general")
        while (text := await ws.receive_str()) in ("2",):
            pass
        assert text == '42["probe",{"n":1}]'
        if allowed:  # one deflate context per connection: no shared frame
            assert (srv.fanout.counters.written, srv.fanout.counters.queued) == (
                written,
                queued + 1,
            )
        else:
            assert srv.fanout.counters.written == written + 1


# -- the fallback ---------------------------------------------------------------------------


async def test_outside_the_checked_versions_the_server_uses_sio_emit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(compat.CHECKED, "python-engineio", ((0, 1), (0, 2)))
    srv = ChatServer(make_config(tmp_path))
    assert srv.fanout is None
    assert type(srv.sio.manager) is socketio.AsyncManager
    await srv.start()
    alice = Recorder(srv.url, "alice")
    try:
        await alice.login("alice", rooms=("general",))
        message = await alice.say("general", "the library's way")  # sent, and heard back
        assert (message["user"], message["text"]) == ("alice", "the library's way")
    finally:
        await alice.close()
        await srv.stop()


def test_the_bench_flag_turns_the_fast_path_off(tmp_path: Path) -> None:
    srv = ChatServer(make_config(tmp_path, fast_fanout=False))
    assert srv.fanout is None and type(srv.sio.manager) is socketio.AsyncManager
