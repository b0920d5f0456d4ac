"""What the cluster's back ends are doing, counted from outside: for the live diagram.

* [RedisWatch][tutorial.cluster.watch.RedisWatch] subscribes to python-socketio's
  channel (``socketio``) on every
  Redis node and counts the adapter messages each one carries. A replica carries them
  too: Redis replicates ``PUBLISH`` to its replicas, which hand it to their own
  subscribers. It also listens to every Sentinel's event channels (``+sdown``,
  ``+odown``, ``+switch-master`` ...), with the time each event was seen: the failover
  drill draws them.
* [database_state][tutorial.cluster.watch.database_state] asks every PostgreSQL server
  its role, its row count and
  (the primary, in ``pg_stat_replication``) how far each standby's replay lags.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tutorial.cluster.redis import RedisProcess, info

if TYPE_CHECKING:
    from tutorial.cluster.cluster import Cluster

#: python-socketio's default channel: every adapter message crosses it.
CHANNEL = "socketio"
#: The key of our own marker messages on the channel (never counted).
BARRIER = "tutorial-barrier"
#: Sentinel events worth drawing, in the order a failover produces them.
SENTINEL_EVENTS = (
    "+sdown",
    "+odown",
    "+try-failover",
    "+elected-leader",
    "+selected-slave",
    "+promoted-slave",
    "+switch-master",
    "+failover-end",
    "-sdown",
    "+convert-to-slave",
)


@dataclass(frozen=True)
class SentinelEvent:
    """One event a Sentinel published: when we saw it, who said it, what it said."""

    t: float  # time.monotonic()
    sentinel: str
    event: str
    detail: str


class RedisWatch:
    """Counts adapter messages per Redis node; records Sentinel events."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.counts: dict[str, int] = {}
        self.events: list[SentinelEvent] = []
        #: The last barrier each node has passed on (see
        #: [barrier][tutorial.cluster.watch.RedisWatch.barrier]).
        self.barriers: dict[str, int] = {}
        self._barrier = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: list[asyncio.Event] = []

    def nodes(self) -> list[RedisProcess]:
        if self.cluster.redis_ha is not None:
            return list(self.cluster.redis_ha.nodes)
        return [self.cluster.redis] if self.cluster.redis is not None else []

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe everywhere; returns once every subscription is in place."""
        for node in self.nodes():
            self.counts[node.name] = 0
            self._spawn(self._count(node))
        if self.cluster.redis_ha is not None:
            for sentinel in self.cluster.redis_ha.sentinels:
                self._spawn(self._listen(sentinel))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._ready)), timeout)

    def _spawn(self, work: Any) -> None:
        ready = asyncio.Event()
        self._ready.append(ready)
        self._tasks.append(asyncio.create_task(work(ready)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def barrier(self, timeout: float = 10.0) -> dict[str, int]:
        """Publish a marker on the channel (python-socketio ignores a message without a
        ``method``) and wait until every live node has handed it to us: everything
        published before it has then been counted everywhere. Returns the counts."""
        import redis.asyncio as aioredis

        nodes = self.nodes()
        if not nodes:
            return {}
        self._barrier += 1
        ha = self.cluster.redis_ha
        port = await asyncio.to_thread(ha.master_port) if ha is not None else nodes[0].port
        client = aioredis.Redis(port=port)
        try:
            await client.publish(CHANNEL, json.dumps({BARRIER: self._barrier}))
        finally:
            await client.aclose()
        deadline = time.monotonic() + timeout
        while True:
            live = [n.name for n in self.nodes() if n.alive]
            if all(self.barriers.get(name, 0) >= self._barrier for name in live):
                return dict(self.counts)
            if time.monotonic() > deadline:
                raise TimeoutError(f"barrier {self._barrier} not seen by {live}: {self.barriers}")
            await asyncio.sleep(0.01)

    def _count(self, node: RedisProcess) -> Any:
        async def run(ready: asyncio.Event) -> None:
            async for _, data in self._messages(node.port, ready, pattern=False):
                if data.startswith(f'{{"{BARRIER}"'):
                    self.barriers[node.name] = int(json.loads(data)[BARRIER])
                    continue
                self.counts[node.name] = self.counts.get(node.name, 0) + 1

        return run

    def _listen(self, sentinel: RedisProcess) -> Any:
        async def run(ready: asyncio.Event) -> None:
            async for channel, data in self._messages(sentinel.port, ready, pattern=True):
                if channel in SENTINEL_EVENTS:
                    self.events.append(
                        SentinelEvent(time.monotonic(), sentinel.name, channel, data)
                    )

        return run

    async def _messages(self, port: int, ready: asyncio.Event, *, pattern: bool) -> Any:
        """Messages on ``socketio`` (or every channel, ``pattern``), across restarts of
        the server on ``port``: a node that was killed is subscribed to again when it
        is back."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        while True:
            client = aioredis.Redis(port=port, socket_connect_timeout=1)
            pubsub = client.pubsub()
            try:
                if pattern:
                    await pubsub.psubscribe("*")
                else:
                    await pubsub.subscribe(CHANNEL)
                ready.set()
                async for message in pubsub.listen():
                    if message["type"] in ("message", "pmessage"):
                        channel = message["channel"].decode()
                        yield channel, message["data"].decode("utf-8", "replace")
            except (RedisError, OSError):
                await asyncio.sleep(0.2)  # the node is down: look again shortly
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    def state(self) -> dict[str, Any]:
        """Each node's role, adapter messages and replication offset; each Sentinel's
        view (runs blocking calls: use from a thread)."""
        ha = self.cluster.redis_ha
        nodes = []
        master_offset = None
        for node in self.nodes():
            entry: dict[str, Any] = {
                "name": node.name,
                "port": node.port,
                "alive": node.alive,
                "messages": self.counts.get(node.name, 0),
            }
            if node.alive:
                with contextlib.suppress(OSError, Exception):
                    replication = info(node.port, "replication")
                    entry["role"] = "master" if replication["role"] == "master" else "replica"
                    entry["offset"] = int(replication.get("master_repl_offset", 0))
                    if entry["role"] == "master":
                        master_offset = entry["offset"]
            entry.setdefault("role", "down")
            nodes.append(entry)
        for entry in nodes:
            if entry["role"] == "replica" and master_offset is not None:
                entry["lag_bytes"] = max(0, master_offset - entry.get("offset", 0))
        sentinels = []
        for sentinel in ha.sentinels if ha is not None else []:
            view: dict[str, Any] = {
                "name": sentinel.name,
                "port": sentinel.port,
                "alive": sentinel.alive,
            }
            with contextlib.suppress(OSError, Exception):
                where = sentinel.master()
                view["master_port"] = where[1] if where else None
                view["epoch"] = int(sentinel.state().get("config-epoch", 0))
            sentinels.append(view)
        failovers = sum(1 for e in self.events if e.event == "+switch-master")
        return {
            "mode": "sentinel" if ha is not None else "single",
            "url": self.cluster.redis_url,
            "nodes": nodes,
            "sentinels": sentinels,
            "switches_seen": failovers,
        }


