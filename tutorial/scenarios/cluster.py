"""Chapter 6, seed diagram 6 whole: the running cluster, drawn from itself.

A real :class:`~tutorial.cluster.cluster.Cluster` starts (nginx terminating TLS with
sticky sessions, three ``tutorial serve`` processes, Redis with a master, two replicas
and three Sentinels, PostgreSQL with a primary and two streaming standbys), with a
:class:`~tutorial.trace.tlstap.TlsTap` in front of nginx (the Internet side: TLS
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
:mod:`tutorial.cluster.drills`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import graphviz

from tutorial.client.client import ChatClient
from tutorial.client.recovery import Backoff
from tutorial.cluster.cluster import Cluster
from tutorial.protocol.layers import Layer
from tutorial.render.architecture import (
    BackendNode,
    ClientNode,
    ServerNode,
    Topology,
    architecture_diagram,
)
from tutorial.render.sequence import sequence_diagram
from tutorial.scenarios.base import ScenarioResult
from tutorial.trace.model import Lifeline, Rule, Trace, TraceEvent
from tutorial.trace.tlstap import TlsTap
from tutorial.trace.wiretap import StableNormaliser, stable_trace

ROOM = "general"
TEXT = "Hello through the balancer"
KINDS = ("browser", "mobile", "desktop")
WAIT = 20.0  # seconds: a wait longer than this is a failure, not a pause
BALANCER = "nginx"

# -- the stage -------------------------------------------------------------------------


@dataclass
class Window:
    """Trace events ``start <= i < end`` were caused by one action of ``actor``."""

    start: int
    end: int
    actor: str
    name: str


class ClusterStage:
    """A cluster with taps on both sides of nginx, and clients placed on its servers."""

    def __init__(self, cluster: Cluster, *, deterministic: bool = False) -> None:
        self.cluster = cluster
        self.deterministic = deterministic
        self.trace = cluster.trace
        self.tls_tap: TlsTap | None = None
        self.clients: dict[str, ChatClient] = {}
        self.addresses: dict[str, str] = {}
        self.home: dict[str, str] = {}
        self.windows: list[Window] = []
        self._notes: list[TraceEvent] = []
        self._sent: dict[str, int] = {}

    async def start(self) -> ClusterStage:
        if not self.cluster.use_taps:
            raise ValueError("the stage needs a cluster started with taps=True")
        if self.cluster.nginx is None:
            await self.cluster.start()
        assert self.cluster.nginx is not None
        if self.cluster.use_tls:
            self.tls_tap = TlsTap(
                self.trace,
                (self.cluster.nginx.host, self.cluster.nginx.port),
                balancer_lifeline=BALANCER,
                balancer_label="nginx (TLS)",
                name_of=self.cluster.client_names.get,
            )
            await self.tls_tap.start()
        return self

    @property
    def entry(self) -> str:
        """Where clients connect: through the TLS tap to nginx (or nginx itself)."""
        return self.tls_tap.url if self.tls_tap is not None else self.cluster.url

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        if self.tls_tap is not None:
            await self.tls_tap.stop()
            self.tls_tap = None

    def recording(self, on: bool) -> None:
        for tap in [*self.cluster.taps, *([self.tls_tap] if self.tls_tap else [])]:
            tap.recording = on

    # -- placing clients -------------------------------------------------------------

    async def place(self, users: Sequence[str]) -> dict[str, str]:
        """A source address per user, so that nginx's sticky hash puts user ``i`` on
        server ``i % N + 1``: asked of nginx itself, one ``/healthz`` per address (the
        hash is consistent, so the answer holds for the WebSocket that follows)."""
        servers = [s.name for s in self.cluster.servers]
        wanted = {u: servers[i % len(servers)] for i, u in enumerate(users)}
        self.recording(False)
        try:
            for n in range(2, 250):
                if all(u in self.addresses for u in users):
                    break
                address = f"127.0.0.{n}"
                landed = await self._probe(address)
                for user in users:
                    if user not in self.addresses and wanted[user] == landed:
                        self.addresses[user] = address
                        break
        finally:
            self.recording(True)
        missing = [u for u in users if u not in self.addresses]
        if missing:
            raise RuntimeError(f"no source address reaches the servers of {missing}")
        self.home.update(wanted)
        return dict(self.addresses)

    async def _probe(self, address: str) -> str:
        connector = aiohttp.TCPConnector(
            local_addr=(address, 0), ssl=self.cluster.ssl_context or False
        )
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"{self.cluster.url}/healthz") as response,
        ):
            return str((await response.json())["name"])

    # -- actions, each one a window of the trace ---------------------------------------

    @contextlib.asynccontextmanager
    async def window(self, actor: str, name: str) -> Any:
        start = len(self.trace)
        yield
        await self._answered(start)
        self.windows.append(Window(start, len(self.trace), actor, name))

    async def _answered(self, start: int) -> None:
        """Until every request a client sent since ``start`` has its ACK on the wire
        (the window then holds whole exchanges, whatever the scheduler did)."""
        deadline = time.monotonic() + WAIT
        while True:
            asked: set[tuple[str, str, int]] = set()
            for e in self.trace.events[start:]:
                f = e.fields
                if e.layer is Layer.SIO and f.get("id") is not None:
                    if f.get("type") == "EVENT" and e.source in self.clients:
                        asked.add((e.source, e.target, int(f["id"])))
                    elif f.get("type") == "ACK":
                        asked.discard((e.target, e.source, int(f["id"])))
            if not asked:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"requests never answered: {sorted(asked)}")
            await asyncio.sleep(0.005)

    def note(self, lifeline: str, label: str) -> None:
        """A note in the story (a fault injected, a Sentinel's event), between windows."""
        self._notes.append(self.trace.new_event(lifeline, lifeline, Layer.APP, label, kind="note"))
        self.windows.append(Window(len(self.trace), len(self.trace), lifeline, f"note:{label}"))

    async def connect(self, user: str, **options: Any) -> ChatClient:
        address = self.addresses[user]
        self.cluster.name_client(address, user)
        client_options = self.cluster.client_options(local_addr=address, seed=1, **options)
        client = ChatClient(self.entry, user, user, options=client_options, name=user)
        self.clients[user] = client
        others = [c for name, c in self.clients.items() if name != user and ROOM in c.offsets]
        async with self.window(user, "join"):
            await client.connect()
            await client.wait_for_event("connect-confirmed", timeout=WAIT)
            await client.join(ROOM)
            for other in others:
                await other.wait_until(lambda o=other: user in o.members.get(ROOM, []), WAIT)
        return client

    async def send(self, user: str, text: str, reach: Sequence[str] | None = None) -> Any:
        client = self.clients[user]
        async with self.window(user, "send"):
            ack = await client.send(ROOM, text, client_msg_id=self.next_msg_id(user))
            for name in reach if reach is not None else list(self.clients):
                other = self.clients[name]
                await other.wait_until(lambda o=other: text in o.received(ROOM), WAIT)
        return ack

    # -- the trace, in a canonical order ------------------------------------------------

    def parts(self) -> list[list[TraceEvent]]:
        """Each window's events in a canonical order (a note window: its note)."""
        events = list(self.trace.events)
        notes = iter(self._notes)
        column = _columns(self.trace.lifelines, self.home)
        out: list[list[TraceEvent]] = []
        for w in self.windows:
            if w.name.startswith("note:"):
                out.append([next(notes)])
            else:
                mine = [e for e in events[w.start : w.end] if self._ours(e)]
                out.append(canonical(mine, w.actor, column))
        return out

    def _ours(self, e: TraceEvent) -> bool:
        """An event of one of the stage's clients (not of a probe's late TCP close)."""
        return e.is_self or e.source in self.clients or e.target in self.clients

    def story(self, first: int = 0, last: int | None = None) -> Trace:
        """Windows ``first`` to ``last`` (all by default), in order, on ordered lifelines."""
        events = [e for part in self.parts()[first:last] for e in part]
        lifelines = list(self.trace.lifelines)
        for lid, label, kind in BACKEND_LIFELINES:
            if any(e.source == lid for e in events):
                lifelines.append(Lifeline(lid, label, kind))
        used = {e.source for e in events} | {e.target for e in events}
        ordered = [lf for lf in _order_lifelines(lifelines, self.home) if lf.id in used]
        return Trace(ordered, events)

    def next_msg_id(self, user: str) -> str | None:
        """A fixed clientMsgId in deterministic mode (``alice-1``, ...), else the client's."""
        if not self.deterministic:
            return None
        self._sent[user] = self._sent.get(user, 0) + 1
        return f"{user}-{self._sent[user]}"


BACKEND_LIFELINES = (
    ("redis", "redis-server ×3", "redis"),
    ("sentinels", "Sentinels ×3", "redis"),
    ("database", "PostgreSQL ×3", "store"),
)


def _columns(lifelines: Sequence[Lifeline], home: dict[str, str]) -> dict[str, int]:
    return {lf.id: i for i, lf in enumerate(_order_lifelines(list(lifelines), home))}


def _order_lifelines(lifelines: list[Lifeline], home: dict[str, str]) -> list[Lifeline]:
    """Clients of server 1, nginx, server 1, server 2 and its clients, ... then the
    back ends: the columns the story reads left to right."""
    by_id = {lf.id: lf for lf in lifelines}
    servers = sorted((i for i in by_id if i.startswith("server-")), key=_server_number)
    order: list[str] = []
    for k, server in enumerate(servers):
        mine = [u for u, s in home.items() if s == server and u in by_id]
        if k == 0:
            order += [*mine, *([BALANCER] if BALANCER in by_id else []), server]
        else:
            order += [server, *mine]
    order += [i for i in by_id if i not in order]
    return [by_id[i] for i in order]


def _server_number(lifeline: str) -> int:
    return int(lifeline.rsplit("-", 1)[1]) if lifeline.rsplit("-", 1)[1].isdigit() else 99


def _client_of(e: TraceEvent, kinds: dict[str, str]) -> str:
    return e.source if kinds.get(e.source) == "client" else e.target


def canonical(events: Sequence[TraceEvent], actor: str, column: dict[str, int]) -> list[TraceEvent]:
    """One window's events in a canonical order: the actor's own exchange first (its
    bytes to nginx, nginx's to its server, the answers back), then every other client
    in column order. Events of one client keep the order they were recorded in; only
    the interleaving of clients, which the scheduler decides, is fixed."""

    def key(item: tuple[int, TraceEvent]) -> tuple[int, int, int]:
        i, e = item
        client = e.target if e.source in (BALANCER,) or e.source.startswith("server-") else e.source
        if e.is_self:
            client = actor
        return (0 if client == actor else 1, column.get(client, 99), i)

    return [e for _, e in sorted(enumerate(events), key=key)]


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
    """:func:`chat_label` on every Socket.IO event; errors and refusals drawn as errors;
    a ``new-message`` whose seq skips one says so (``before``: the story so far, for
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
                label += f": seq {last[e.target + ':gap']} is missing (a gap)"
            msg_id = _msg_id(e)
            if msg_id is not None and msg_id in sent:
                label += " (again, from the outbox: same clientMsgId)"
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
    seqs = []
    if name == "new-message":
        seqs = [arg.get("seq")]
    elif name == "room-joined":
        seqs = [m.get("seq") for m in arg.get("history") or []]
    seqs = [s for s in seqs if isinstance(s, int)]
    if not seqs:
        return False
    have = last.get(e.target, 0)
    gap = name == "new-message" and have and seqs[0] > have + 1
    if gap and mark:
        last[e.target + ":gap"] = have + 1
    last[e.target] = max(have, *seqs)
    return bool(gap)


def plain_label(e: TraceEvent, client: str) -> str:
    """An Engine.IO packet behind the balancer, as its plain text: ``42["send-message",
    {…"text":"Hello"…}]`` (the chat text kept, the rest of the object elided)."""
    try:
        text = (e.raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        return f"{client}: {e.label}"
    head, brace, rest = text.partition("{")
    said = re.search(r'"text":"(?:[^"\\]|\\.)*"', rest)
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
            client = _client_of(e, kinds)
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


def balancer_trace(stage: ClusterStage, index: int, *, deterministic: bool) -> Trace:
    """Window ``index`` (a send), through the balancer: TLS rows in front, Engine.IO rows
    behind."""
    story = stage.story(index, index + 1)
    part = [e for e in story.events if e.layer in (Layer.TLS, Layer.EIO) and not _ping(e)]
    return through_balancer(Trace(story.lifelines, collapse_tls(part, sizes=not deterministic)))


def _ping(e: TraceEvent) -> bool:
    return e.layer is Layer.EIO and e.raw in (b"2", b"3")


# -- deterministic form ------------------------------------------------------------------


class ClusterNormaliser(StableNormaliser):
    """Also hides which loopback address a client was given (``X-Real-IP`` and
    ``X-Forwarded-For`` behind nginx): it is picked by probing the hash."""

    def __init__(self) -> None:
        super().__init__()
        address = Rule(
            "client-address",
            re.compile(r"(?i)X-(?:Real-IP|Forwarded-For): (?P<value>127\.\d+\.\d+\.\d+)"),
            "a client's loopback source address, as nginx forwards it",
            numbered="client-address",
        )
        self.rules = (address, *self.rules)
        self.numbers["client-address"] = {}


def deterministic_trace(trace: Trace) -> Trace:
    """:func:`stable_trace` for a cluster story. TLS records are kept only as the rows
    :func:`collapse_tls` made (no ciphertext, no sizes): how nginx cuts its bytes into
    records, and the session tickets it sends, change from run to run; so do the taps'
    TCP connection numbers (the probes that placed the clients count too)."""
    kept = (
        e
        for e in trace.events
        if e.layer is not Layer.TCP and (e.layer is not Layer.TLS or "types" in e.fields)
    )
    return stable_trace(Trace(trace.lifelines, kept), "", ClusterNormaliser())


# -- the architecture picture ----------------------------------------------------------


def topology(
    snapshot: dict[str, Any],
    *,
    clients: Sequence[tuple[str, str]] = (),
    deterministic: bool = False,
    title_redis: str = "Redis cluster: a master, replicas, Sentinels",
) -> Topology:
    """Seed diagram 6 (or, with ``clients``, diagram 2) from :meth:`Cluster.snapshot`."""
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
        balancer = balancer_trace(stage, len(stage.windows) - 1, deterministic=deterministic)
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
    stage.note("redis", f"kill -9 {master.name} (the master)")
    cluster.kill_redis_master()
    await stage.send(alice, "sent while Redis has no master", reach=[alice])
    await cluster.wait_redis_failover()
    stage.note("sentinels", "+odown: they agree the master is down")
    stage.note("sentinels", "+switch-master: a replica is the new master")
    await wait_resubscribed(cluster, len(cluster.servers))
    stage.note("redis", "every server re-subscribed through a Sentinel")
    client = stage.clients[bob]
    await stage.send(alice, "after the failover")
    async with stage.window(bob, "repair"):
        await client.wait_until(
            lambda: "sent while Redis has no master" in client.received(ROOM), WAIT
        )
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
    stage.note("database", "pg_ctl stop (the primary)")
    await cluster.stop_database()
    errors = len(client.errors)
    async with stage.window(alice, "refused"):
        pending = client.send(
            ROOM, "sent while the primary is down", client_msg_id=stage.next_msg_id(alice)
        )
        await client.wait_until(lambda: len(client.errors) > errors, WAIT)
    standby = cluster.standbys[0]
    stage.note("database", f"pg_ctl promote {standby.name}: the new primary")
    await cluster.promote_replica(0)
    async with stage.window(alice, "retry"):
        await asyncio.wait_for(pending, WAIT)
        for name in (alice, bob):
            other = stage.clients[name]
            await other.wait_until(
                lambda o=other: "sent while the primary is down" in o.received(ROOM), WAIT
            )
    return _part(stage, first, {alice, bob})


def _part(stage: ClusterStage, first: int, people: set[str]) -> Trace:
    """The story from window ``first`` on, chat events between ``people`` and servers."""
    story = stage.story(first)
    events = [e for e in story.events if e.is_self or e.source in people or e.target in people]
    return relabel(Trace(story.lifelines, events), before=stage.story(0, first))
