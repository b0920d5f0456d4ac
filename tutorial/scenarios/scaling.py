"""Chapter 6, seed diagram 6: scaling out. For now: what runs on one server.

The multi-server version (nginx with sticky sessions, N teaching servers, Redis for
cross-server broadcasts) comes with :mod:`tutorial.cluster`. Until then this scenario
runs the same workload against the one server that exists, measures it, and says so
in ``figures["note"]``; its ``run`` signature is the one the cluster version will keep
(``clients``, ``messages``, ``servers``), so a notebook written against it keeps working.
"""

from __future__ import annotations

import time
from typing import Any

from tutorial.chat import demo
from tutorial.chat.server import ChatServer
from tutorial.render.architecture import ClientNode, ServerNode, Topology, architecture_diagram
from tutorial.scenarios.base import ScenarioResult, Stage

ROOM = "general"
NOTE = (
    "One server only: the multi-server version (nginx with sticky sessions, "
    "several servers, Redis) comes with tutorial.cluster."
)
KINDS = ("browser", "mobile", "desktop")


async def run(
    clients: int = 4,
    messages: int = 3,
    servers: int = 1,
    *,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """``clients`` users each send ``messages`` messages to one room; count deliveries."""
    if not 1 <= clients <= len(demo.USERS):
        raise ValueError(f"clients must be between 1 and {len(demo.USERS)}")
    users = demo.USERS[:clients]
    lifelines = [(u, u, "client") for u in users] + [("server", "Server 1", "server")]
    async with Stage(
        "scaling", deterministic=deterministic, server=server, lifelines=lifelines
    ) as stage:
        chat = [await stage.client(u) for u in users]
        for client in chat:
            await stage.join(client, ROOM)
        started = time.monotonic()
        for n in range(1, messages + 1):
            for client in chat:
                await stage.send(client, ROOM, f"{client.name} #{n}")
        elapsed = time.monotonic() - started
        assert stage.server is not None
        stored = await stage.server.store.count_messages()
        deliveries = sum(len(c.received(ROOM)) for c in chat)
        figures: dict[str, Any] = {
            "note": NOTE,
            "servers_requested": servers,
            "servers_running": 1,
            "clients": list(users),
            "messages_sent": messages * clients,
            "deliveries": deliveries,
            "stored_rows": stored,
        }
        if not deterministic:
            figures["seconds"] = round(elapsed, 3)
            figures["deliveries_per_second"] = round(deliveries / max(elapsed, 1e-6), 1)
        return stage.result(
            figures=figures,
            main=draw,
            layers="chat",
            title="Seed diagram 6: scaling (one server for now)",
        )


def draw(result: ScenarioResult) -> Any:
    f = result.figures
    clients = [ClientNode(u, u, KINDS[i % len(KINDS)]) for i, u in enumerate(f["clients"])]
    edges: dict[tuple[str, str], str] = {
        (u, "server1"): f"{f['messages_sent'] // len(clients)} messages sent" for u in f["clients"]
    }
    edges[("server1", "database")] = f"{f['stored_rows']} rows"
    topology = Topology(
        clients=clients,
        servers=[ServerNode("server1", "Server 1 (Python)")],
        database="SQLite file",
        edges=edges,
    )
    g = architecture_diagram(topology, title="Scaling: one server (cluster: tutorial.cluster)")
    g.attr(label=f["note"], labelloc="b", fontsize="10")
    return g
