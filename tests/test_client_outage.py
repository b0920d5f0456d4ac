"""Nothing lost across an outage: the outbox, clientMsgId and per-room offsets."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_config
from tutorial.chat.server import ChatServer
from tutorial.client import Backoff, ChatClient, ClientOptions, State

FAST = ClientOptions(backoff=Backoff(base=0.02, cap=0.2), max_retries=50)


async def test_a_disconnected_client_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """While carol's connection is down, bob sends 20 and she queues 5; after she is
    back she has all 20 in order, the room has her 5 exactly once, nobody sees a
    duplicate."""
    server = ChatServer(make_config(tmp_path))
    await server.start()
    bob = ChatClient(server.url, "bob", "bob", options=FAST)
    alice = ChatClient(server.url, "alice", "alice", options=FAST)
    eve = ChatClient(server.url, "eve", "eve", options=FAST)
    try:
        for c in (bob, alice, eve):
            await c.connect()
            await c.join("general")
        await alice.send("general", "before")
        await alice.wait_until(lambda: alice.received("general") == ["before"])

        # Cut alice off: her transport dies, the server sees her leave.
        assert alice._sio is not None
        await alice._sio.eio.disconnect(abort=True)
        await alice.wait_for_state(State.RECONNECTING)
        # Keep her away until we are done: point her at a port nobody listens on.
        alice.url = "http://127.0.0.1:9"

        queued = [alice.send("general", f"alice {i}") for i in range(5)]
        bob_texts = [f"bob {i}" for i in range(20)]
        await bob.send_many("general", bob_texts)
        assert all(not f.done() for f in queued)

        alice.url = server.url
        await alice.wait_for_state(State.CONNECTED, timeout=15)
        acks = [await f for f in queued]
        assert all(a["ok"] for a in acks)

        expected = ["before", *bob_texts, *(f"alice {i}" for i in range(5))]
        for client in (alice, bob, eve):
            await client.wait_until(lambda c=client: len(c.received("general")) >= 26, 10)
            assert client.received("general") == expected
            seqs = [m["seq"] for m in client.messages["general"]]
            assert seqs == list(range(1, 27))
        stored = await server.store.history("general", since=0, limit=1000)
        assert [m.text for m in stored] == expected
    finally:
        for c in (bob, alice, eve):
            await c.close()
        await server.stop()


async def test_resending_after_a_lost_ack_is_stored_and_delivered_once(server: ChatServer) -> None:
    alice = ChatClient(server.url, "alice", "alice", options=FAST)
    bob = ChatClient(server.url, "bob", "bob", options=FAST)
    try:
        for c in (alice, bob):
            await c.connect()
            await c.join("general")
        first = await alice.send("general", "only once", client_msg_id="alice-fixed-1")
        again = await alice.send("general", "only once", client_msg_id="alice-fixed-1")
        assert again["duplicate"] and again["id"] == first["id"] and again["seq"] == first["seq"]
        marker = await bob.send("general", "marker")
        await bob.wait_until(lambda: bob.received("general")[-1:] == ["marker"])
        assert bob.received("general") == ["only once", "marker"]
        assert marker["seq"] == 2
    finally:
        await alice.close()
        await bob.close()
