"""Chapter 6, seed diagram 6 whole: the running cluster, drawn from itself.

A real [Cluster][tutorial.cluster.cluster.Cluster] starts (nginx terminating TLS with
sticky sessions, three ``tutorial serve`` processes, Redis with a master, two replicas
and three Sentinels, PostgreSQL with a primary and two streaming standbys), with a
[TlsTap][tutorial.trace.tlstap.TlsTap] in front of nginx (the Internet side: TLS
records, ciphertext) and a wiretap behind it for each server (plain Engine.IO). Three
clients connect through all of it, one per server, join ``general``; alice says hello.

What the result draws:

* ``diagram()``: seed diagram 6 from the live cluster: Internet → the balancer (TLS,
  sticky, connections per server) → servers with their ports → the Redis cluster
  (master, replicas, Sentinels, with the adapter messages each one carried) → the
  database cluster (primary for writes, standbys for reads, rows and replication lag);
* ``extra_diagrams()["balancer"]``: alice's message as a sequence diagram with nginx as
  a lifeline: ciphertext in front of it, plain Engine.IO behind it;
* ``["redis-failover"]``: ``kill -9`` the Redis master: the Sentinels promote a replica,
  a message sent meanwhile misses the other servers, the next one shows the gap, and
  the client repairs it from the store;
* ``["database-failover"]``: stop the primary: ``store_unavailable``, the outbox holds
  the message; a standby is promoted; the message is acknowledged.

The load versions of these failovers, with the wire checker, are
[tutorial.cluster.drills][].
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from tutorial.client.recovery import Backoff
from tutorial.cluster.cluster import Cluster
from tutorial.render.sequence import sequence_diagram
from tutorial.scenarios.base import ScenarioResult
from tutorial.scenarios.clusterstage import (
    ROOM,
    WAIT,
    ClusterStage,
    deterministic_trace,
    until,
)
from tutorial.scenarios.clusterviews import balancer_trace, draw_architecture, relabel
from tutorial.trace.model import Trace

TEXT = "Hello!"
NO_MASTER = "no master yet"
NO_PRIMARY = "primary down"

# -- the scenario ---------------------------------------------------------------------------


async def run(
    servers: int = 3,
    clients: int = 3,
    *,
    failovers: bool = True,
    deterministic: bool = False,
    cluster: Cluster | None = None,
) -> ScenarioResult:
    """Seed diagram 6 on a real cluster; with ``failovers``, the two failover stories
    too (they change the cluster: run them on a cluster of their own)."""
    from tutorial.chat import demo

    users = list(demo.USERS[:clients])
    own = cluster is None
    cluster = cluster or Cluster(servers=servers, postgres=True, taps=True, fail_timeout=30)
    started = time.monotonic()
    stage = ClusterStage(cluster, deterministic=deterministic)
    extras: dict[str, Any] = {}
    try:
        await stage.start()
        await stage.place(users)
        for user in users:
            await stage.connect(user)
        await stage.send(users[0], TEXT)
        await settle(cluster)
        snapshot = await cluster.snapshot()
        # Two clients on two servers tell it; a third would only widen the picture.
        balancer = balancer_trace(
            stage, len(stage.windows) - 1, deterministic=deterministic, people=users[:2]
        )
        story = relabel(stage.story())
        if failovers:
            extras["redis-failover"] = await redis_failover_story(stage, users)
            extras["database-failover"] = await database_failover_story(stage, users)
    finally:
        await stage.close()
        if own:
            await cluster.stop()
    seconds = round(time.monotonic() - started, 3)
    figures = figures_of(snapshot, users, stage.home)
    if deterministic:
        story = deterministic_trace(story)
        balancer = deterministic_trace(balancer)
        extras = {k: deterministic_trace(v) for k, v in extras.items()}
    else:
        figures["seconds"] = seconds
    title = f"Seed diagram 6, running: {servers} servers behind nginx"
    drawn = {
        "architecture": lambda r: draw_architecture(
            snapshot, deterministic=deterministic, title=title
        ),
        "balancer": lambda r: sequence_diagram(
            balancer,
            layers=None,
            title="alice's message through the balancer: ciphertext in front, Engine.IO behind",
        ),
    }
    for name, trace in extras.items():
        drawn[name] = _drill_drawer(name, trace)
    return ScenarioResult(
        "cluster",
        story,
        figures,
        layers="chat",
        title=title,
        main=drawn.pop("architecture"),
        extras=drawn,
        deterministic=deterministic,
        seconds=seconds,
    )


DRILL_TITLES = {
    "redis-failover": "kill -9 the Redis master: Sentinels promote a replica; the gap is repaired",
    "database-failover": "the primary stops: store_unavailable, outbox, promotion, ack",
}


def _drill_drawer(name: str, trace: Trace) -> Any:
    return lambda r: sequence_diagram(trace, layers="chat", title=DRILL_TITLES[name])


def figures_of(
    snapshot: dict[str, Any], users: Sequence[str], home: dict[str, str]
) -> dict[str, Any]:
    redis = snapshot.get("redis") or {}
    database = snapshot["database"]
    return {
        "distribution": {u: home[u] for u in users},
        "tls": bool(snapshot["balancer"].get("tls")),
        "connections": {s["name"]: s["connections"] for s in snapshot["servers"]},
        "redis_messages": {n["name"]: n["messages"] for n in redis.get("nodes", [])},
        "redis_roles": {n["name"]: n.get("role") for n in redis.get("nodes", [])},
        "sentinels": len(redis.get("sentinels", [])),
        "database_rows": {n["name"]: n.get("rows") for n in database["nodes"]},
        "replication_lag_bytes": {
            n["name"]: n.get("lag_bytes") for n in database["nodes"] if "lag_bytes" in n
        },
    }


async def settle(cluster: Cluster, timeout: float = WAIT) -> None:
    """Until the back ends agree: every live Redis node carried the master's count of
    adapter messages, and every standby replayed all of the primary's WAL."""
    if cluster.redis_watch is not None:
        await cluster.redis_watch.barrier(timeout)
    deadline = time.monotonic() + timeout
    while True:
        snapshot = await cluster.snapshot()
        nodes = [n for n in (snapshot.get("redis") or {}).get("nodes", []) if n.get("alive")]
        counts = {n["messages"] for n in nodes}
        lags = [n.get("lag_bytes") for n in snapshot["database"]["nodes"] if n["role"] == "replica"]
        redis_lag = [n.get("lag_bytes", 0) for n in nodes if n.get("role") == "replica"]
        if len(counts) <= 1 and all(lag == 0 for lag in lags) and all(x == 0 for x in redis_lag):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the back ends did not settle: {counts}, lag {lags}")
        await asyncio.sleep(0.05)


