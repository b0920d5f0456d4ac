"""Chapter 2, seed diagram 2: the whole chat system, from a running cluster.

A real [Cluster][tutorial.cluster.cluster.Cluster] starts: nginx terminating TLS with
sticky sessions, three ``tutorial serve`` processes, one ``redis-server`` (the Redis
adapter: cross-server messaging) and one SQLite file (the database layer). ``clients``
teaching clients, named like the seed's browser, mobile and desktop clients
(``alice (browser)``, ``bob (mobile)``, ``charlie (desktop)``, then round again),
connect through nginx (one per server, round robin: nginx's sticky hash is asked which
source address lands where), join ``general`` and send one message each.

The picture is drawn from the run: each client → balancer edge carries the Socket.IO
packets it sent and received (counted by the wiretaps behind nginx), each balancer →
server edge the connections that server holds, the Redis box the adapter messages it
carried, the database the rows it stores. Chapter 6 runs the same cluster with Redis
replicas, Sentinels and PostgreSQL standbys ([tutorial.scenarios.cluster][]).
"""

from __future__ import annotations

import time
from typing import Any

from tutorial.chat import demo
from tutorial.cluster.cluster import Cluster
from tutorial.render.architecture import architecture_diagram
from tutorial.render.sequence import sequence_diagram
from tutorial.scenarios.base import ScenarioResult
from tutorial.scenarios.clusterstage import ROOM, ClusterStage, deterministic_trace
from tutorial.scenarios.clusterviews import relabel, topology
from tutorial.trace.model import Trace

KINDS = ("browser", "mobile", "desktop")
TITLE = "WebSocket Chat System"


async def run(clients: int = 3, *, servers: int = 3, deterministic: bool = False) -> ScenarioResult:
    """Run ``clients`` (1 to 7) chatting clients against a cluster of ``servers``."""
    if not 1 <= clients <= len(demo.USERS):
        raise ValueError(f"clients must be between 1 and {len(demo.USERS)}")
    if not 1 <= servers <= 5:
        raise ValueError("servers must be between 1 and 5")
    users = list(demo.USERS[:clients])
    kinds = {u: KINDS[i % len(KINDS)] for i, u in enumerate(users)}
    started = time.monotonic()
    cluster = Cluster(servers=servers, redis_replicas=0, taps=True)
    stage = ClusterStage(cluster, deterministic=deterministic)
    try:
        await stage.start()
        await stage.place(users)
        for user in users:
            await stage.connect(user)
        for user in users:
            await stage.send(user, f"hello from {user}'s {kinds[user]}")
        if cluster.redis_watch is not None:
            await cluster.redis_watch.barrier()
        snapshot = await cluster.snapshot()
        story = relabel(stage.story())
    finally:
        await stage.close()
        await cluster.stop()
    seconds = round(time.monotonic() - started, 3)
    counts = count_events(story)
    rows = snapshot["database"]["nodes"][0].get("rows") or 0
    figures: dict[str, Any] = {
        "clients": [{"id": u, "kind": kinds[u]} for u in users],
        "distribution": {u: stage.home[u] for u in users},
        "servers": [s["name"] for s in snapshot["servers"]],
        "events_sent": {u: counts.get((u, "up"), 0) for u in users},
        "events_received": {u: counts.get((u, "down"), 0) for u in users},
        "messages_in_room": rows,
        "stored_rows": rows,
        "redis_messages": snapshot["redis"]["nodes"][0]["messages"],
        "database": "SQLite file",
        "tls": True,
    }
    if deterministic:
        story = deterministic_trace(story)
    else:
        figures["seconds"] = seconds

    def draw(result: ScenarioResult) -> Any:
        shown = topology(
            snapshot, clients=[(u, kinds[u]) for u in users], deterministic=deterministic
        )
        edges = dict(shown.edges)
        for u in users:
            edges[(u, "balancer")] = (
                f"WebSocket over TLS\n↑{figures['events_sent'][u]} "
                f"↓{figures['events_received'][u]} packets"
            )
        from dataclasses import replace

        return architecture_diagram(replace(shown, edges=edges), title=TITLE)

    return ScenarioResult(
        "architecture",
        story,
        figures,
        layers="chat",
        title="Seed diagram 2: the chat system, through nginx, three servers, Redis",
        main=draw,
        extras={"sequence": lambda r: sequence_diagram(r.trace, layers="chat", title=r.title)},
        deterministic=deterministic,
        seconds=seconds,
    )


def count_events(trace: Trace) -> dict[tuple[str, str], int]:
    """Socket.IO packets per client, up (sent) and down (received), as the taps saw them."""
    kinds = {lf.id: lf.kind for lf in trace.lifelines}
    out: dict[tuple[str, str], int] = {}
    for e in trace.events:
        if e.layer.value != "sio" or e.is_self:
            continue
        if kinds.get(e.source) == "client":
            out[(e.source, "up")] = out.get((e.source, "up"), 0) + 1
        elif kinds.get(e.target) == "client":
            out[(e.target, "down")] = out.get((e.target, "down"), 0) + 1
    return out


__all__ = ["ROOM", "count_events", "run"]
