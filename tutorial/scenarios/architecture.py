"""Chapter 2, seed diagram 2: clients, server and database, with what really flowed.

``clients`` teaching clients, named like the seed's browser, mobile and desktop
clients (``alice (browser)``, ``bob (mobile)``, ``charlie (desktop)``, then round
again), connect through the wiretap, join ``general`` and send one message each.
The architecture picture is drawn from the run: each client → server edge carries
the Socket.IO events it sent and received (counted on the wire), the server →
database edge the rows the store holds.

One server and no load balancer or Redis: those tiers appear in chapter 6 (scaling).
"""

from __future__ import annotations

from typing import Any

from tutorial.chat import demo
from tutorial.chat.server import ChatServer
from tutorial.render.architecture import ClientNode, ServerNode, Topology, architecture_diagram
from tutorial.scenarios.base import ScenarioResult, Stage, sequence_view
from tutorial.trace.model import Trace

KINDS = ("browser", "mobile", "desktop")
ROOM = "general"
SERVER_ID = "server1"


async def run(
    clients: int = 3,
    *,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """Run ``clients`` (1 to 7) chatting clients against one server."""
    if not 1 <= clients <= len(demo.USERS):
        raise ValueError(f"clients must be between 1 and {len(demo.USERS)}")
    users = demo.USERS[:clients]
    kinds = {u: KINDS[i % len(KINDS)] for i, u in enumerate(users)}
    lifelines = [(u, f"{u} ({kinds[u]})", "client") for u in users]
    lifelines.insert(1, ("server", "Server", "server"))  # room for the server's notes
    async with Stage(
        "architecture", deterministic=deterministic, server=server, lifelines=lifelines
    ) as stage:
        chat = [await stage.client(u, label=f"{u} ({kinds[u]})") for u in users]
        for client in chat:
            await stage.join(client, ROOM)
        for client in chat:
            await stage.send(client, ROOM, f"hello from {client.name}'s {kinds[client.name]}")
        assert stage.server is not None
        rows = len(await stage.server.store.history(ROOM, limit=1000))
        stored = await stage.server.store.count_messages()
        port = None if deterministic else stage.server_port
        counts = count_events(stage.trace)
        figures: dict[str, Any] = {
            "clients": [{"id": u, "kind": kinds[u]} for u in users],
            "server": {"id": SERVER_ID, "port": port},
            "events_sent": {u: counts.get((u, "server"), 0) for u in users},
            "events_received": {u: counts.get(("server", u), 0) for u in users},
            "messages_in_room": rows,
            "stored_rows": stored,
            "database": "SQLite file",
        }
        return stage.result(
            figures=figures,
            main=draw,
            layers="chat",
            title="Seed diagram 2: the chat system, one server",
            extras={"sequence": _sequence},
        )


def count_events(trace: Trace) -> dict[tuple[str, str], int]:
    """Socket.IO packets per (source, target) pair, as the wiretap saw them."""
    out: dict[tuple[str, str], int] = {}
    for e in trace.events:
        if e.layer.value == "sio":
            out[(e.source, e.target)] = out.get((e.source, e.target), 0) + 1
    return out


def topology(figures: dict[str, Any], *, with_edges: bool = True) -> Topology:
    clients = [ClientNode(c["id"], c["id"], c["kind"]) for c in figures["clients"]]
    port = figures["server"].get("port")
    servers = [ServerNode(SERVER_ID, "Server 1 (Python)", port)]
    edges: dict[tuple[str, str], str] = {}
    if with_edges:
        for c in figures["clients"]:
            sent, got = figures["events_sent"][c["id"]], figures["events_received"][c["id"]]
            edges[(c["id"], SERVER_ID)] = f"↑{sent} ↓{got} packets"
        edges[(SERVER_ID, "database")] = f"{figures['stored_rows']} rows stored"
    return Topology(clients=clients, servers=servers, database=figures["database"], edges=edges)


def draw(result: ScenarioResult) -> Any:
    return architecture_diagram(topology(result.figures), title="WebSocket Chat System")


def _sequence(result: ScenarioResult) -> Any:
    return sequence_view(result, "chat")
