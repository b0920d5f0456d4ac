"""The system's architecture, tier by tier, with live counts (seed diagrams 2 and 6).

A [Topology][tutorial.render.architecture.Topology] is a plain description of what a
scenario started: the Internet or clients, an optional load balancer, servers, Redis
and a database, plus what was counted on the way (``edges``: ``("server1", "redis")
-> "12 messages"``). The picture is layered top to bottom like the seed; a tier that
is absent is simply left out, and the tiers around it are joined directly.

Redis and the database are one box each (diagram 2's "Redis Adapter" and "Database
Layer"), or, given
[Topology.redis_nodes][tutorial.render.architecture.Topology.redis_nodes] /
[Topology.db_nodes][tutorial.render.architecture.Topology.db_nodes], a cluster of boxes
(diagram 6's "Redis Cluster": a master and replicas, here with the Sentinels that watch
them; and its "Database Cluster": a primary for writes and secondaries for reads),
joined by the replication arrows between them.

Ids: clients, servers and back-end nodes have their own; the single nodes are
``"internet"``, ``"balancer"``, ``"redis"`` and ``"database"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import graphviz

from tutorial.render import palette

INTERNET = "internet"
BALANCER = "balancer"
REDIS = "redis"
DATABASE = "database"

#: What each back-end role is called in the seed's diagram 6, and its fill.
ROLE_CAPTIONS: dict[str, str] = {
    "master": "(Master)",
    "replica": "(Replica)",
    "sentinel": "(Sentinel)",
    "primary": "(Write)",
    "standby": "(Read)",
    "down": "(down)",
}
ROLE_FILLS: dict[str, str] = {
    "master": "#fdecea",
    "replica": "#fff5f4",
    "sentinel": "#f8f9fa",
    "primary": "#eef7ee",
    "standby": "#f6fbf6",
    "down": "#e9ecef",
}

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
    port: int | str | None = None
    detail: tuple[str, ...] = ()  # further live lines (connections, ...)


@dataclass(frozen=True)
class BackendNode:
    """One Redis node, Sentinel or database server: its role and live lines."""

    id: str
    label: str
    role: str
    detail: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLE_CAPTIONS:
            raise ValueError(f"role {self.role!r} not in {sorted(ROLE_CAPTIONS)}")


@dataclass(frozen=True)
class Topology:
    """What runs, tier by tier. ``internet``, ``balancer``, ``redis`` and ``database``
    are labels; ``*_detail`` and ``*_nodes`` add the live lines and clusters."""

    clients: tuple[ClientNode, ...] | list[ClientNode] = ()
    balancer: str | None = None
    servers: tuple[ServerNode, ...] | list[ServerNode] = ()
    redis: str | None = None
    database: str | None = None
    edges: Mapping[tuple[str, str], str | int] = field(default_factory=dict)
    internet: str | None = None
    balancer_detail: tuple[str, ...] = ()
    redis_nodes: tuple[BackendNode, ...] | list[BackendNode] = ()
    """Diagram 6's Redis cluster: the master and its replicas."""
    sentinels: tuple[BackendNode, ...] | list[BackendNode] = ()
    db_nodes: tuple[BackendNode, ...] | list[BackendNode] = ()
    """Diagram 6's database cluster: the primary first, then the standbys."""

    def redis_entry(self) -> str:
        """Where servers' Redis arrows end: the master, or the single Redis box."""
        masters = [n.id for n in self.redis_nodes if n.role == "master"]
        return masters[0] if masters else REDIS

    def database_entry(self) -> str:
        """Where servers' write arrows end: the primary, or the single database box."""
        primaries = [n.id for n in self.db_nodes if n.role == "primary"]
        return primaries[0] if primaries else DATABASE


