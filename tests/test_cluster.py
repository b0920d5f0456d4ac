"""Seed diagram 6 for real: nginx (TLS) → three ``tutorial serve`` processes → redis-server.

* with the Redis manager, a message sent on server 1 reaches clients on servers 2 and 3;
* without it, it does not (checked after a later marker on the receiver's own server);
* HTTP long-polling through round-robin nginx breaks (python-engineio answers
  400 "Invalid session" to a request that lands on another server); sticky sessions
  (``hash $remote_addr``) fix it; WebSocket-only clients work either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from rawclient import Recorder

from tutorial.client.client import ChatClient
from tutorial.cluster.cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(60)]

USERS = ("alice", "bob", "charlie", "diana", "eve", "frank", "grace")


@pytest.fixture
async def recorders() -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    try:
        yield made
    finally:
        for rec in made:
            await rec.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[ChatClient]]:
    made: list[ChatClient] = []
    try:
        yield made
    finally:
        for client in made:
            await client.close()


async def on_each_server(cluster: Cluster, made: list[Recorder]) -> list[Recorder]:
    """alice on server-1, bob on server-2, charlie on server-3, all in ``general``."""
    recs = []
    for server, user in zip(cluster.servers, USERS, strict=False):
        rec = Recorder(server.url, user)
        made.append(rec)
        await rec.login(user, rooms=("general",))
        recs.append(rec)
    return recs


async def test_redis_carries_messages_across_servers(recorders: list[Recorder]) -> None:
    async with Cluster(servers=3, redis=True, redis_replicas=0) as cluster:
        alice, bob, charlie = await on_each_server(cluster, recorders)
        assert await cluster.distribution() == {
            "alice": "server-1",
            "bob": "server-2",
            "charlie": "server-3",
        }
        sent = await alice.say("general", "hello from server-1")
        for rec in (bob, charlie):
            got = await rec.next("new-message", match=lambda d: d["id"] == sent["id"])
            assert got["text"] == "hello from server-1" and got["user"] == "alice"


async def test_without_redis_other_servers_miss_it(recorders: list[Recorder]) -> None:
    async with Cluster(servers=3, redis=False) as cluster:
        alice, bob, charlie = await on_each_server(cluster, recorders)
        sent = await alice.say("general", "only server-1 hears this")
        # A later marker on each receiver's own server: once it is in, the earlier
        # message would have been too (one connection keeps its order).
        for rec in (bob, charlie):
            marker = await rec.say("general", f"marker from {rec.name}")
            ids = [m["id"] for m in rec.received("new-message")]
            assert marker["id"] in ids and sent["id"] not in ids
        # The message is stored all the same: a reconnection's replay would repair it.
        assert sent["seq"] < marker["seq"]


async def _polling_statuses(cluster: Cluster, requests: int = 6) -> list[tuple[int, str]]:
    """Open an Engine.IO polling session, then POST pongs on it: (status, body) each."""
    url = cluster.url
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as response:
            assert response.status == 200
            opening = await response.text()
        assert opening.startswith("0"), opening
        sid = json.loads(opening[1:])["sid"]
        results = []
        for _ in range(requests):
            async with http.post(
                f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"3"
            ) as response:
                results.append((response.status, await response.text()))
        return results


async def test_polling_needs_sticky_sessions() -> None:
    async with Cluster(servers=3, redis=True, sticky=False, redis_replicas=0) as cluster:
        results = await _polling_statuses(cluster)
        bad = [body for status, body in results if status == 400]
        assert bad, results
        assert all("Invalid session" in body for body in bad)
        assert any(status == 200 for status, _ in results), results
    async with Cluster(servers=3, redis=True, sticky=True, redis_replicas=0) as cluster:
        results = await _polling_statuses(cluster)
        assert all(status == 200 for status, _ in results), results


async def test_sticky_polling_chat_through_nginx(clients: list[ChatClient]) -> None:
    async with Cluster(servers=3, redis=True, sticky=True, redis_replicas=0) as cluster:
        for i, user in enumerate(USERS):
            options = cluster.client_options(i, transports=("polling",))
            client = ChatClient(cluster.url, user, user, options=options)
            clients.append(client)
            await client.connect()
            await client.join("general")
        spread = await cluster.distribution()
        assert set(spread) == set(USERS)
        assert len(set(spread.values())) >= 2, spread  # distinct source addresses spread
        await clients[0].send("general", "polling, sticky, across servers")
        for client in clients:
            await client.wait_until(
                lambda c=client: "polling, sticky, across servers" in c.received("general"), 10
            )


async def test_websocket_works_without_sticky(clients: list[ChatClient]) -> None:
    async with Cluster(servers=3, redis=True, sticky=False, redis_replicas=0) as cluster:
        for user in USERS[:3]:
            # all from 127.0.0.1, round-robin
            client = ChatClient(cluster.url, user, user, options=cluster.client_options())
            clients.append(client)
            await client.connect()
            await client.join("general")
        assert len(set((await cluster.distribution()).values())) >= 2
        for client in clients:
            await client.send("general", f"hi from {client.name}")
        expected = {f"hi from {c.name}" for c in clients}
        for client in clients:
            await client.wait_until(lambda c=client: expected <= set(c.received("general")), 10)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stop_leaves_no_process_and_no_file() -> None:
    cluster = Cluster(servers=2, redis=True)  # TLS, Redis master + 2 replicas + 3 Sentinels
    await cluster.start()
    assert cluster.redis_ha is not None and cluster.nginx is not None
    redis = [*cluster.redis_ha.nodes, *cluster.redis_ha.sentinels]
    pids = [s.pid for s in cluster.servers] + [r.pid for r in redis] + [cluster.nginx.pid]
    dirs = [cluster.dir, cluster.nginx.dir, *(r.dir for r in redis)]
    assert cluster.nginx.dir is not None
    key = cluster.nginx.dir / "tls" / "server.key"  # the throwaway key: owner-only, then gone
    assert key.stat().st_mode & 0o777 == 0o600
    assert all(_alive(pid) for pid in pids)
    assert (await cluster.health()) == {"server-1": True, "server-2": True}
    await cluster.stop()
    assert not any(_alive(pid) for pid in pids)
    assert not any(d is not None and d.exists() for d in dirs)
    # A start that fails half-way (a store URL no server accepts) cleans up too.
    failing = Cluster(servers=1, redis=True, redis_replicas=0, db_url="mysql://nowhere")
    with pytest.raises(RuntimeError, match="exited during start"):
        await failing.start()
    assert failing.redis is None and failing.nginx is None and failing.dir is None
    assert not any(_alive(s.pid) for s in failing.servers)


def test_a_process_that_ends_without_stop_takes_its_cluster_with_it(tmp_path: Path) -> None:
    """A notebook kernel shut down before its teardown cell ran: every part runs in a
    session of its own, so without the exit hook they would all outlive it."""
    script = tmp_path / "forget.py"
    script.write_text(
        "import asyncio, json\n"
        "from tutorial.cluster.cluster import Cluster\n"
        "async def main():\n"
        "    c = Cluster(servers=1, redis_replicas=0)\n"
        "    await c.start()\n"
        "    pids = [s.pid for s in c.servers] + [c.redis.pid, c.nginx.pid]\n"
        "    print(json.dumps({'pids': pids, 'dirs': [str(c.dir), str(c.nginx.dir)]}))\n"
        "asyncio.run(main())  # no stop()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    left = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(isinstance(pid, int) for pid in left["pids"])
    assert [pid for pid in left["pids"] if _alive(pid)] == []
    assert [d for d in left["dirs"] if Path(d).exists()] == []
    assert "Traceback" not in done.stderr, done.stderr