async def database_state(cluster: Cluster) -> dict[str, Any]:
    """Role, rows and lag of every database server (or the one SQLite file)."""
    if cluster.postgres is None:
        rows = None
        if cluster.db_url and cluster.db_url.startswith("sqlite:///"):
            from tutorial.chat.store import open_store

            store = open_store(cluster.db_url)
            await store.open()
            try:
                rows = await store.count_messages()
            finally:
                await store.close()
        return {
            "kind": "sqlite",
            "nodes": [{"name": "sqlite", "role": "primary", "rows": rows, "alive": True}],
        }
    import asyncpg

    nodes: list[dict[str, Any]] = []
    lags: dict[str, Any] = {}
    for server in [cluster.postgres, *cluster.standbys]:
        entry: dict[str, Any] = {
            "name": server.name,
            "port": server.port,
            "alive": False,
            "role": "down",
        }
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError, Exception):
            con = await asyncpg.connect(server.url, timeout=2)
            try:
                standby = await con.fetchval("SELECT pg_is_in_recovery()")
                entry["alive"] = True
                entry["role"] = "replica" if standby else "primary"
                entry["rows"] = int(await con.fetchval("SELECT count(*) FROM messages"))
                if standby:
                    entry["replay"] = await con.fetchval("SELECT pg_get_wal_replay_pause_state()")
                else:
                    for row in await con.fetch(
                        "SELECT application_name, "
                        "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)::bigint AS lag "
                        "FROM pg_stat_replication"
                    ):
                        lags[row["application_name"]] = row["lag"]
            finally:
                await con.close()
        nodes.append(entry)
    for entry in nodes:
        if entry["role"] == "replica":
            entry["lag_bytes"] = lags.get(entry["name"])
    return {"kind": "postgres", "nodes": nodes}
