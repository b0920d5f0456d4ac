"""Fault drills on the whole of seed diagram 6, checked from the wire.

Each drill takes a running [Cluster][tutorial.cluster.cluster.Cluster] started with
``taps=True`` (so every Socket.IO packet between nginx and the servers is recorded),
gives itself a fresh room, connects teaching clients through nginx (TLS, sticky
sessions, each from its own loopback address), breaks one part under load, and returns
a [DrillReport][tutorial.cluster.drills.DrillReport]: the seconds it took to recover, and the
[check_delivery][tutorial.cluster.ledger.check_delivery] verdict over what crossed the wire
(it raises [DeliveryError][tutorial.cluster.ledger.DeliveryError] if anything acknowledged
was lost, duplicated or reordered, or if a client was told that another one, still in
the room, had left: [check_presence][tutorial.cluster.ledger.check_presence]).

* [redis_failover][tutorial.cluster.drills.redis_failover]: ``kill -9`` the Redis
  master; the Sentinels promote a replica; cross-server delivery resumes; gaps are
  repaired.
* [replica_lag][tutorial.cluster.drills.replica_lag]: standbys stop replaying; a join
  reads a stale history; the client's seq shows the gap and ``atLeast`` reads the
  primary.
* [replica_down][tutorial.cluster.drills.replica_down]: stop one standby; history reads
  fall back.
* [primary_down][tutorial.cluster.drills.primary_down]: stop the primary:
  ``store_unavailable``, the outbox holds; promote a standby; the held messages are
  acked, none lost.

Drills can share one cluster: each leaves it whole again, except
[primary_down][tutorial.cluster.drills.primary_down],
which leaves the promoted standby as the primary (run it last).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tutorial.chat.store import Message, open_store
from tutorial.client.client import ChatClient, ClientOptions
from tutorial.client.recovery import Backoff
from tutorial.cluster.cluster import Cluster, client_address
from tutorial.cluster.ledger import (
    DeliveryReport,
    Ledger,
    check_delivery,
    check_presence,
    cross_server_resumed,
    read_ledger,
)
from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace, TraceEvent

USERS = ("alice", "bob", "charlie", "diana", "eve", "frank", "grace")
_rooms = itertools.count(1)


@dataclass
class DrillReport:
    """What a drill measured, and the wire's verdict."""

    name: str
    room: str
    figures: dict[str, Any]
    delivery: DeliveryReport
    #: The drill's slice of the cluster's trace, with the fault and the back ends'
    #: own events as notes: what its sequence diagram draws.
    trace: Trace
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in self.figures.items())
        return f"{self.name}: {figures}; {self.delivery.line()}"


def _fmt(value: Any) -> str:
    return f"{value:.2f} s" if isinstance(value, float) else str(value)


# -- shared steps ------------------------------------------------------------------------


def drill_options(cluster: Cluster, i: int) -> ClientOptions:
    """Quick retries, so a drill takes seconds; client ``i``'s own source address."""
    return cluster.client_options(
        i,
        backoff=Backoff(base=0.1, factor=2.0, cap=1.0, jitter=0.5),
        max_retries=30,
        ack_timeout=2.0,
        gap_timeout=0.3,
        seed=i,
    )


async def new_room(cluster: Cluster, prefix: str) -> str:
    """A fresh open room (seqs from 1), created on the primary."""
    assert cluster.db_url is not None
    room = f"{prefix}-{next(_rooms)}-{int(time.time() * 1000) % 100000}"
    store = open_store(cluster.db_url)
    await store.open()
    try:
        await store.add_room(room, private=False, members=[])
    finally:
        await store.close()
    return room


async def stored(cluster: Cluster, room: str) -> list[Message]:
    """The room's history as the (current) primary has it."""
    assert cluster.db_url is not None
    store = open_store(cluster.db_url)
    await store.open()
    try:
        return await store.history(room, since=0, limit=100_000)
    finally:
        await store.close()


async def connect(cluster: Cluster, users: Sequence[str], room: str) -> list[ChatClient]:
    """One teaching client per user, through nginx, each joined to ``room``."""
    clients = []
    try:
        for user in users:
            i = USERS.index(user)
            cluster.name_client(client_address(i), user)
            client = ChatClient(cluster.url, user, user, options=drill_options(cluster, i))
            clients.append(client)
            await client.connect()
            await client.join(room)
    except BaseException:
        await close(clients)
        raise
    return clients


