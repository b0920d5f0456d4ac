"""The system's architecture, tier by tier, with live counts (seed diagrams 2 and 6).

A [Topology][tutorial.render.architecture.Topology] is a plain description of what a scenario
started: clients, an
optional load balancer, servers, an optional Redis and an optional database, plus
what was counted on the way (``edges``: ``("server1", "redis") -> "12 messages"``).
The picture is layered top to bottom like the seed; a tier that is absent is simply
left out, and the tiers around it are joined directly.

Ids: clients and servers have their own; the single nodes are ``"balancer"``,
``"redis"`` and ``"database"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import graphviz

from tutorial.render import palette

BALANCER = "balancer"
REDIS = "redis"
DATABASE = "database"

CLIENT_KINDS: dict[str, str] = {"browser": "Browser", "mobile": "Mobile", "desktop": "Desktop"}


@dataclass(frozen=True)
class ClientNode:
    id: str
    label: str
    kind: str = "browser"

    def __post_init__(self) -> None:
        if self.kind not in CLIENT_KINDS:
            raise ValueError(f"client kind {self.kind!r} not in {sorted(CLIENT_KINDS)}")


@dataclass(frozen=True)
class ServerNode:
    id: str
    label: str
    port: int | None = None


@dataclass(frozen=True)
class Topology:
    """What runs, tier by tier. ``balancer``, ``redis`` and ``database`` are labels."""

    clients: tuple[ClientNode, ...] | list[ClientNode] = ()
    balancer: str | None = None
    servers: tuple[ServerNode, ...] | list[ServerNode] = ()
    redis: str | None = None
    database: str | None = None
    edges: Mapping[tuple[str, str], str | int] = field(default_factory=dict)


def structural_edges(topology: Topology) -> list[tuple[str, str]]:
    """The edges every picture of this topology has, whether or not anything was counted.

    Clients reach the balancer (or, without one, the server they were counted against,
    or the only server); the balancer reaches every server; every server reaches Redis
    and the database.
    """
    clients = [c.id for c in topology.clients]
    servers = [s.id for s in topology.servers]
    edges: list[tuple[str, str]] = []
    if topology.balancer is not None:
        edges += [(c, BALANCER) for c in clients]
        edges += [(BALANCER, s) for s in servers]
    elif len(servers) == 1:
        edges += [(c, servers[0]) for c in clients]
    if topology.redis is not None:
        edges += [(s, REDIS) for s in servers]
    if topology.database is not None:
        edges += [(s, DATABASE) for s in servers]
    return edges


def architecture_diagram(
    topology: Topology, *, title: str = "WebSocket chat system"
) -> graphviz.Digraph:
    """Draw the tiers top to bottom; counted edges carry their count as a label."""
    g = graphviz.Digraph(name="architecture")
    g.attr(
        rankdir="TB",
        newrank="true",
        nodesep="0.35",
        ranksep="0.6",
        fontname=palette.FONT,
        fontsize="12",
        fontcolor=palette.INK,
    )
    g.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fillcolor="white",
        fontname=palette.FONT,
        fontsize=palette.FONT_SIZE,
        color=palette.INK,
        fontcolor=palette.INK,
        margin="0.15,0.06",
    )
    g.attr("edge", fontname=palette.FONT, fontsize=palette.SMALL_FONT_SIZE, arrowsize="0.7")

    known: dict[str, str] = {}  # id -> tier
    with g.subgraph(name="cluster_system") as s:
        s.attr(label=palette.lines(title), style="rounded", color=palette.INK, labeljust="c")
        tiers: list[list[str]] = []
        if topology.clients:
            tiers.append([c.id for c in topology.clients])
            for c in topology.clients:
                s.node(
                    c.id,
                    label=palette.lines(c.label, f"({CLIENT_KINDS[c.kind]})", "Socket.IO client"),
                    fillcolor=palette.HEADER_FILL,
                )
                known[c.id] = "client"
        if topology.balancer is not None:
            tiers.append([BALANCER])
            s.node(
                BALANCER,
                label=palette.lines("Load balancer", topology.balancer),
                shape="box",
                style="filled",
                fillcolor="#fff3e0",
                width="3",
            )
            known[BALANCER] = "balancer"
        if topology.servers:
            tiers.append([sv.id for sv in topology.servers])
            for sv in topology.servers:
                port = f"port {sv.port}" if sv.port is not None else ""
                s.node(
                    sv.id,
                    label=palette.lines(sv.label, "Socket.IO server", port),
                    shape="box3d",
                    style="filled",
                    fillcolor="#e7f1ff",
                )
                known[sv.id] = "server"
        if topology.redis is not None:
            tiers.append([REDIS])
            s.node(
                REDIS,
                label=palette.lines("Redis adapter", topology.redis),
                shape="cylinder",
                style="filled",
                fillcolor="#fdecea",
            )
            known[REDIS] = "redis"
        if topology.database is not None:
            tiers.append([DATABASE])
            s.node(
                DATABASE,
                label=palette.lines("Database", topology.database),
                shape="cylinder",
                style="filled",
                fillcolor="#eef7ee",
            )
            known[DATABASE] = "database"
        for tier in tiers:
            with s.subgraph() as row:
                row.attr(rank="same")
                for node in tier:
                    row.node(node)
                for a, b in itertools.pairwise(tier):
                    row.edge(a, b, style="invis")
        # Keep the tiers in order even where no edge joins them.
        for upper, lower in itertools.pairwise(tiers):
            g.edge(upper[len(upper) // 2], lower[len(lower) // 2], style="invis", weight="0")

    counted = {(str(a), str(b)): str(v) for (a, b), v in topology.edges.items()}
    for a, b in sorted(counted):
        for node in (a, b):
            if node not in known:
                raise ValueError(f"edge {a} → {b}: no node {node!r} in the topology")
    edges = structural_edges(topology)
    edges += sorted(e for e in counted if e not in edges)
    for a, b in edges:
        style = _edge_style(known[a], known[b])
        attrs = style.edge_attrs()
        label = counted.get((a, b))
        if label is not None:
            attrs["label"] = palette.lines(label)
        else:
            attrs["color"] = style.color + "99"  # uncounted: the same line, lighter
        g.edge(a, b, **attrs)
    return g


def _edge_style(a: str, b: str) -> palette.Style:
    """Client-side links carry WebSocket connections; server-side ones carry data."""
    if a == "client" or b == "client" or a == "balancer":
        return palette.WEBSOCKET
    return palette.DATA
