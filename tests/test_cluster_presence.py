"""Presence across a cluster: two ``tutorial serve`` processes sharing Redis.

* ``room-joined.members`` lists the room's members on every server, not only the
  joiner's own (before: 3 of 9 seen in a 3-server cluster);
* a user with connections on two servers is announced once and leaves once;
* a server killed with ``kill -9`` leaves no ghost: another server takes its presence
  back after the heartbeat expires and announces who left with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from rawclient import Recorder

from tutorial.chat.presence import RedisPresence
from tutorial.cluster.cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(90)]

ROOM = "general"


@pytest.fixture
async def recorders() -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    try:
        yield made
    finally:
        for rec in made:
            await rec.close()


def presence_events(rec: Recorder) -> list[tuple[str, str]]:
    return [(e, d["user"]) for e, d in rec.log if e in ("user-joined", "user-left")]


async def test_members_and_presence_span_the_servers(recorders: list[Recorder]) -> None:
    async with Cluster(servers=2, redis=True) as cluster:
        one, two = (s.url for s in cluster.servers)

        def client(url: str, name: str) -> Recorder:
            rec = Recorder(url, name)
            recorders.append(rec)
            return rec

        alice = client(one, "alice")
        await alice.login("alice", rooms=(ROOM,))
        bob = client(two, "bob")
        await bob.login("bob")
        joined = await bob.join(ROOM)
        assert joined["members"] == ["alice", "bob"]  # alice is on the other server

        # alice opens a second connection, on bob's server: the room hears nothing.
        alice_two = client(two, "alice-2")
        await alice_two.login("alice", rooms=(ROOM,))
        await alice.close()  # her first connection goes: she is still here
        await bob.say(ROOM, "marker 1")
        assert presence_events(bob) == []
        charlie = client(one, "charlie")
        await charlie.login("charlie")
        assert (await charlie.join(ROOM))["members"] == ["alice", "bob", "charlie"]
        assert await bob.next("user-joined") == {"roomId": ROOM, "user": "charlie"}

        await alice_two.close()  # her last connection: now she leaves, once
        assert await bob.next("user-left") == {"roomId": ROOM, "user": "alice"}
        assert await charlie.next("user-left") == {"roomId": ROOM, "user": "alice"}
        await bob.say(ROOM, "marker 2")
        assert presence_events(bob) == [("user-joined", "charlie"), ("user-left", "alice")]


async def test_a_killed_server_leaves_no_ghost_members(recorders: list[Recorder]) -> None:
    async with Cluster(servers=2, redis=True) as cluster:
        one, two = (s.url for s in cluster.servers)
        diana = Recorder(one, "diana")
        bob = Recorder(two, "bob")
        recorders += [diana, bob]
        await diana.login("diana", rooms=(ROOM,))
        await bob.login("bob")
        assert (await bob.join(ROOM))["members"] == ["bob", "diana"]
        killed = time.monotonic()
        cluster.kill(0)
        # server-2 notices server-1's heartbeat gone and announces who left with it.
        left = await bob.next("user-left", timeout=RedisPresence.TTL + 10)
        assert left == {"roomId": ROOM, "user": "diana"}
        assert time.monotonic() - killed < RedisPresence.TTL + 2 * RedisPresence.HEARTBEAT + 5
        eve = Recorder(two, "eve")
        recorders.append(eve)
        await eve.login("eve")
        assert (await eve.join(ROOM))["members"] == ["bob", "eve"]


def test_presence_reaches_redis_through_sentinel_urls_too() -> None:
    # The same URL forms python-socketio's Redis manager takes (no connection is made).
    from redis.asyncio import Redis

    from tutorial.chat.presence import connect_redis

    plain = connect_redis("redis://127.0.0.1:6399/0")
    assert isinstance(plain, Redis)
    sentinel = connect_redis("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/0/chat")
    assert isinstance(sentinel, Redis)
    assert sentinel.connection_pool.service_name == "chat"
