"""Chapter 6, seed diagram 6: several servers, one Redis carrying broadcasts between them.

``servers`` teaching servers run in this process (port 0 each, one shared SQLite file),
each behind its own [Wiretap][tutorial.trace.wiretap.Wiretap] for its clients and with
its own [RedisTap][tutorial.trace.redistap.RedisTap] between it and one real
``redis-server`` (python-socketio's ``AsyncRedisManager``, channel ``socketio``).
Clients are spread round robin, as a load balancer would: alice on server-1, bob on
server-2, charlie on server-3, diana on server-1 again... All join ``general``.

alice sends "Hello from server-1". The story, numbered:

1. alice → server-1: ``send-message``
2. server-1: validate message / add metadata (and persist: one shared database)
3. server-1: broadcast to room
4. server-1 → its own clients in the room: ``new-message`` (the echo to alice)
5. server-1 → redis: ``PUBLISH socketio`` (the adapter's JSON: emit new-message to
   room general)
6. redis → every other server: the pushed ``message socketio``
7. server-2 → bob, 8. server-3 → charlie, ...: ``new-message``, via Redis

With ``redis=False`` the servers know nothing of each other: bob and charlie never get
alice's message. That is shown, not assumed after a pause: every client then sends
its own message on its own server (``messages`` rounds), and the figures say who
received what on the wire (``received``). A client that got a later message without
the earlier one holds it back, waiting for the missing ``seq`` (``held_back``).

Chapter 6 also runs the multi-process version, behind nginx with sticky sessions:
``tutorial.cluster.Cluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import graphviz

from tutorial.chat import demo
from tutorial.chat.server import ChatServer
from tutorial.client.client import ChatClient
from tutorial.cluster.redis import RedisProcess
from tutorial.compat import start_client_manager, stop_redis_manager
from tutorial.protocol.catalog import Event
from tutorial.protocol.layers import Layer
from tutorial.protocol.resp import reencode
from tutorial.render.architecture import (
    REDIS,
    ClientNode,
    ServerNode,
    Topology,
    architecture_diagram,
)
from tutorial.render.palette import lines
from tutorial.scenarios.base import (
    Harness,
    ScenarioResult,
    mark_story,
    sio_event,
)
from tutorial.trace.model import Trace, TraceEvent
from tutorial.trace.normalise import Rule, StableNormaliser, stable_trace
from tutorial.trace.redistap import RedisTap
from tutorial.trace.spans import ServerSpans
from tutorial.trace.wiretap import Wiretap

ROOM = "general"
TEXT = "Hello from server-1"
KINDS = ("browser", "mobile", "desktop")
NOTE = (
    "Every server of this picture runs in one Python process, with its own wiretap and Redis tap.\n"
    "tutorial.cluster.Cluster runs the same system as separate processes behind nginx."
)
WAIT = 5.0  # seconds: a wait that takes longer than this is a failure, not a pause


def server_id(i: int) -> str:
    return f"server-{i}"


# -- the stage ------------------------------------------------------------------------


@dataclass
class Window:
    """Trace events ``start <= i < end`` were caused by one action on server ``home``."""

    start: int
    end: int
    home: str
    actor: str


class ScalingStage(Harness):
    """Redis, N servers with their taps and spans, clients; ``async with`` cleans up."""

    def __init__(
        self, servers: int, users: Sequence[str], *, redis: bool, deterministic: bool
    ) -> None:
        self.n = servers
        self.users = list(users)
        self.use_redis = redis
        self.home = {u: server_id(i % servers + 1) for i, u in enumerate(users)}
        super().__init__("scaling", deterministic=deterministic, lifelines=self.lifelines())
        self.redis: RedisProcess | None = None
        self.servers: dict[str, ChatServer] = {}
        self.taps: dict[str, Wiretap] = {}
        self.redis_taps: dict[str, RedisTap] = {}
        self.spans: dict[str, ServerSpans] = {}
        self.clients: dict[str, ChatClient] = {}
        self.windows: list[Window] = []

    def lifelines(self) -> list[tuple[str, str, str]]:
        """alice (and server-1's other clients), server-1, redis, then each further
        server followed by its clients: the columns of the story."""
        out: list[tuple[str, str, str]] = []
        for i in range(1, self.n + 1):
            sid = server_id(i)
            mine = [(u, u, "client") for u in self.users if self.home[u] == sid]
            server = (sid, f"Server {i}", "server")
            if i == 1:
                out += [*mine, server]
                if self.use_redis:
                    out.append(("redis", "Redis", "redis"))
            else:
                out += [server, *mine]
        return out

    async def _start(self) -> None:
        self.workdir()
        if self.use_redis:
            self.redis = RedisProcess()
            await asyncio.to_thread(self.redis.start)
        for i in range(1, self.n + 1):
            sid = server_id(i)
            redis_url = None
            if self.redis is not None:
                rtap = RedisTap(
                    self.trace,
                    (self.redis.host, self.redis.port),
                    "redis",
                    sid,
                    client_label=f"Server {i}",
                )
                rtap.recording = False  # on only while a message crosses the servers
                self.redis_taps[sid] = rtap
                await rtap.start()
                redis_url = rtap.url
            spans = ServerSpans(self.trace, sid, server_label=f"Server {i}")
            self.spans[sid] = spans
            config = self.server_config(redis_url=redis_url, name=sid)
            server = ChatServer(config, span=spans)
            self.servers[sid] = server
            port = await server.start()
            tap = Wiretap(
                self.trace,
                ("127.0.0.1", port),
                server_lifeline=sid,
                server_label=f"Server {i}",
            )
            spans.sid_names = tap.sid_names
            self.taps[sid] = tap
            await tap.start()
            if self.redis is not None:
                # python-socketio subscribes when the first client connects; we want
                # every server listening before anything is published.
                start_client_manager(server.sio)
        for rtap in self.redis_taps.values():
            await rtap.wait_subscribed(WAIT)

    def _quiet(self) -> None:
        for tap in self.taps.values():
            tap.recording = False
        for rtap in self.redis_taps.values():
            rtap.recording = False
        for spans in self.spans.values():
            spans.enabled = False

    async def _stop(self) -> None:
        """Close taps, servers, Redis (the clients are closed already)."""
        for tap in self.taps.values():
            await tap.stop()
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                await server.stop()
            await stop_redis_manager(server.sio)
        for rtap in self.redis_taps.values():
            await rtap.stop()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.close)

    # -- actions, each one a window of the trace --------------------------------------

    @contextlib.asynccontextmanager
    async def window(self, actor: str, redis_recording: bool = False) -> Any:
        await self.quiet()
        for rtap in self.redis_taps.values():
            rtap.recording = redis_recording
        start = len(self.trace)
        try:
            yield
            await self.quiet()
        finally:
            for rtap in self.redis_taps.values():
                rtap.recording = False
        self.windows.append(Window(start, len(self.trace), self.home[actor], actor))

    async def quiet(self) -> None:
        """Until every server has had every adapter message pushed to it by Redis (all
        servers subscribed before the first publish, so each gets every one)."""
        taps = list(self.redis_taps.values())
        for rtap in taps:
            await rtap.wait_until(functools.partial(_caught_up, rtap, taps), WAIT)

    async def connect(self, user: str) -> ChatClient:
        tap = self.taps[self.home[user]]
        client = ChatClient(tap.url, user, user, options=self.options(), name=user)
        self.clients[user] = client
        self._opened.append(client)
        async with self.window(user):
            tap.name_next_connection(user)
            await client.connect()
            await client.wait_for_event(Event.CONNECT_CONFIRMED, timeout=WAIT)
        return client

    def reaches(self, sender: str) -> list[str]:
        """Who gets what ``sender`` emits to the room: everyone with Redis, else the
        clients of the sender's own server."""
        return [u for u in self.clients if self.use_redis or self.home[u] == self.home[sender]]

    async def join(self, user: str) -> None:
        client = self.clients[user]
        joined = [u for u in self.clients if ROOM in self.clients[u].offsets and u != user]
        async with self.window(user):
            await client.join(ROOM)
            for other in joined:
                if other in self.reaches(user):
                    c = self.clients[other]
                    await c.wait_until(functools.partial(_is_member, c, ROOM, user), WAIT)

    async def send(self, user: str, text: str) -> dict[str, Any]:
        client = self.clients[user]
        msg_id = self.msg_id(client)
        async with self.window(user, redis_recording=True):
            ack = await client.send(ROOM, text, client_msg_id=msg_id)
            for other in self.reaches(user):
                await self.arrival(other, text)
        return ack

    async def leave(self, user: str) -> None:
        """``user`` closes its client, inside a window: its closing handshake, its TCP
        close and the ``user-left`` every member still connected is sent (through Redis
        to the other servers' clients) are on the trace; the window ends when all of
        them have crossed the wire and its connections are closed on both sides."""
        client = self.clients[user]
        told = [
            other
            for other in self.reaches(user)
            if other != user
            and self.clients[other].state.value == "CONNECTED"
            and user in self.clients[other].members.get(ROOM, [])
        ]
        tap = self.taps[self.home[user]]
        async with self.window(user, redis_recording=self.use_redis):
            await client.close()
            for other in told:
                await self.trace.wait_for(functools.partial(is_user_left, other, user), WAIT)
            await tap.wait_closed(tap.connections_of(user), WAIT)

    def adapter_counts(self) -> dict[str, dict[str, int]]:
        """Adapter messages each server published to and was pushed by Redis so far."""
        return {
            s: {"published": len(t.published), "pushed": len(t.pushed)}
            for s, t in self.redis_taps.items()
        }

    async def arrival(self, user: str, text: str) -> None:
        """Until the tap has seen ``new-message`` with ``text`` reach ``user``'s socket.

        The wire, not the client's delivered list: a client holds back a message whose
        ``seq`` follows a gap (it waits for the missing one), but it did receive it.
        """
        try:
            await self.trace.wait_for(lambda e: is_delivery(e, user, text), WAIT)
        except TimeoutError:
            raise TimeoutError(f"{text!r} did not reach {user}") from None


def _caught_up(rtap: RedisTap, taps: Sequence[RedisTap]) -> bool:
    """``rtap``'s server was pushed every adapter message any server published."""
    return len(rtap.pushed) >= sum(len(t.published) for t in taps)


def _is_member(client: ChatClient, room: str, user: str) -> bool:
    return user in client.members.get(room, [])


def delivery_text(event: TraceEvent) -> str | None:
    """The text of a ``new-message`` Socket.IO EVENT a server sent to a client."""
    if not sio_event(event, Event.NEW_MESSAGE):
        return None
    args = event.fields.get("args")
    if isinstance(args, list | tuple) and args and isinstance(args[0], dict):
        text = args[0].get("text")
        return text if isinstance(text, str) else None
    return None


def is_delivery(event: TraceEvent, user: str, text: str) -> bool:
    return event.target == user and delivery_text(event) == text


def is_user_left(target: str, user: str, event: TraceEvent) -> bool:
    """A ``user-left {roomId: general, user}`` on its way to ``target``'s socket."""
    if event.target != target or not sio_event(event, Event.USER_LEFT):
        return False
    args = event.fields.get("args")
    return isinstance(args, list | tuple) and args == [{"roomId": ROOM, "user": user}]


# -- canonical order -------------------------------------------------------------------


def _group(event: TraceEvent, window: Window, home: dict[str, str], kinds: dict[str, str]) -> int:
    """The causal stage of an event within one action: what the actor sent (0), its
    server's own steps (1), that server's answers to its own clients (2), the PUBLISH
    (3), Redis's pushes (4), other servers' deliveries (5), the replies (acks) to the
    actor (6)."""
    if event.is_self:
        return 1 if event.source == window.home else 5
    if "redis" in (event.source, event.target):
        return 3 if event.target == "redis" else 4
    if kinds.get(event.source) == "client":
        return 0
    client = event.target
    if client == window.actor and event.layer is Layer.SIO and event.fields.get("type") == "ACK":
        return 6
    return 2 if home.get(client) == window.home else 5


def _stream(event: TraceEvent, kinds: dict[str, str]) -> str:
    """Events of one stream keep their recorded order: one client's connection, one
    server's Redis connections, one server's notes."""
    if event.is_self:
        return f"notes:{event.source}"
    if "redis" in (event.source, event.target):
        server = event.target if event.source == "redis" else event.source
        return f"redis:{server}"
    client = event.source if kinds.get(event.source) == "client" else event.target
    return f"wire:{client}"


def canonical_order(trace: Trace, windows: Sequence[Window], home: dict[str, str]) -> Trace:
    """Within each window, merge the streams by causal stage, then column.

    Each stream (a client's connection, a server's Redis connections, a server's
    notes) keeps its own order; only the interleaving of streams, which the scheduler
    decides, is made canonical. Wire events (frame, Engine.IO, Socket.IO) of one
    packet take the stage of the Socket.IO packet they carry.
    """
    column = {lf.id: i for i, lf in enumerate(trace.lifelines)}
    kinds = {lf.id: lf.kind for lf in trace.lifelines}
    events = list(trace.events)
    for w in windows:
        part = events[w.start : w.end]
        streams: dict[str, list[int]] = {}
        for i, e in enumerate(part):
            streams.setdefault(_stream(e, kinds), []).append(i)
        keys: dict[int, tuple[int, int, str]] = {}
        for name, members in streams.items():
            # A packet's carriers (frame, Engine.IO) take the stage of what they carry:
            # the next Socket.IO/app event of the stream in the same direction.
            following: dict[str, int] = {}
            for i in reversed(members):
                e = part[i]
                direction = "up" if kinds.get(e.source) == "client" else "down"
                if e.layer in (Layer.SIO, Layer.APP) or e.is_self:
                    following[direction] = _group(e, w, home, kinds)
                group = following.get(direction, _group(e, w, home, kinds))
                other = e.target if direction == "down" else e.source
                keys[i] = (group, column.get(other, 0), name)
        heads = {name: 0 for name in streams}
        merged: list[TraceEvent] = []
        while heads:
            best = min(heads, key=lambda s: keys[streams[s][heads[s]]])
            merged.append(part[streams[best][heads[best]]])
            heads[best] += 1
            if heads[best] == len(streams[best]):
                del heads[best]
        events[w.start : w.end] = merged
    return Trace(trace.lifelines, events)


class ScalingNormaliser(StableNormaliser):
    """Also numbers python-socketio's ``host_id`` (one per server): ``host-1``..."""

    def __init__(self) -> None:
        super().__init__()
        host = Rule(
            "host-id",
            re.compile(r'"host_id"\s*:\s*"(?P<value>[0-9a-f]{32})"'),
            "python-socketio's host_id in an adapter message",
            numbered="host",
        )
        self.rules = (host, *self.rules)
        self.numbers["host"] = {}


def stable(trace: Trace, normaliser: ScalingNormaliser) -> Trace:
    """[stable_trace][tutorial.trace.normalise.stable_trace], plus Redis commands re-encoded with
    normalised payloads
    (a normalised JSON has another length: the RESP length prefix must follow)."""
    normal = stable_trace(trace, "", normaliser)
    events = []
    for before, after in zip(trace.events, normal.events, strict=True):
        if before.raw is not None and "redis" in (before.source, before.target):
            after = replace(after, raw=reencode(before.raw, normaliser.text))
        events.append(after)
    return Trace(normal.lifelines, events)


# -- the scenario -------------------------------------------------------------------------


async def run(
    servers: int = 3,
    clients: int = 4,
    redis: bool = True,
    *,
    messages: int = 1,
    text: str = TEXT,
    deterministic: bool = False,
) -> ScenarioResult:
    """``clients`` users on ``servers`` servers (round robin) join ``general``; alice
    sends ``text``; then ``messages`` rounds in which every user sends one message
    (alice's first one is ``text``). ``redis=False``: no Redis at all."""
    if not 1 <= servers <= 9:
        raise ValueError("servers must be between 1 and 9")
    if not 1 <= clients <= len(demo.USERS):
        raise ValueError(f"clients must be between 1 and {len(demo.USERS)}")
    if messages < 1:
        raise ValueError("messages must be at least 1")
    users = demo.USERS[:clients]
    sender = users[0]
    async with ScalingStage(servers, users, redis=redis, deterministic=deterministic) as stage:
        for user in users:
            await stage.connect(user)
        for user in users:
            await stage.join(user)
        sent: list[tuple[str, str]] = []
        for n in range(1, messages + 1):
            for user in users:
                body = text if (n, user) == (1, sender) else f"{user} #{n} on {stage.home[user]}"
                await stage.send(user, body)
                sent.append((user, body))
        redis_messages = stage.adapter_counts()  # the chat's, before the goodbyes
        for user in users:  # the rest of each connection's life, on the trace
            await stage.leave(user)
        story = next(w for w in stage.windows if w.actor == sender and _is_send(stage, w))
        ordered = canonical_order(stage.trace, stage.windows, stage.home)
        trace = mark_story(ordered, story.start, story.end, _relabel(sender, text, stage.home))
        if not redis:
            trace = _mark_markers(trace, stage, sent)
        figures = await _figures(stage, trace, sent, text, redis_messages)
        seconds = stage.seconds()
    if deterministic:
        normaliser = ScalingNormaliser()
        trace = stable(trace, normaliser)
        figures = {k: normaliser.value(v, k) for k, v in figures.items()}
    else:
        figures["seconds"] = seconds
    how = "Redis carries it to the others" if redis else "no Redis: the others never see it"
    return ScenarioResult(
        "scaling",
        trace,
        figures,
        story=True,
        layers="chat",
        title=f"Seed diagram 6: one message, {servers} servers ({how})",
        extras={"architecture": draw_architecture},
        deterministic=deterministic,
        seconds=seconds,
    )


def _is_send(stage: ScalingStage, w: Window) -> bool:
    return any(sio_event(e, Event.SEND_MESSAGE) for e in stage.trace.events[w.start : w.end])


def _relabel(
    sender: str, text: str, home: dict[str, str]
) -> Callable[[TraceEvent], dict[str, Any] | None]:
    origin = home[sender]
    others = sorted({s for s in home.values() if s != origin}, key=lambda s: int(s.split("-")[1]))

    def relabel(e: TraceEvent) -> dict[str, Any] | None:
        if sio_event(e, Event.SEND_MESSAGE) and e.source == sender:
            return {"step": 1, "label": f'send-message "{text}"'}
        if e.is_self:
            return None  # the server's own steps 2 and 3 keep their numbers
        if delivery_text(e) == text and e.source == origin:
            what = "echo to sender" if e.target == sender else f"same server as {sender}"
            return {"step": 4, "label": f"new-message ({what})"}
        if e.layer is Layer.APP and e.source == origin and e.target == "redis":
            return {"step": 5}
        if e.layer is Layer.APP and e.source == "redis" and e.target != origin:
            return {"step": 6}
        if delivery_text(e) == text and e.source in others:
            return {"step": 7 + others.index(e.source), "label": "new-message (via Redis)"}
        return None

    return relabel


def _mark_markers(trace: Trace, stage: ScalingStage, sent: list[tuple[str, str]]) -> Trace:
    """Without Redis, the story goes on: the first client of every other server sends
    on its own server, and gets only its own message back (the proof of absence)."""
    sender = stage.users[0]
    markers: dict[str, str] = {}
    for user, body in sent:
        server = stage.home[user]
        if server != stage.home[sender] and server not in {stage.home[u] for u in markers}:
            markers[user] = body
    step = 5
    events = list(trace.events)
    for user, body in markers.items():
        window = next(w for w in stage.windows if w.actor == user and _is_send(stage, w))
        for i in range(window.start, window.end):
            e = events[i]
            if sio_event(e, Event.SEND_MESSAGE) and e.source == user:
                events[i] = replace(e, step=step, label=f'send-message "{body}"')
            elif e.target == user and delivery_text(e) == body:
                label = f'new-message, but no "{_first(sent)}" before it'
                events[i] = replace(e, step=step + 1, label=label)
        step += 2
    return Trace(trace.lifelines, events)


def _first(sent: list[tuple[str, str]]) -> str:
    return sent[0][1]


async def _figures(
    stage: ScalingStage,
    trace: Trace,
    sent: list[tuple[str, str]],
    text: str,
    redis_messages: dict[str, dict[str, int]],
) -> dict[str, Any]:
    received: dict[str, list[str]] = {u: [] for u in stage.users}
    via_redis = 0
    sender_of = {body: user for user, body in sent}
    for e in trace.events:
        body = delivery_text(e)
        if body is None or e.target not in received:
            continue
        received[e.target].append(body)
        if stage.home[e.target] != stage.home[sender_of.get(body, e.target)]:
            via_redis += 1
    held = {u: c.held_back(ROOM) for u, c in stage.clients.items()}
    first = next(iter(stage.servers.values()))
    rows = await first.store.count_messages()
    rows_by_server = {s: 0 for s in stage.servers}
    for user, _ in sent:
        rows_by_server[stage.home[user]] += 1
    deliveries = sum(len(v) for v in received.values())
    return {
        "servers": list(stage.servers),
        "redis": stage.use_redis,
        "room": ROOM,
        "text": text,
        "distribution": dict(stage.home),
        "received": received,
        "reached_by_first_message": sorted(u for u, texts in received.items() if text in texts),
        "held_back": {u: texts for u, texts in held.items() if texts},
        "messages_sent": len(sent),
        "deliveries": deliveries,
        "deliveries_via_redis": via_redis,
        "redis_messages": redis_messages,
        "rows_stored": rows,
        "stored_rows": rows,  # the name chapter 6's first version used
        "rows_by_server": rows_by_server,
        "note": NOTE,
    }


# -- the architecture view -------------------------------------------------------------


def draw_architecture(result: ScenarioResult) -> graphviz.Digraph:
    """Clients → servers → Redis → database, with what this run counted on each link."""
    f = result.figures
    received: dict[str, list[str]] = f["received"]
    per_user = f["messages_sent"] // max(1, len(f["distribution"]))
    kinds = {u: KINDS[i % len(KINDS)] for i, u in enumerate(f["distribution"])}
    # Clients grouped by their server, servers in order: the links do not cross.
    order = {s: i for i, s in enumerate(f["servers"])}
    users = sorted(f["distribution"], key=lambda u: order[f["distribution"][u]])
    clients = [ClientNode(u, u, kinds[u]) for u in users]
    edges: dict[tuple[str, str], str] = {}
    for u in users:
        edges[(u, f["distribution"][u])] = f"sent {per_user}, got {len(received.get(u, []))}"
    servers = [ServerNode(s, f"Server {s.split('-')[1]} (Python)") for s in f["servers"]]
    for s, counts in (f.get("redis_messages") or {}).items():
        edges[(s, REDIS)] = f"{counts['published']} published, {counts['pushed']} received"
    for s, rows in f["rows_by_server"].items():
        edges[(s, "database")] = f"{rows} row{'' if rows == 1 else 's'}"
    topology = Topology(
        clients=clients,
        servers=servers,
        redis="channel socketio" if f["redis"] else None,
        database=f"one SQLite file ({f['rows_stored']} rows)",
        edges=edges,
    )
    how = "with Redis" if f["redis"] else "without Redis"
    g = architecture_diagram(
        topology, title=f"Seed diagram 6: {len(servers)} servers {how} (live counts)"
    )
    g.attr(label=lines(*f["note"].split("\n")), labelloc="b", fontsize="10")
    return g