async def close(clients: Sequence[ChatClient]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):  # best effort: the drill's verdict is made
            await client.close()


async def chatter(
    client: ChatClient, room: str, count: int, pace: float, tag: str = ""
) -> list[dict[str, Any]]:
    """Send ``count`` messages at a steady pace (below the rate limit); wait for every
    ack (the outbox resends what a broken part never answered)."""
    futures = []
    for k in range(count):
        futures.append(client.send(room, f"{client.name}{tag}#{k}"))
        await asyncio.sleep(pace)  # pacing the load, not waiting for anything
    return list(await asyncio.wait_for(asyncio.gather(*futures), 60))


async def all_delivered(
    clients: Sequence[ChatClient], room: str, last: int, timeout: float
) -> None:
    """Until every client's delivery reached seq ``last`` (gaps repaired on the way)."""

    def reached(client: ChatClient) -> Callable[[], bool]:
        return lambda: client.offsets.get(room, 0) >= last

    for client in clients:
        try:
            await client.wait_until(reached(client), timeout)
        except TimeoutError:
            held = client.held_back(room)
            raise TimeoutError(
                f"{client.name}: delivered up to seq {client.offsets.get(room)} of {last}, "
                f"holding {len(held)} later messages, state {client.state}"
            ) from None


def verdict(
    cluster: Cluster,
    start: int,
    room: str,
    clients: Sequence[ChatClient],
    history: list[Message],
    first_seq: dict[str, int] | None = None,
) -> tuple[Ledger, DeliveryReport]:
    """The wire's ledger of the drill, checked: every delivery promise, and nobody
    announced gone while every client stayed in the room."""
    events = cluster.trace.events[start:]
    ledger = read_ledger(events, room, [c.name for c in clients])
    delivered = {c.name: c.messages.get(room, []) for c in clients}
    report = check_delivery(ledger, history, delivered, first_seq)
    check_presence(ledger, stayed=[c.name for c in clients])
    return ledger, report


def _slice(cluster: Cluster, start: int, notes: list[TraceEvent]) -> Trace:
    """The drill's events (wire and notes) in time order."""
    events = sorted([*cluster.trace.events[start:], *notes], key=lambda e: e.t)
    trace = Trace(cluster.trace.lifelines)
    for lid, label, kind in _BACKEND_LIFELINES:
        trace.add_lifeline(lid, label, kind)
    return Trace(trace.lifelines, events)


_BACKEND_LIFELINES = (
    ("redis", "Redis master", "redis"),
    ("sentinels", "Sentinels", "redis"),
    ("database", "PostgreSQL", "store"),
)


def _note(cluster: Cluster, lifeline: str, label: str, t: float | None = None) -> TraceEvent:
    return cluster.trace.new_event(lifeline, lifeline, Layer.APP, label, kind="note", t=t)


def _trace_time(cluster: Cluster, monotonic: float) -> float:
    return round(cluster.trace.elapsed() - (time.monotonic() - monotonic), 6)


def _servers_of(clients: Sequence[ChatClient], distribution: dict[str, str]) -> set[str]:
    return {distribution.get(c.name, "?") for c in clients}


# -- the drills ---------------------------------------------------------------------------


