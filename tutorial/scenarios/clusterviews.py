"""What the cluster stories draw: story labels, the balancer's view, diagram 6's boxes.

* [relabel][tutorial.scenarios.clusterviews.relabel] turns Socket.IO packets into the
  few words a learner reads (the text,
  the seq, ``since``/``atLeast``, a gap, a resend from the outbox, an error code);
* [through_balancer][tutorial.scenarios.clusterviews.through_balancer] and
  [collapse_tls][tutorial.scenarios.clusterviews.collapse_tls] make the balancer a
  lifeline:
  TLS records between the clients and nginx, plain Engine.IO between nginx and the
  servers;
* [topology][tutorial.scenarios.clusterviews.topology] turns
  [Cluster.snapshot][tutorial.cluster.cluster.Cluster.snapshot] into the architecture
  picture of
  seed diagram 6 (or diagram 2, with clients).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import graphviz

from tutorial.protocol.layers import Layer
from tutorial.render.architecture import (
    BackendNode,
    ClientNode,
    ServerNode,
    Topology,
    architecture_diagram,
)
from tutorial.scenarios.clusterstage import BALANCER, ClusterStage, client_of
from tutorial.trace.model import Lifeline, Trace, TraceEvent

# -- labels a learner reads --------------------------------------------------------------


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list | tuple) and value else None


def chat_label(e: TraceEvent) -> str | None:
    """A story label for a Socket.IO packet: the event and the fields that matter here
    (text, seq, since/atLeast, the seqs of a history, an error code); None: keep."""
    if e.layer is not Layer.SIO:
        return None
    f = e.fields
    arg = _first(f.get("args"))
    arg = arg if isinstance(arg, dict) else {}
    name = f.get("event")
    if f.get("type") == "ACK":
        ack = _first(f.get("data"))
        if not isinstance(ack, dict):
            return None
        if not ack.get("ok"):
            return f"ack: refused ({(ack.get('error') or {}).get('code')})"
        return f"ack: ok, seq {ack['seq']}" if "seq" in ack else "ack: ok"
    if name == "send-message":
        return f'send-message "{arg.get("text")}"'
    if name == "new-message":
        return f'new-message seq {arg.get("seq")} "{arg.get("text")}"'
    if name == "join-room":
        asks = [f"{k} {arg[k]}" for k in ("since", "atLeast") if k in arg]
        return f"join-room {arg.get('roomId')}" + (f" ({', '.join(asks)})" if asks else "")
    if name == "room-joined":
        seqs = [m.get("seq") for m in arg.get("history") or []]
        return f"room-joined, history seqs {seqs}"
    if name == "error":
        return f"error {arg.get('code')}"
    if name in ("user-joined", "user-left", "connect-confirmed"):
        return f"{name} {arg.get('user')}"
    return None


def relabel(trace: Trace, before: Trace | None = None) -> Trace:
    """[chat_label][tutorial.scenarios.clusterviews.chat_label] on every Socket.IO
    event; errors and refusals drawn as errors; a ``new-message`` whose seq skips one
    says so (``before``: the story so far, for
    the seqs each client already has)."""
    last: dict[str, int] = {}
    for e in before.events if before else ():
        _track(e, last, mark=False)
    sent = {_msg_id(e) for e in (before.events if before else ())} - {None}
    events = []
    for e in trace.events:
        label = chat_label(e)
        if label is not None:
            failed = label.startswith(("error ", "ack: refused"))
            if _track(e, last, mark=True):
                label += f", seq {last[e.target + ':gap']} missing: a gap"
            msg_id = _msg_id(e)
            if msg_id is not None and msg_id in sent:
                label += " again (outbox)"
            sent.add(msg_id)
            e = replace(e, label=label, kind="error" if failed else e.kind)
        events.append(e)
    return Trace(trace.lifelines, events)


def _msg_id(e: TraceEvent) -> str | None:
    """The clientMsgId of a ``send-message`` a client sent, else None."""
    if e.layer is not Layer.SIO or e.fields.get("event") != "send-message":
        return None
    arg = _first(e.fields.get("args"))
    return str(arg.get("clientMsgId")) if isinstance(arg, dict) else None


def _track(e: TraceEvent, last: dict[str, int], *, mark: bool) -> bool:
    """Follow the seqs that reach each client; True for a live message past a gap."""
    if e.layer is not Layer.SIO or e.fields.get("type") != "EVENT":
        return False
    arg = _first(e.fields.get("args"))
    if not isinstance(arg, dict):
        return False
    name = e.fields.get("event")
    found: list[Any] = []
    if name == "new-message":
        found = [arg.get("seq")]
    elif name == "room-joined":
        found = [m.get("seq") for m in arg.get("history") or []]
    seqs: list[int] = [s for s in found if isinstance(s, int)]
    if not seqs:
        return False
    have = last.get(e.target, 0)
    gap = name == "new-message" and have > 0 and seqs[0] > have + 1
    if gap and mark:
        last[e.target + ":gap"] = have + 1
    last[e.target] = max(have, *seqs)
    return bool(gap)


def plain_label(e: TraceEvent, client: str) -> str:
    """An Engine.IO packet behind the balancer, as its plain text: ``42["send-message",
    {…"text":"Hello"…}]``: the field that tells the story (the chat text, else the seq)
    kept, the rest of the object elided."""
    try:
        text = (e.raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        return f"{client}: {e.label}"
    head, brace, rest = text.partition("{")
    said = re.search(r'"text":"(?:[^"\\]|\\.)*"', rest) or re.search(r'"seq":\d+', rest)
    if brace and said:
        text = f"{head}{{…{said.group(0)}…}}]"
    return f"{client}: {text}"


# -- the balancer's view ---------------------------------------------------------------


def through_balancer(trace: Trace) -> Trace:
    """The trace as the balancer sits in it: a wiretap's event between a client and a
    server becomes one between nginx and that server (labelled with the client's
    name); TLS records stay between the client and nginx."""
    kinds = {lf.id: lf.kind for lf in trace.lifelines}
    events = []
    for e in trace.events:
        if e.layer is not Layer.TLS and not e.is_self:
            client = client_of(e, kinds)
            if kinds.get(client) == "client":
                label = plain_label(e, client) if e.layer is Layer.EIO else f"{client}: {e.label}"
                if e.source == client:
                    e = replace(e, source=BALANCER, label=label)
                else:
                    e = replace(e, target=BALANCER, label=label)
        events.append(e)
    lifelines = [lf for lf in trace.lifelines if lf.id != BALANCER]
    # Clients on the left, the balancer in the middle, the servers on the right.
    clients = [lf for lf in lifelines if lf.kind == "client"]
    others = [lf for lf in lifelines if lf.kind != "client"]
    balancer = Lifeline(BALANCER, "nginx (TLS termination)", "balancer")
    return Trace([*clients, balancer, *others], events)


def collapse_tls(events: Sequence[TraceEvent], *, sizes: bool) -> list[TraceEvent]:
    """Consecutive TLS records between the same two lifelines become one row: how many
    records, of which kinds (the split of bytes into records is nginx's business)."""
    out: list[TraceEvent] = []
    run: list[TraceEvent] = []

    def flush() -> None:
        if not run:
            return
        kinds = list(dict.fromkeys(str(e.fields.get("type", "record")) for e in run))
        what = ", ".join(
            "application data (encrypted)" if k == "application data" else k for k in kinds
        )
        size = sum(int(e.fields.get("length", 0)) for e in run)
        label = f"TLS: {what}" + (f", {len(run)} record(s), {size} bytes" if sizes else "")
        out.append(replace(run[0], label=label, raw=None, fields={"types": kinds}))
        run.clear()

    for e in events:
        if e.layer is Layer.TLS and run and (e.source, e.target) != (run[0].source, run[0].target):
            flush()
        if e.layer is Layer.TLS:
            run.append(e)
            continue
        flush()
        out.append(e)
    flush()
    return out


def balancer_trace(
    stage: ClusterStage, index: int, *, deterministic: bool, people: Sequence[str] = ()
) -> Trace:
    """Window ``index`` (a send), through the balancer: TLS rows in front, Engine.IO rows
    behind; only ``people``'s exchanges (all clients' when empty)."""
    story = stage.story(index, index + 1)
    kinds = {lf.id: lf.kind for lf in story.lifelines}
    part = [
        e
        for e in story.events
        if e.layer in (Layer.TLS, Layer.EIO)
        and not _ping(e)
        and (not people or client_of(e, kinds) in people)
    ]
    part = by_hop(part, kinds)
    return through_balancer(Trace(story.lifelines, collapse_tls(part, sizes=not deterministic)))


def by_hop(events: Sequence[TraceEvent], kinds: dict[str, str]) -> list[TraceEvent]:
    """One request and its answers, hop by hop for each client: its TLS records to
    nginx, nginx's plain packets to the server, the server's answers, nginx's TLS
    records back. nginx may cut its answer into one record or several, sent before or
    after the next plain packet arrives; grouped like this, they collapse to one row."""

    def hop(e: TraceEvent) -> int:
        up = kinds.get(e.source) == "client"
        if e.layer is Layer.TLS:
            return 0 if up else 3
        return 1 if up else 2

    order: list[str] = []
    for e in events:
        client = client_of(e, kinds)
        if client not in order:
            order.append(client)
    ranked = sorted(
        enumerate(events), key=lambda ie: (order.index(client_of(ie[1], kinds)), hop(ie[1]), ie[0])
    )
    return [e for _, e in ranked]


def _ping(e: TraceEvent) -> bool:
    return e.layer is Layer.EIO and e.raw in (b"2", b"3")


# -- the architecture picture ----------------------------------------------------------


def topology(
    snapshot: dict[str, Any],
    *,
    clients: Sequence[tuple[str, str]] = (),
    deterministic: bool = False,
    title_redis: str = "Redis cluster: a master, replicas, Sentinels",
) -> Topology:
    """Seed diagram 6 (or, with ``clients``, diagram 2) from
    [Cluster.snapshot][tutorial.cluster.cluster.Cluster.snapshot]."""
    b = snapshot["balancer"]
    servers = snapshot["servers"]
    edges: dict[tuple[str, str], str] = {}

    def port(p: Any) -> Any:
        return None if deterministic else p

    balancer_detail: tuple[str, ...] = ()
    if b:
        balancer_detail = (
            "TLS termination: https/wss in, http/ws out" if b["tls"] else "no TLS (--no-tls)",
            "sticky sessions: hash $remote_addr" if b["sticky"] else "round-robin",
        )
    server_nodes = []
    for s in servers:
        n = s["name"].split("-")[1]
        server_nodes.append(
            ServerNode(
                s["name"],
                f"Server {n} (Python)",
                port(s["port"]),
                ("down (killed)",) if not s["alive"] else (),
            )
        )
        edges[("balancer", s["name"])] = _plural(s["connections"], "connection")
    client_nodes = [ClientNode(u, u, kind) for u, kind in clients]
    internet = None
    if not client_nodes:
        internet = "browsers, phones, desktops"
        edges[("internet", "balancer")] = "wss:// (TLS)" if b.get("tls") else "ws://"

    redis = snapshot.get("redis") or {}
    redis_nodes: list[BackendNode] = []
    sentinels: list[BackendNode] = []
    single_redis = None
    if redis.get("mode") == "sentinel":
        for k, node in enumerate(redis["nodes"], 1):
            detail = [f"port {node['port']}"] if not deterministic else []
            detail.append(_plural(node["messages"], "adapter message"))
            if node["role"] == "replica":
                detail.append(f"replication lag {node.get('lag_bytes', '?')} B")
            redis_nodes.append(
                BackendNode(f"redis-node-{k}", f"Redis node {k}", node["role"], tuple(detail))
            )
        master = next((n.id for n in redis_nodes if n.role == "master"), None)
        for k, sentinel in enumerate(redis["sentinels"], 1):
            sees = next(
                (
                    n.label
                    for n, raw in zip(redis_nodes, redis["nodes"], strict=True)
                    if raw["port"] == sentinel.get("master_port")
                ),
                "?",
            )
            detail = [f"master: {sees}", f"epoch {sentinel.get('epoch', '?')}"]
            sentinels.append(
                BackendNode(f"sentinel-{k}", f"Sentinel {k}", "sentinel", tuple(detail))
            )
        for node in redis_nodes:
            if master and node.id != master:
                edges[(master, node.id)] = "replicates"
    elif redis.get("mode") == "single":
        node = redis["nodes"][0]
        single_redis = f"cross-server messaging\n{_plural(node['messages'], 'adapter message')}"

    database = snapshot["database"]
    db_nodes: list[BackendNode] = []
    single_db = None
    if database["kind"] == "postgres":
        reads: dict[str, int] = {}
        for s in servers:
            for name, count in (s.get("reads") or {}).get("reads", {}).items():
                reads[name] = reads.get(name, 0) + int(count)
        standby_k = 0
        for node in database["nodes"]:
            role = {"primary": "primary", "replica": "standby"}.get(node["role"], "down")
            if node["name"] == "primary":
                label = "Primary DB"
            else:
                standby_k += 1
                label = f"Secondary DB {standby_k}"
            detail = [f"port {node['port']}"] if not deterministic else []
            if node.get("alive"):
                detail.append(_plural(node.get("rows", 0), "row"))
            if role == "standby":
                detail.append(f"replay lag {node.get('lag_bytes', '?')} B")
                detail.append(_plural(reads.get(node["name"], 0), "history read"))
            db_nodes.append(BackendNode(f"db-{node['name']}", label, role, tuple(detail)))
        primary = next((n.id for n in db_nodes if n.role == "primary"), None)
        for node in db_nodes:
            if primary and node.role == "standby":
                edges[(primary, node.id)] = "WAL stream"
    else:
        rows = database["nodes"][0].get("rows")
        single_db = f"user data & message history\none SQLite file, {_plural(rows or 0, 'row')}"

    return Topology(
        clients=client_nodes,
        internet=internet,
        balancer="nginx" if b else None,
        balancer_detail=balancer_detail,
        servers=server_nodes,
        redis=title_redis if redis_nodes else single_redis,
        redis_nodes=redis_nodes,
        sentinels=sentinels,
        database="Database cluster: primary for writes, standbys for reads"
        if db_nodes
        else single_db,
        db_nodes=db_nodes,
        edges=edges,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def draw_architecture(
    snapshot: dict[str, Any], *, deterministic: bool, title: str
) -> graphviz.Digraph:
    return architecture_diagram(topology(snapshot, deterministic=deterministic), title=title)