# -- the failover stories ---------------------------------------------------------------


async def redis_failover_story(stage: ClusterStage, users: Sequence[str]) -> Trace:
    """alice and bob on two servers; ``kill -9`` the master; alice's next message is
    acked but misses bob; the Sentinels promote a replica; once every server has
    re-subscribed, alice's following message reaches bob, who sees the gap and repairs
    it from the store."""
    cluster = stage.cluster
    assert cluster.redis_ha is not None
    alice, bob = users[0], users[1]
    first = len(stage.windows)
    master = cluster.redis_ha.master()
    stage.note("redis", f"kill -9 {master.name}, the master")
    cluster.kill_redis_master()
    await stage.send(alice, NO_MASTER, reach=[alice])
    await cluster.wait_redis_failover()
    stage.note("sentinels", "+odown: master down")
    stage.note("sentinels", "+switch-master: replica promoted")
    await wait_resubscribed(cluster, len(cluster.servers))
    stage.note("redis", "servers re-subscribed")
    client = stage.clients[bob]
    await stage.send(alice, "after failover")
    async with stage.window(bob, "repair"):
        await client.wait_until(lambda: NO_MASTER in client.received(ROOM), WAIT)
    await cluster.rejoin_redis(master)
    return _part(stage, first, {alice, bob})


async def wait_resubscribed(cluster: Cluster, servers: int, timeout: float = 30.0) -> None:
    """Until the master has ``servers`` subscribers on python-socketio's channel (the
    RedisWatch's own subscription is the one more)."""
    from tutorial.cluster.redis import command

    assert cluster.redis_ha is not None
    deadline = time.monotonic() + timeout
    while True:
        port = cluster.redis_ha.master_port()
        with contextlib.suppress(OSError, Exception):
            _, count = await asyncio.to_thread(command, port, "PUBSUB", "NUMSUB", "socketio")
            if int(count) >= servers + 1:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the servers did not re-subscribe to the new master")
        await asyncio.sleep(0.05)


async def database_failover_story(stage: ClusterStage, users: Sequence[str]) -> Trace:
    """alice's message while the primary is down: ``store_unavailable``, held in her
    outbox; the documented promotion; her retry is acknowledged and reaches bob."""
    cluster = stage.cluster
    alice, bob = users[0], users[1]
    first = len(stage.windows)
    client = stage.clients[alice]
    # A retry that waits longer than a promotion takes: one refusal, then the ack.
    client.options.backoff = Backoff(base=1.5, factor=1.0, cap=1.5, jitter=0.0)
    stage.note("database", "pg_ctl stop: primary")
    await cluster.stop_database()
    errors = len(client.errors)
    async with stage.window(alice, "refused"):
        pending = client.send(ROOM, NO_PRIMARY, client_msg_id=stage.next_msg_id(alice))
        await client.wait_until(lambda: len(client.errors) > errors, WAIT)
    standby = cluster.standbys[0]
    stage.note("database", f"pg_ctl promote {standby.name}")
    await cluster.promote_replica(0)
    async with stage.window(alice, "retry"):
        await asyncio.wait_for(pending, WAIT)
        for name in (alice, bob):
            other = stage.clients[name]
            await until(other, lambda o: NO_PRIMARY in o.received(ROOM))
    return _part(stage, first, {alice, bob})


#: Presence events are not these stories' subject. The drills check presence instead:
#: nobody may be announced gone around a failover
#: ([check_presence][tutorial.cluster.ledger.check_presence]).
PRESENCE = ("user-joined", "user-left", "typing-start", "typing-stop")


def _part(stage: ClusterStage, first: int, people: set[str]) -> Trace:
    """The story from window ``first`` on: chat events between ``people`` and their
    servers, presence left out."""
    story = stage.story(first)
    events = [
        e
        for e in story.events
        if (e.is_self or e.source in people or e.target in people)
        and e.fields.get("event") not in PRESENCE
    ]
    return relabel(Trace(story.lifelines, events), before=stage.story(0, first))
