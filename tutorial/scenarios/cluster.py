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
import itertools
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
    return lambda r: draw_drill(name, trace)


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


async def redis_failover_story(
    stage: ClusterStage, users: Sequence[str], suffix: str = ""
) -> Trace:
    """alice and bob on two servers; ``kill -9`` the master; alice's next message is
    acked but misses bob; the Sentinels promote a replica; once every server has
    re-subscribed, alice's following message reaches bob, who sees the gap and repairs
    it from the store. ``suffix`` makes the messages' texts new in a room that already
    holds an earlier drill's."""
    cluster = stage.cluster
    assert cluster.redis_ha is not None
    alice, bob = users[0], users[1]
    lost, after = f"{NO_MASTER}{suffix}", f"after failover{suffix}"
    first = len(stage.windows)
    master = cluster.redis_ha.master()
    # python-socketio subscribes when a server's first client connects: count them.
    subscribers = await asyncio.to_thread(channel_subscribers, master.port)
    stage.note("redis", f"kill -9 {master.name}, the master")
    cluster.kill_redis_master()
    await stage.send(alice, lost, reach=[alice])
    await cluster.wait_redis_failover()
    stage.note("sentinels", "+odown: master down")
    stage.note("sentinels", "+switch-master: replica promoted")
    await wait_resubscribed(cluster, subscribers)
    stage.note("redis", "servers re-subscribed")
    client = stage.clients[bob]
    await stage.send(alice, after)
    async with stage.window(bob, "repair"):
        await client.wait_until(lambda: lost in client.received(ROOM), WAIT)
    await cluster.rejoin_redis(master)
    return _part(stage, first, {alice, bob})


def channel_subscribers(port: int) -> int:
    """Subscribers of python-socketio's channel on the Redis node on ``port`` (the
    servers that have had a client, and the cluster's RedisWatch)."""
    from tutorial.cluster.redis import command

    _, count = command(port, "PUBSUB", "NUMSUB", "socketio")
    return int(count)


async def wait_resubscribed(cluster: Cluster, subscribers: int, timeout: float = 30.0) -> None:
    """Until the master has ``subscribers`` on python-socketio's channel again (as many
    as the old master had before it was killed)."""
    assert cluster.redis_ha is not None
    deadline = time.monotonic() + timeout
    while True:
        port = cluster.redis_ha.master_port()
        with contextlib.suppress(OSError, Exception):
            if await asyncio.to_thread(channel_subscribers, port) >= subscribers:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the servers did not re-subscribe to the new master")
        await asyncio.sleep(0.05)


async def database_failover_story(
    stage: ClusterStage, users: Sequence[str], suffix: str = ""
) -> Trace:
    """alice's message while the primary is down: ``store_unavailable``, held in her
    outbox; the documented promotion of a standby; her retry is acknowledged and
    reaches bob. ``suffix`` as for the Redis story."""
    cluster = stage.cluster
    alice, bob = users[0], users[1]
    held = f"{NO_PRIMARY}{suffix}"
    index = await asyncio.to_thread(promotable, cluster)
    if index is None:
        raise DrillUnavailable(NO_STANDBY)
    first = len(stage.windows)
    client = stage.clients[alice]
    # A retry that waits longer than a promotion takes: one refusal, then the ack.
    client.options.backoff = Backoff(base=1.5, factor=1.0, cap=1.5, jitter=0.0)
    stage.note("database", "pg_ctl stop: primary")
    await cluster.stop_database()
    errors = len(client.errors)
    async with stage.window(alice, "refused"):
        pending = client.send(ROOM, held, client_msg_id=stage.next_msg_id(alice))
        await client.wait_until(lambda: len(client.errors) > errors, WAIT)
    standby = cluster.standbys[index]
    stage.note("database", f"pg_ctl promote {standby.name}")
    await cluster.promote_replica(index)
    async with stage.window(alice, "retry"):
        await asyncio.wait_for(pending, WAIT)
        for name in (alice, bob):
            other = stage.clients[name]
            await until(other, lambda o: held in o.received(ROOM))
    return _part(stage, first, {alice, bob})


# -- the failover stories as drills a learner starts (a button in chapter 6) ----------------


class DrillUnavailable(RuntimeError):
    """The cluster cannot run this drill now; the message says why and what to do."""


NO_STANDBY = (
    "no standby is left to promote (earlier drills promoted them): run the teardown "
    "cell, then press again, for a fresh cluster"
)

#: The drills, by name: the story each tells.
DRILLS = {"redis-failover": redis_failover_story, "database-failover": database_failover_story}

_drill_runs = itertools.count(1)


def promotable(cluster: Cluster) -> int | None:
    """The index of a running standby that is not the primary: the one a database
    failover promotes (None: none left)."""
    for i, standby in enumerate(cluster.standbys):
        if standby is not cluster.primary and standby.running:
            return i
    return None


def drill_blocker(cluster: Cluster, name: str) -> str | None:
    """Why ``cluster`` cannot run drill ``name`` (None: it can). A stopped cluster can:
    [run_drill][tutorial.scenarios.cluster.run_drill] starts it."""
    if name not in DRILLS:
        return f"no drill named {name!r} (there are {', '.join(DRILLS)})"
    if not cluster.use_taps:
        return "the drills need a cluster started with taps=True (they read the wire)"
    if name == "redis-failover" and cluster.redis_replicas < 1:
        return "this cluster runs one plain redis-server: no replica to promote, no Sentinel"
    if name == "database-failover" and (not cluster.use_postgres or cluster.pg_replicas < 1):
        return "this cluster has no PostgreSQL standby to promote (postgres=True, pg_replicas>=1)"
    if cluster.nginx is not None and sum(s.alive for s in cluster.servers) < 2:
        return (
            "the drill needs two live servers: one was killed above (kill -9); run the "
            "teardown cell, then press again, for a fresh cluster"
        )
    return None


async def run_drill(cluster: Cluster, name: str) -> Trace:
    """Drill ``name`` (``redis-failover`` or ``database-failover``) on ``cluster``, for
    real: alice and bob join ``general`` on two live servers, then the story runs; the
    result is its trace, as the scenario draws it. A stopped cluster (its teardown ran)
    is started for the drill and stopped after it. Raises
    [DrillUnavailable][tutorial.scenarios.cluster.DrillUnavailable] when the cluster
    cannot run it (see [drill_blocker][tutorial.scenarios.cluster.drill_blocker])."""
    from tutorial.chat import demo

    why = drill_blocker(cluster, name)
    if why is not None:
        raise DrillUnavailable(why)
    users = list(demo.USERS[:2])
    own = cluster.nginx is None
    stage = ClusterStage(cluster)
    try:
        await stage.start()
        if name == "database-failover" and await asyncio.to_thread(promotable, cluster) is None:
            raise DrillUnavailable(NO_STANDBY)
        await stage.place(users, servers=[s.name for s in cluster.servers if s.alive])
        for user in users:
            await stage.connect(user)
        # New texts each time: the room's history already holds an earlier drill's.
        suffix = f" #{next(_drill_runs)}"
        await stage.send(users[0], f"{TEXT}{suffix}")  # bob knows a seq before the story
        return await DRILLS[name](stage, users, suffix=suffix)
    finally:
        await stage.close()
        if own:
            await cluster.stop()


def draw_drill(name: str, trace: Trace) -> Any:
    """A drill's sequence diagram (chat events)."""
    return sequence_diagram(trace, layers="chat", title=DRILL_TITLES[name])


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