async def redis_failover(
    cluster: Cluster,
    users: Sequence[str] = USERS[:6],
    messages: int = 20,
    pace: float = 0.15,
) -> DrillReport:
    """``kill -9`` the Redis master while everybody chats.

    The servers keep acknowledging (the store has every message); what they publish
    while there is no master is lost on the way to the other servers. The Sentinels
    agree the master is down and promote a replica; python-socketio's listener
    re-subscribes through a Sentinel, which names the new master; each client that
    missed something sees a seq gap behind the next message and fetches the rest from
    the store. Measured: seconds until the Sentinels named the new master, and until a
    message sent after the kill crossed servers live again.
    """
    assert cluster.redis_ha is not None, "the drill needs Redis replicas and Sentinels"
    room = await new_room(cluster, "drill-redis")
    clients = await connect(cluster, users, room)
    start = len(cluster.trace)
    notes: list[TraceEvent] = []
    try:
        distribution = await cluster.distribution()
        if len(_servers_of(clients, distribution)) < 2:
            raise RuntimeError(f"clients all on one server, nothing crosses Redis: {distribution}")
        senders = [asyncio.create_task(chatter(c, room, messages, pace)) for c in clients]
        watcher = clients[0]
        await watcher.wait_until(lambda: len(watcher.received(room)) >= len(clients) * 3, 30)

        master = cluster.redis_ha.master()
        events_before = len(cluster.redis_watch.events) if cluster.redis_watch else 0
        t_kill = cluster.trace.elapsed()
        killed_at = time.monotonic()
        cluster.kill_redis_master()
        notes.append(_note(cluster, "redis", f"kill -9 {master.name} (the master)", t_kill))
        new_port = await cluster.wait_redis_failover()
        failover_s = time.monotonic() - killed_at
        promoted = cluster.redis_ha.node(new_port)
        for event in (cluster.redis_watch.events if cluster.redis_watch else [])[events_before:]:
            if event.sentinel == "sentinel-1" or event.event == "+switch-master":
                label = f"{event.event} {_short(event.detail)}"
                notes.append(_note(cluster, "sentinels", label, _trace_time(cluster, event.t)))
        await asyncio.wait_for(asyncio.gather(*senders), 90)
        # Cross-server delivery resumes when the servers' listeners have re-subscribed
        # (python-socketio retries after 1, 2, 4 ... s): probe until one crosses live.
        await probe_cross_server(cluster, start, room, clients, t_kill)
        # One more message each: a gap at the very end shows too.
        for client in clients:
            await client.send(room, f"{client.name} done")
        history = await stored(cluster, room)
        await all_delivered(clients, room, history[-1].seq, 30)
        ledger, report = verdict(cluster, start, room, clients, history)
        resumed = cross_server_resumed(ledger, t_kill)
        await cluster.rejoin_redis(master)
        figures = {
            "killed": master.name,
            "promoted": promoted.name,
            "failover_s": round(failover_s, 2),
            "cross_server_resumed_s": round(resumed, 2) if resumed is not None else None,
            "sent": len(history),
            "acked": len(ledger.acked),
            "lost_acked": 0,
            "gaps_repaired": sum(len(v) for v in report.repaired.values()),
        }
        return DrillReport(
            "redis master killed", room, figures, report, _slice(cluster, start, notes)
        )
    finally:
        await close(clients)


async def probe_cross_server(
    cluster: Cluster,
    start: int,
    room: str,
    clients: Sequence[ChatClient],
    since: float,
    timeout: float = 60.0,
) -> None:
    """Send probes from the first client until a message acknowledged after ``since``
    reaches a client *live* from another server than the one that acknowledged it (a
    ``new-message`` on the wire, not a repair's history): Redis carries again."""
    sender = clients[0]
    names = [c.name for c in clients]
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        k += 1
        ack = await sender.send(room, f"probe {k}")  # its ACK is on the trace already
        ledger = read_ledger(cluster.trace.events[start:], room, names)
        if cross_server_resumed(ledger, since) is not None:
            return
        origin = next((ledger.acked_by[m] for m, s in ledger.acked.items() if s == ack["seq"]), "")
        try:  # up to 0.5 s for this probe to cross: woken by the trace, not polled
            await cluster.trace.wait_for(
                functools.partial(_crossed, set(names), origin, ack["seq"]), 0.5
            )
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"no message crossed servers live within {timeout:.0f} s")


def _crossed(clients: set[str], origin: str, seq: int, e: TraceEvent) -> bool:
    """A ``new-message`` of ``seq`` reaching one of ``clients`` from a server other than
    ``origin`` (the one that acknowledged it): it crossed through Redis."""
    if e.layer is not Layer.SIO or e.target not in clients or e.source == origin:
        return False
    if e.fields.get("type") != "EVENT" or e.fields.get("event") != "new-message":
        return False
    args = e.fields.get("args")
    message = args[0] if isinstance(args, list | tuple) and args else None
    return isinstance(message, dict) and message.get("seq") == seq


def _short(detail: str) -> str:
    words = detail.split()
    return " ".join(w for w in words if w != "chat")[:60]


