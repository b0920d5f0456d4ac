"""Cluster-wide presence around a Redis failover: nobody is announced gone who is here.

Each server keeps a heartbeat key with a time to live; a server whose key has expired
is taken for dead and its users are announced ``user-left``. During a Redis failover
no server can write: the master is gone until a Sentinel promotes a replica, and the
servers then find the new master one by one. If that takes longer than the time to
live, the promoted replica expires every heartbeat at once, and the first server back
used to reap all the others: ``user-left`` for users who never left (seen in the Redis
failover drill).

These tests drive two servers' presence on one real redis-server by hand, beat by
beat, on a clock of their own (no sleeps): an expired key is made by deleting it, which
is what the promoted replica does to a key whose time ran out while nobody wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tutorial.chat.presence import RedisPresence
from tutorial.cluster.redis import RedisProcess

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(60)]

ROOM = "general"


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """One server's presence, with what it announced."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.left: list[tuple[str, str]] = []
        self.presence = RedisPresence(url, announce_left=self._announce, clock=clock)
        self.presence.HEARTBEAT = 3600.0  # the test beats by hand

    async def _announce(self, room: str, user: str) -> None:
        self.left.append((room, user))

    async def hold(self, user: str, sid: str) -> None:
        self.presence.add(ROOM, user, sid)
        assert await self.presence.joined(ROOM, user)

    async def alive_key_gone(self) -> None:
        await self.presence.redis.delete(self.presence._alive_key())


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as process:
        yield process


@pytest.fixture
async def servers(redis: RedisProcess) -> AsyncIterator[tuple[Server, Server, Clock]]:
    clock = Clock()
    one, two = Server(redis.url, clock), Server(redis.url, clock)
    try:
        await one.presence.start()
        await two.presence.start()
        await one.hold("alice", "sid-a")
        await two.hold("bob", "sid-b")
        yield one, two, clock
    finally:
        await one.presence.stop()
        await two.presence.stop()


async def beat_for(seconds: float, clock: Clock, *servers: Server) -> None:
    """Every server beats every ``HEARTBEAT_EVERY`` seconds for ``seconds``."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += HEARTBEAT_EVERY
        for server in servers:
            await server.presence.beat()


HEARTBEAT_EVERY = 2.0  # RedisPresence.HEARTBEAT in a real server


async def test_a_failover_longer_than_the_heartbeat_announces_nobody_gone(
    servers: tuple[Server, Server, Clock],
) -> None:
    one, two, clock = servers
    await beat_for(RedisPresence.TTL * 2, clock, one, two)  # a cluster long in contact

    # The master dies; for 8 s nobody can write; the promoted replica has expired both
    # heartbeats. Server one finds the new master first, server two half a second later.
    await one.alive_key_gone()
    await two.alive_key_gone()
    clock.now += 8.0
    await one.presence.beat()
    clock.now += 0.5
    await two.presence.beat()
    await beat_for(RedisPresence.TTL * 2, clock, one, two)

    assert one.left == [] and two.left == []
    assert await one.presence.members(ROOM) == ["alice", "bob"]
    assert await two.presence.members(ROOM) == ["alice", "bob"]


async def test_a_server_that_stops_beating_is_still_reaped(
    servers: tuple[Server, Server, Clock],
) -> None:
    one, two, clock = servers
    await beat_for(RedisPresence.TTL * 2, clock, one, two)

    # Server two is killed: its key runs out while server one stays in contact.
    await two.alive_key_gone()
    await beat_for(HEARTBEAT_EVERY, clock, one)

    assert one.left == [(ROOM, "bob")]
    assert await one.presence.members(ROOM) == ["alice"]


async def test_a_server_killed_during_the_failover_is_reaped_once_the_others_are_back(
    servers: tuple[Server, Server, Clock],
) -> None:
    one, two, clock = servers
    await beat_for(RedisPresence.TTL * 2, clock, one, two)

    # Both keys expire in the failover, and server two never comes back.
    await one.alive_key_gone()
    await two.alive_key_gone()
    clock.now += 8.0
    await one.presence.beat()
    await beat_for(RedisPresence.TTL + HEARTBEAT_EVERY, clock, one)

    assert one.left == [(ROOM, "bob")]
    assert await one.presence.members(ROOM) == ["alice"]
