"""Broadcast order under concurrency: the server persists message n + 1 while it still
broadcasts message n (a pipeline), and the store commits waiting appends together.
Whatever the interleaving, every client in the room must receive every message exactly
once, in strictly increasing ``seq`` order, and each ack must carry the stored seq.

Raw python-socketio clients on purpose: the teaching client reorders and de-duplicates,
which would hide a server that does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.conftest import make_config
from tutorial.chat.server import ChatServer
from tutorial.chat.store import UserRecord

pytestmark = pytest.mark.timeout(90)

ROOM = "order-room"
SENDERS = 8
MESSAGES = 30
LISTENERS = 3


@pytest.fixture
async def busy_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    """A server without the rate limit (it would cap each sender at 10 messages/s)."""
    srv = ChatServer(make_config(tmp_path, demo=False, rate_capacity=1e9, rate_per_second=1e9))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def connect_all(server: ChatServer, names: list[str]) -> dict[str, Any]:
    """Users (token login, no password hashing), one raw client each, all in ROOM."""
    assert server.tokens is not None
    await server.store.add_room(ROOM, private=False, members=[])
    clients: dict[str, Any] = {}
    received: dict[str, list[dict[str, Any]]] = {}
    arrived = asyncio.Event()  # set by each new-message: waiters re-check, no polling
    for name in names:
        await server.store.add_user(UserRecord(name, "00", "token-login-only"))
        sio = socketio.AsyncClient(reconnection=False)
        got: list[dict[str, Any]] = []
        received[name] = got

        def on_message(data: dict[str, Any], got: list[dict[str, Any]] = got) -> None:
            got.append(data)
            arrived.set()

        sio.on("new-message", on_message)
        await sio.connect(
            server.url,
            transports=["websocket"],
            auth={"token": server.tokens.issue(name)},
            wait_timeout=10,
        )
        ack = await sio.call("join-room", {"roomId": ROOM}, timeout=10)
        assert ack["ok"], ack
        clients[name] = sio
    return {"clients": clients, "received": received, "arrived": arrived}


async def until_each_has(world: dict[str, Any], count: int, timeout: float) -> None:
    """Wait until every client has received ``count`` messages (woken by each arrival)."""
    received, arrived = world["received"], world["arrived"]

    async def wait() -> None:
        while any(len(got) < count for got in received.values()):
            arrived.clear()
            await arrived.wait()

    await asyncio.wait_for(wait(), timeout)


async def test_concurrent_senders_every_client_gets_all_in_seq_order(
    busy_server: ChatServer,
) -> None:
    senders = [f"sender{i}" for i in range(SENDERS)]
    names = senders + [f"listener{i}" for i in range(LISTENERS)]
    world = await connect_all(busy_server, names)
    clients, received = world["clients"], world["received"]
    try:

        async def send_all(name: str) -> list[tuple[str, dict[str, Any]]]:
            """All of one sender's messages in flight at once, message 0 sent twice."""
            sio = clients[name]
            ids = [f"{name}-{k}" for k in range(MESSAGES)] + [f"{name}-0"]

            async def one(cid: str) -> tuple[str, dict[str, Any]]:
                payload = {"roomId": ROOM, "text": f"text of {cid}", "clientMsgId": cid}
                return cid, await sio.call("send-message", payload, timeout=30)

            return await asyncio.gather(*(one(cid) for cid in ids))

        per_sender = await asyncio.gather(*(send_all(n) for n in senders))
        total = SENDERS * MESSAGES
        await until_each_has(world, total, 30)
        stored = await busy_server.store.history(ROOM, since=0, limit=10_000)

        # A fence: one more message, sent after every ack came back. Each client's
        # messages arrive over one WebSocket in the order the server sent them, so a
        # duplicate of an earlier message would arrive before the fence does.
        fence = {"roomId": ROOM, "text": "fence", "clientMsgId": "fence"}
        assert (await clients[senders[0]].call("send-message", fence, timeout=30))["ok"]
        await until_each_has(world, total + 1, 30)
        for name, got in received.items():
            assert got[-1]["clientMsgId"] == "fence", f"{name} got more than it was sent"
            del got[-1]
        assert [m.seq for m in stored] == list(range(1, total + 1))
        by_cid = {m.client_msg_id: m for m in stored}
        assert len(by_cid) == total  # the resent message 0 of each sender stored once

        # Acks: ok, and the seq and id the store holds; the resend is the duplicate.
        for name, acks in zip(senders, per_sender, strict=True):
            assert all(ack["ok"] for _, ack in acks), acks
            for cid, ack in acks:
                assert (ack["seq"], ack["id"]) == (by_cid[cid].seq, by_cid[cid].id)
            first_zero = [ack for cid, ack in acks if cid == f"{name}-0"]
            assert sorted(a["duplicate"] for a in first_zero) == [False, True]
            # One sender's messages were all in flight at once: stored in some order,
            # each once.
            assert sum(not ack["duplicate"] for _, ack in acks) == MESSAGES

        # Every client: every message once, strictly increasing seq, as stored.
        expected = [m.to_event() for m in stored]
        for name, got in received.items():
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(1, total + 1)), f"{name} got seqs out of order"
            assert got == expected
    finally:
        for sio in clients.values():
            await sio.disconnect()


async def test_a_failed_append_keeps_the_order_and_leaves_no_gap(
    busy_server: ChatServer,
) -> None:
    """An append that fails (its room vanished from the store) between good ones:
    its sender gets an error ack, the others are delivered in order without a gap."""
    world = await connect_all(busy_server, ["amy", "ben"])
    clients, received = world["clients"], world["received"]
    try:
        # The server still believes amy is in "ghost", which the store does not know.
        session = next(s for s in busy_server.sessions.values() if s.user == "amy")
        session.rooms.add("ghost")
        amy, ben = clients["amy"], clients["ben"]

        def send(sio: Any, room: str, cid: str) -> Any:
            payload = {"roomId": room, "text": cid, "clientMsgId": cid}
            return sio.call("send-message", payload, timeout=10)

        acks = await asyncio.gather(
            send(amy, ROOM, "a1"),
            send(amy, "ghost", "a2"),
            send(ben, ROOM, "b1"),
            send(amy, ROOM, "a3"),
        )
        assert [a["ok"] for a in acks] == [True, False, True, True]
        assert acks[1]["error"]["code"] == "store_unavailable"
        assert sorted(a["seq"] for a in acks if a["ok"]) == [1, 2, 3]

        await until_each_has(world, 3, 10)
        for got in received.values():
            assert [m["seq"] for m in got] == [1, 2, 3]
            assert sorted(m["text"] for m in got) == ["a1", "a3", "b1"]
    finally:
        for sio in clients.values():
            await sio.disconnect()