async def replica_lag(cluster: Cluster, users: Sequence[str] = ("alice", "bob")) -> DrillReport:
    """Replication lag, on purpose, and how the per-room seq keeps clients correct.

    Both standbys stop replaying WAL (``pg_wal_replay_pause()``). alice's message is
    acknowledged by the primary; bob joins the room, and the server reads his history
    from a standby: it stops short (a consistent, stale prefix). alice's next message
    reaches bob live, with a seq that shows him the gap; his client asks again with
    ``join-room {since, atLeast}``, the standby is still behind ``atLeast``, and the
    server reads the primary. Then replay resumes and the lag drains.
    """
    assert len(cluster.standbys) >= 1, "the drill needs PostgreSQL standbys"
    room = await new_room(cluster, "drill-lag")
    writer, reader = users[0], users[1]
    clients = await connect(cluster, [writer], room)
    start = len(cluster.trace)
    notes: list[TraceEvent] = []
    paused = False
    try:
        paused = True  # set first: a pause that fails halfway must be undone too
        for i in range(len(cluster.standbys)):
            await cluster.pause_replay(i)
        notes.append(_note(cluster, "database", "standbys pause WAL replay (lag on purpose)"))
        first = await clients[0].send(room, "written to the primary")
        state = await cluster.snapshot()
        rows = {n["name"]: n.get("rows") for n in state["database"]["nodes"]}
        lag = {
            n["name"]: n.get("lag_bytes") for n in state["database"]["nodes"] if "lag_bytes" in n
        }
        late = await connect(cluster, [reader], room)
        clients += late
        bob = late[0]
        stale = [m["seq"] for m in bob.messages.get(room, [])]
        second_sent = time.monotonic()
        second = await clients[0].send(room, "the next message shows the gap")
        await all_delivered([bob], room, second["seq"], 20)
        repaired_s = time.monotonic() - second_sent
        for i in range(len(cluster.standbys)):
            await cluster.resume_replay(i)
        paused = False
        notes.append(_note(cluster, "database", "standbys resume replay"))
        history = await stored(cluster, room)
        await all_delivered(clients, room, history[-1].seq, 10)
        _, report = verdict(cluster, start, room, clients, history)
        figures = {
            "acked_seq": first["seq"],
            "rows_while_paused": rows,
            "lag_bytes": lag,
            "stale_history_seqs": stale,
            "repaired_s": round(repaired_s, 2),
            "stale_reads_sent_to_primary": await _read_stat(cluster, "stale"),
        }
        return DrillReport("replica lag", room, figures, report, _slice(cluster, start, notes))
    finally:
        if paused:  # a failed drill must not leave the next one reading paused standbys
            for i in range(len(cluster.standbys)):
                with contextlib.suppress(Exception):
                    await cluster.resume_replay(i)
        await close(clients)


async def _read_stat(cluster: Cluster, key: str) -> int:
    return sum(int(s.get("store", {}).get(key, 0)) for s in (await cluster.stats()).values())


async def replayed(cluster: Cluster, room: str, seq: int, timeout: float = 10.0) -> None:
    """Until every standby has replayed ``room`` up to ``seq``. PostgreSQL tells no client
    when a standby applies WAL, so each standby is asked until its answer holds ``seq``."""
    deadline = time.monotonic() + timeout
    quoted = room.replace("'", "''")
    query = f"SELECT coalesce(max(seq), 0) FROM messages WHERE room_id = '{quoted}'"
    for standby in cluster.standbys:
        while int((await asyncio.to_thread(standby.psql, query)).strip() or 0) < seq:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{standby.name} has not replayed seq {seq} of {room}")
            await asyncio.sleep(0.05)


