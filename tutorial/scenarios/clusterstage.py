"""The stage of the cluster stories: a running cluster, tapped on both sides of nginx,
clients placed on its servers, and the story told window by window in a canonical order.

[ClusterStage][tutorial.scenarios.clusterstage.ClusterStage] wraps a
[Cluster][tutorial.cluster.cluster.Cluster] started with ``taps=True`` (wiretaps between
nginx and each server) and adds a [TlsTap][tutorial.trace.tlstap.TlsTap] in front of
nginx. Each action (a client joins, sends, repairs a gap) is a *window* of the trace
that ends only when every request in it has its ACK on the wire;
[ClusterStage.story][tutorial.scenarios.clusterstage.ClusterStage.story] puts each
window's events in a canonical order
([canonical][tutorial.scenarios.clusterstage.canonical]), so that a deterministic run
gives the same picture byte for byte.
[deterministic_trace][tutorial.scenarios.clusterstage.deterministic_trace] normalises
what still varies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from tutorial.client.client import ChatClient
from tutorial.cluster.cluster import Cluster
from tutorial.protocol.layers import Layer
from tutorial.trace.model import Lifeline, Trace, TraceEvent
from tutorial.trace.normalise import Rule, StableNormaliser, stable_trace
from tutorial.trace.tlstap import TlsTap

ROOM = "general"
KINDS = ("browser", "mobile", "desktop")
WAIT = 20.0  # seconds: a wait longer than this is a failure, not a pause
BALANCER = "nginx"

# -- the stage -------------------------------------------------------------------------


async def until(client: ChatClient, test: Callable[[ChatClient], bool]) -> None:
    """Until ``test(client)`` holds (checked at each of its changes), at most ``WAIT``."""
    await client.wait_until(lambda: test(client), WAIT)


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
        for tap in self.cluster.taps:
            tap.recording = on
        if self.tls_tap is not None:
            self.tls_tap.recording = on

    # -- placing clients -------------------------------------------------------------

    async def place(
        self, users: Sequence[str], servers: Sequence[str] | None = None
    ) -> dict[str, str]:
        """A source address per user, so that nginx's sticky hash puts user ``i`` on
        server ``i % N + 1`` (of ``servers``, by name; all of the cluster's by
        default): asked of nginx itself, one ``/healthz`` per address (the hash is
        consistent, so the answer holds for the WebSocket that follows)."""
        servers = list(servers or [s.name for s in self.cluster.servers])
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
                await until(other, lambda o: user in o.members.get(ROOM, []))
        return client

    async def send(self, user: str, text: str, reach: Sequence[str] | None = None) -> Any:
        client = self.clients[user]
        async with self.window(user, "send"):
            ack = await client.send(ROOM, text, client_msg_id=self.next_msg_id(user))
            for name in reach if reach is not None else list(self.clients):
                other = self.clients[name]
                await until(other, lambda o: text in o.received(ROOM))
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


def client_of(e: TraceEvent, kinds: dict[str, str]) -> str:
    """The client end of a wire event (its source or its target)."""
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
    """[stable_trace][tutorial.trace.normalise.stable_trace] for a cluster story. TLS
    records are kept only as the rows
    [collapse_tls][tutorial.scenarios.clusterviews.collapse_tls] made (no ciphertext, no
    sizes): how nginx cuts its bytes into records, and the session tickets it sends,
    change from run to run; so do the taps'
    TCP connection numbers (the probes that placed the clients count too)."""
    kept = (
        e
        for e in trace.events
        if e.layer is not Layer.TCP and (e.layer is not Layer.TLS or "types" in e.fields)
    )
    return stable_trace(Trace(trace.lifelines, kept), "", ClusterNormaliser())