def structural_edges(topology: Topology) -> list[tuple[str, str]]:
    """The edges every picture of this topology has, whether or not anything was counted.

    Clients reach the balancer (or, without one, the server they were counted against,
    or the only server); the balancer reaches every server; every server reaches Redis
    and the database.
    """
    clients = [c.id for c in topology.clients]
    if topology.internet is not None:
        clients = [INTERNET, *clients]
    servers = [s.id for s in topology.servers]
    edges: list[tuple[str, str]] = []
    if topology.balancer is not None:
        edges += [(c, BALANCER) for c in clients]
        edges += [(BALANCER, s) for s in servers]
    elif len(servers) == 1:
        edges += [(c, servers[0]) for c in clients]
    if topology.redis is not None or topology.redis_nodes:
        entry = topology.redis_entry()
        edges += [(s, entry) for s in servers]
        edges += [(entry, n.id) for n in topology.redis_nodes if n.id != entry]
        edges += [(n.id, entry) for n in topology.sentinels]
    if topology.database is not None or topology.db_nodes:
        entry = topology.database_entry()
        edges += [(s, entry) for s in servers]
        edges += [(entry, n.id) for n in topology.db_nodes if n.id != entry]
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
    if topology.redis_nodes and topology.db_nodes:
        # The servers' write arrows must go round the Redis cluster to reach the
        # database below it: straight segments down its sides, not wide loops.
        g.attr(splines="polyline")
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
        s.attr(label=_lines(title), style="rounded", color=palette.INK, labeljust="c")
        tiers: list[list[str]] = []
        top: list[str] = []
        if topology.internet is not None:
            s.node(
                INTERNET,
                label=_lines("Internet", topology.internet),
                shape="ellipse",
                style="filled",
                fillcolor=palette.HEADER_FILL,
            )
            known[INTERNET] = "client"
            top.append(INTERNET)
        for c in topology.clients:
            s.node(
                c.id,
                label=_lines(c.label, f"({CLIENT_KINDS[c.kind]})", "Socket.IO client"),
                fillcolor=palette.HEADER_FILL,
            )
            known[c.id] = "client"
            top.append(c.id)
        if top:
            tiers.append(top)
        if topology.balancer is not None:
            tiers.append([BALANCER])
            s.node(
                BALANCER,
                label=_lines("Load balancer", topology.balancer, *topology.balancer_detail),
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
                    label=_lines(sv.label, "Socket.IO server", port, *sv.detail),
                    shape="box3d",
                    style="filled",
                    fillcolor="#e7f1ff",
                )
                known[sv.id] = "server"
        if topology.redis_nodes:
            with s.subgraph(name="cluster_redis") as r:
                r.attr(label=_lines(topology.redis or "Redis cluster"), style="rounded")
                tiers.append(_master_in_the_middle(topology.redis_nodes))
                for n in topology.redis_nodes:
                    _backend(r, n, "cylinder")
                    known[n.id] = "redis"
                if topology.sentinels:
                    tiers.append([n.id for n in topology.sentinels])
                    for n in topology.sentinels:
                        _backend(r, n, "box")
                        known[n.id] = "sentinel"
        elif topology.redis is not None:
            tiers.append([REDIS])
            s.node(
                REDIS,
                label=_lines("Redis adapter", topology.redis),
                shape="cylinder",
                style="filled",
                fillcolor="#fdecea",
            )
            known[REDIS] = "redis"
        if topology.db_nodes:
            with s.subgraph(name="cluster_database") as d:
                d.attr(label=_lines(topology.database or "Database cluster"), style="rounded")
                tiers.append(_master_in_the_middle(topology.db_nodes))
                for n in topology.db_nodes:
                    _backend(d, n, "cylinder")
                    known[n.id] = "database"
        elif topology.database is not None:
            tiers.append([DATABASE])
            s.node(
                DATABASE,
                label=_lines("Database", topology.database),
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
        if known[a] == "sentinel":  # drawn downwards from the master, the arrow at it
            attrs |= {
                "style": "dotted",
                "color": palette.PROCESSING_GREY,
                "arrowtail": "odot",
                "dir": "back",
            }
            a, b = b, a
        elif known[a] == known[b]:  # replication inside the Redis or database cluster
            attrs |= {"style": "dashed"}
        if label is not None:
            attrs["label"] = _lines(label)
        elif known[a] != "sentinel":
            attrs["color"] = style.color + "99"  # uncounted: the same line, lighter
        g.edge(a, b, **attrs)
    return g


def _lines(*texts: str) -> str:
    """[palette.lines][tutorial.render.palette.lines], with a text's own line breaks
    kept as lines."""
    return palette.lines(*(part for text in texts for part in text.split("\n")))


def _master_in_the_middle(nodes: Sequence[BackendNode]) -> list[str]:
    """The row's order: the master (or primary) in the middle, the others around it in
    their own order, so that the arrows from the servers above and to the replicas
    beside it do not cross."""
    ids = [n.id for n in nodes]
    heads = [n.id for n in nodes if n.role in ("master", "primary")]
    if not heads:
        return ids
    rest = [i for i in ids if i != heads[0]]
    half = len(rest) // 2
    return [*rest[:half], heads[0], *rest[half:]]


def _backend(g: graphviz.Digraph, node: BackendNode, shape: str) -> None:
    caption = ROLE_CAPTIONS[node.role]
    g.node(
        node.id,
        label=_lines(node.label, caption, *node.detail),
        shape=shape,
        style="filled,dashed" if node.role == "down" else "filled",
        fillcolor=ROLE_FILLS[node.role],
        fontsize=palette.SMALL_FONT_SIZE if node.role == "sentinel" else palette.FONT_SIZE,
    )


def _edge_style(a: str, b: str) -> palette.Style:
    """Client-side links carry WebSocket connections; server-side ones carry data."""
    if a == "client" or b == "client" or a == "balancer":
        return palette.WEBSOCKET
    return palette.DATA