async def replica_down(
    cluster: Cluster, users: Sequence[str] = ("alice", "bob"), reads: int = 6
) -> DrillReport:
    """Stop one standby: history reads fall back to the other one (or the primary).

    alice sends a few messages; standby ``replica-1`` is stopped (``pg_ctl stop``);
    bob joins and re-reads the room's history ``reads`` times; every read is complete.
    Then the standby starts again and catches up.
    """
    assert cluster.standbys, "the drill needs PostgreSQL standbys"
    room = await new_room(cluster, "drill-standby")
    clients = await connect(cluster, users[:1], room)
    start = len(cluster.trace)
    notes: list[TraceEvent] = []
    try:
        for k in range(3):
            ack = await clients[0].send(room, f"before #{k}")
        # The lesson here is the fallback, not lag (replica_lag shows that): every standby
        # holds the three messages before one stops, so a read from either is complete.
        await replayed(cluster, room, int(ack["seq"]))
        fallbacks_before = await _read_stat(cluster, "fallbacks")
        await cluster.stop_replica(0)
        notes.append(_note(cluster, "database", f"pg_ctl stop {cluster.standbys[0].name}"))
        stopped = time.monotonic()
        late = await connect(cluster, users[1:2], room)
        clients += late
        first_read_s = time.monotonic() - stopped
        bob = late[0]
        for _ in range(reads):
            await bob.call("join-room", {"roomId": room, "since": 0})
        history = await stored(cluster, room)
        await all_delivered(clients, room, history[-1].seq, 10)
        fallbacks = await _read_stat(cluster, "fallbacks") - fallbacks_before
        await cluster.start_replica(0)
        notes.append(_note(cluster, "database", f"{cluster.standbys[0].name} back, catching up"))
        _, report = verdict(cluster, start, room, clients, history)
        figures = {
            "stopped": cluster.standbys[0].name,
            "join_after_stop_s": round(first_read_s, 2),
            "history_reads": reads + 1,
            "fallbacks": fallbacks,
        }
        return DrillReport("standby stopped", room, figures, report, _slice(cluster, start, notes))
    finally:
        await close(clients)


async def primary_down(
    cluster: Cluster,
    users: Sequence[str] = USERS[:4],
    messages: int = 12,
    pace: float = 0.15,
    promote: int = 0,
) -> DrillReport:
    """Stop the primary under load, then the documented promotion step.

    ``pg_ctl stop`` the primary (a clean stop: it sends the standbys all its WAL first).
    Every write now fails: senders get ``error store_unavailable`` and their outbox
    keeps the message and retries.
    [Cluster.promote_replica][tutorial.cluster.cluster.Cluster.promote_replica] runs
    ``pg_ctl promote`` on a standby; the servers' write URL lists every host with
    ``target_session_attrs=read-write``, so their next connection finds it. The held
    messages are acknowledged, and the checker proves nothing acknowledged was lost.
    Leaves the promoted standby as the primary.
    """
    assert cluster.standbys, "the drill needs PostgreSQL standbys"
    room = await new_room(cluster, "drill-primary")
    clients = await connect(cluster, users, room)
    start = len(cluster.trace)
    notes: list[TraceEvent] = []
    try:
        senders = [asyncio.create_task(chatter(c, room, messages, pace)) for c in clients]
        watcher = clients[0]
        await watcher.wait_until(lambda: len(watcher.received(room)) >= len(clients) * 2, 30)
        before = sum(len(c.errors) for c in clients)
        notes.append(_note(cluster, "database", "pg_ctl stop (the primary)"))
        stopped_at = time.monotonic()
        await cluster.stop_database()
        await watcher.wait_until(
            lambda: any(e.code == "store_unavailable" for e in watcher.errors[before:]), 20
        )
        refused = sum(e.code == "store_unavailable" for c in clients for e in c.errors)
        held = sum(len(c.outbox) for c in clients)
        standby = cluster.standbys[promote]
        t_promote = cluster.trace.elapsed()
        notes.append(_note(cluster, "database", f"pg_ctl promote {standby.name}", t_promote))
        promoted_at = time.monotonic()
        await cluster.promote_replica(promote)
        await asyncio.wait_for(asyncio.gather(*senders), 90)
        history = await stored(cluster, room)
        await all_delivered(clients, room, history[-1].seq, 20)
        ledger, report = verdict(cluster, start, room, clients, history)
        after = [t for t in ledger.acked_at.values() if t > t_promote]
        figures = {
            "store_unavailable_answers": refused,
            "held_in_outboxes": held,
            "outage_s": round(promoted_at - stopped_at, 2),
            "writes_resumed_after_promotion_s": round(min(after) - t_promote, 2) if after else None,
            "promoted": standby.name,
            "acked": len(ledger.acked),
            "lost_acked": 0,
        }
        return DrillReport("primary stopped", room, figures, report, _slice(cluster, start, notes))
    finally:
        await close(clients)
