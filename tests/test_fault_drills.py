"""Fault drills on a real cluster (nginx, three ``tutorial serve`` processes, redis-server,
a shared store), judged from what crossed the wire. Each drill is bounded and stops by
itself; nothing sleeps to synchronise (the senders pace their load, every wait is on a
condition with a timeout).

The cluster runs with ``taps=True``: a wiretap in front of each server records every
Socket.IO packet. The verdict is [tutorial.cluster.ledger][]'s, over that trace (not
over the clients' own lists, which drop a repeated seq and hold early messages back):
no acknowledged message lost, none duplicated, order kept, every client's
application got exactly what its wire brought; and a recovery time, measured on the
wire, within a stated bound. The last test feeds the same checker the kill drill's
own wire with one message lost, one doubled and one swapped, and sees each fail.

1. ``kill -9`` one of three servers while everybody chats: its clients go RECONNECTING,
   nginx sends them to a survivor, the server re-joins their rooms and replays what
   they missed. Bound: a new session within ``KILL_RECOVERY_S``.
2. Restart Redis: cross-server delivery resumes once python-socketio's listener has
   re-subscribed (it retries after 1, 2, 4 ... s). A message published while Redis was
   away is lost *on the wire* for the other servers' clients: they see a seq gap (the
   client holds later messages back, in order) and the store repairs it (a re-join's
   history). Bound: a message crosses servers live again within ``REDIS_RECOVERY_S``
   of redis-server being back.
3. Stop the database (PostgreSQL): senders get ``error store_unavailable``, their
   outbox keeps the message and retries; nothing acknowledged is lost. Bound: the
   held message is acknowledged on the wire within ``DATABASE_RECOVERY_S`` of the
   database being back.

Run with ``-s`` to see the measured times.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from skips import needs

from tutorial.chat.store import Message
from tutorial.client.client import ChatClient
from tutorial.client.states import State
from tutorial.cluster import drills
from tutorial.cluster.cluster import Cluster
from tutorial.cluster.ledger import (
    DeliveryError,
    check_delivery,
    check_recovery,
    cross_server_resumed,
    read_ledger,
)
from tutorial.protocol.layers import Layer
from tutorial.trace.model import TraceEvent

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

USERS = drills.USERS

KILL_RECOVERY_S = 10.0
"""A client of a killed server has a new session within this many seconds. Its backoff
starts at 0.1 s and caps at 1 s, and nginx passes a refused connection to the next
server at once: about 0.3 s on an idle machine; the rest is margin for a loaded one."""

REDIS_RECOVERY_S = 15.0
"""A message crosses servers live again within this many seconds of redis-server being
back: python-socketio's listener re-subscribes after 1, 2, 4 ... s (the wait doubles
while Redis is away), so about 1-4 s; the rest is margin for a loaded machine."""

DATABASE_RECOVERY_S = 10.0
"""A message held in the outbox during a database outage is acknowledged within this
many seconds of the database being back: the outbox resends with the client's backoff
(capped at 1 s), and the store reconnects on its next query."""


@pytest.fixture
async def clients() -> AsyncIterator[list[ChatClient]]:
    made: list[ChatClient] = []
    try:
        yield made
    finally:
        await drills.close(made)


def verdict(
    events: tuple[TraceEvent, ...] | list[TraceEvent],
    room: str,
    clients: list[ChatClient],
    history: list[Message],
) -> Any:
    """The wire's verdict on a drill: every delivery promise (or DeliveryError)."""
    ledger = read_ledger(events, room, [c.name for c in clients])
    delivered = {c.name: c.messages.get(room, []) for c in clients}
    return ledger, check_delivery(ledger, history, delivered)


def trace_time(cluster: Cluster, monotonic: float) -> float:
    """A ``time.monotonic()`` reading on the trace's clock."""
    return cluster.trace.elapsed() - (time.monotonic() - monotonic)


# -- 1. kill -9 a server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed() -> dict[str, Any]:
    """What the kill drill left for the checker's own test: its wire, room, history."""
    return {}


async def test_kill_one_of_three_servers(clients: list[ChatClient], killed: dict[str, Any]) -> None:
    async with Cluster(
        servers=3, redis=True, sticky=True, fail_timeout=30, redis_replicas=0, taps=True
    ) as cluster:
        room = await drills.new_room(cluster, "drill-kill")
        clients += await drills.connect(cluster, USERS[:6], room)
        moves: list[tuple[float, str, State]] = []
        for client in clients:
            client.on_transition(
                lambda rec, name=client.name: moves.append((time.monotonic(), name, rec.target))
            )
        where = await cluster.distribution()
        counts = Counter(where.values())
        victim_name = max(sorted(counts), key=lambda name: counts[name])
        victim = next(i for i, s in enumerate(cluster.servers) if s.name == victim_name)
        victims = [c for c in clients if where[c.name] == victim_name]
        survivors = {s.name for s in cluster.servers} - {victim_name}

        start = len(cluster.trace)
        senders = [asyncio.create_task(drills.chatter(c, room, 25, 0.1)) for c in clients]
        watcher = clients[0]
        await watcher.wait_until(lambda: len(watcher.received(room)) >= 20, 20)

        t_kill = cluster.trace.elapsed()
        killed_at = time.monotonic()
        cluster.kill(victim)  # kill -9
        for client in victims:
            await client.wait_until(
                lambda c=client: (
                    any(t > killed_at and n == c.name and s is State.CONNECTED for t, n, s in moves)
                    and c.state is State.CONNECTED
                    and not c.rejoining
                ),
                20,
            )
        await asyncio.wait_for(asyncio.gather(*senders), 60)

        history = await drills.stored(cluster, room)
        # A gap that live delivery cannot fill (the dying server stored a message but
        # never broadcast it) is repaired by the client itself: join-room {since}.
        await drills.all_delivered(clients, room, history[-1].seq, 20)
        events = cluster.trace.events[start:]
        ledger, report = verdict(events, room, clients, history)
        recovered = check_recovery(ledger, [c.name for c in victims], t_kill, KILL_RECOVERY_S)
        # Each victim's new session is on a survivor, as the wire says.
        for client in victims:
            servers = {s for t, s in ledger.connects[client.name] if t > t_kill}
            assert servers and servers <= survivors, (client.name, servers)
            went = [s for t, n, s in moves if n == client.name and t > killed_at]
            assert went[0] is State.RECONNECTING and State.CONNECTED in went
        after = await cluster.distribution()
        assert set(after.values()) <= survivors, after
        killed |= {"events": events, "room": room, "history": history, "clients": clients}
        killed["delivered"] = {c.name: list(c.messages.get(room, [])) for c in clients}
        print(
            f"\nkill -9 {victim_name} ({len(victims)} of {len(clients)} clients): new sessions "
            f"on the wire after {max(recovered.values()):.2f} s (bound {KILL_RECOVERY_S} s; "
            f"{', '.join(f'{k} {v:.2f}' for k, v in sorted(recovered.items()))}); "
            f"{report.line()}"
        )


def _index(events: list[TraceEvent], test: Callable[[TraceEvent], bool], nth: int = 0) -> int:
    return [i for i, e in enumerate(events) if test(e)][nth]


def _live(to: str) -> Callable[[TraceEvent], bool]:
    def test(e: TraceEvent) -> bool:
        return e.layer is Layer.SIO and e.target == to and e.fields.get("event") == "new-message"

    return test


def _sent_by(client: str) -> Callable[[TraceEvent], bool]:
    def test(e: TraceEvent) -> bool:
        return (
            e.layer is Layer.SIO
            and e.source == client
            and e.fields.get("event") == ("send-message")
        )

    return test


def test_the_drill_checker_fails_on_a_lost_a_doubled_and_a_swapped_message(
    killed: dict[str, Any],
) -> None:
    """The kill drill's own wire, with one thing wrong each time: the verdict fails."""
    if not killed:
        pytest.fail("the kill drill did not run to its end (see its failure above)")
    events: list[TraceEvent] = list(killed["events"])
    room, history, clients = killed["room"], killed["history"], killed["clients"]

    def problems(wire: list[TraceEvent]) -> list[str]:
        with pytest.raises(DeliveryError) as caught:
            verdict(wire, room, clients, history)
        return caught.value.problems

    verdict(events, room, clients, history)  # the real wire passes

    # Lost: one new-message frame to bob never crossed.
    i = _index(events, _live("bob"), 5)
    lost = [*events[:i], *events[i + 1 :]]
    assert any(p.startswith("lost: seqs") and "bob" in p for p in problems(lost))

    # Doubled: the same new-message frame reached bob twice.
    doubled = [*events[: i + 1], events[i], *events[i + 1 :]]
    assert any(p.startswith("duplicated:") and "bob" in p for p in problems(doubled))

    # Swapped: two of alice's sends crossed in the other order, each with its ACK, so
    # that her later message holds the earlier seq: the order on the wire is broken.
    # Two consecutive sends to one server, each stored by it (not a retransmission,
    # not one lost with a killed server), wherever the kill fell in this run.
    a, b, ack_a, ack_b = _two_fresh_sends(events, "alice")
    swapped = list(events)
    for x, y in ((a, b), (ack_a, ack_b)):
        swapped[x], swapped[y] = (
            replace(events[y], t=events[x].t),
            replace(events[x], t=events[y].t),
        )
    found = problems(swapped)
    assert any(p.startswith("reordered: alice's messages") for p in found), found

    # Swapped on the way: two of one server's broadcasts reached bob the other way round.
    acked_by = read_ledger(events, room, [c.name for c in clients]).acked_by

    def origin(k: int) -> str | None:
        return acked_by.get(events[k].fields["args"][0]["clientMsgId"])

    j = next(
        k for k in range(i + 1, len(events)) if _live("bob")(events[k]) and origin(k) == origin(i)
    )
    overtaken = list(events)
    overtaken[i], overtaken[j] = (
        replace(events[j], t=events[i].t),
        replace(events[i], t=events[j].t),
    )
    found = problems(overtaken)
    assert any(p.startswith("reordered: bob got seq") for p in found), found


def _ack_of(events: list[TraceEvent], send: int) -> int | None:
    """The index of the ACK that answers the send at ``send`` (from the server it went
    to: ack ids start again on a new connection), or None."""
    request = events[send]
    return next(
        (
            i
            for i in range(send + 1, len(events))
            if events[i].layer is Layer.SIO
            and events[i].target == request.source
            and events[i].source == request.target
            and events[i].fields.get("type") == "ACK"
            and events[i].fields.get("id") == request.fields.get("id")
        ),
        None,
    )


def _two_fresh_sends(events: list[TraceEvent], client: str) -> tuple[int, int, int, int]:
    """Two consecutive sends of ``client`` to the same server, each acked by it as newly
    stored: their indexes and their ACKs'."""
    sends = [i for i, e in enumerate(events) if _sent_by(client)(e)]
    for a, b in itertools.pairwise(sends):
        if events[a].target != events[b].target:
            continue
        ack_a, ack_b = _ack_of(events, a), _ack_of(events, b)
        if ack_a is None or ack_b is None:
            continue
        if not any(events[k].fields["data"][0].get("duplicate") for k in (ack_a, ack_b)):
            return a, b, ack_a, ack_b
    raise AssertionError(f"no two consecutive fresh sends of {client} on the wire")


# -- 2. restart Redis -----------------------------------------------------------------------


async def test_restart_redis(clients: list[ChatClient]) -> None:
    async with Cluster(servers=3, redis=True, redis_replicas=0, taps=True) as cluster:
        room = await drills.new_room(cluster, "drill-redis")
        # alice on server-1, bob on 2, charlie on 3: straight to each server's tap.
        for i, user in enumerate(USERS[:3]):
            tap = cluster.taps[i]
            tap.name_next_connection(user)
            client = ChatClient(tap.url, user, user, options=drills.drill_options(cluster, i))
            clients.append(client)
            await client.connect()
            await client.join(room)
        alice, bob, charlie = clients
        start = len(cluster.trace)
        await alice.send(room, "before")
        for client in (bob, charlie):
            await client.wait_until(lambda c=client: c.received(room) == ["before"])

        await cluster.stop_redis()
        lost = await alice.send(room, "while redis is away")  # stored and acked
        await alice.wait_until(lambda: "while redis is away" in alice.received(room))
        # bob's own message is delivered to him locally; behind it he sees the gap.
        marker = await bob.send(room, "bob, during the outage")
        assert marker["seq"] == lost["seq"] + 1  # bob's server skipped a seq: a gap

        t_back = cluster.trace.elapsed()
        await cluster.start_redis()
        # Probe until one of alice's messages reaches charlie (server-3) live, on the wire.
        for k in range(60):
            probe = await alice.send(room, f"probe {k}")
            try:
                await cluster.trace.wait_for(
                    lambda e, seq=probe["seq"]: (
                        _live("charlie")(e) and e.fields["args"][0].get("seq") == seq
                    ),
                    0.5,
                )
            except TimeoutError:
                continue
            break
        else:
            pytest.fail("cross-server delivery did not resume")

        # The repair: each teaching client sees a seq gap behind a later message and
        # asks for the rest (join-room {since}); the store has every acked message.
        history = await drills.stored(cluster, room)
        await drills.all_delivered(clients, room, history[-1].seq, 10)
        ledger, report = verdict(cluster.trace.events[start:], room, clients, history)
        resumed = cross_server_resumed(ledger, t_back)
        assert resumed is not None and resumed <= REDIS_RECOVERY_S, resumed
        # Lost on the wire for server-3: charlie never got it live, only in a history.
        live = [c.seq for c in ledger.copies["charlie"] if c.live]
        assert lost["seq"] not in live
        assert lost["seq"] in report.repaired.get("charlie", [])
        assert all(c.gap_repairs >= 1 for c in clients), [c.gap_repairs for c in clients]
        print(
            f"\nredis restart: cross-server delivery resumed on the wire {resumed:.2f} s "
            f"after redis-server was back (bound {REDIS_RECOVERY_S} s); the message "
            f"published meanwhile reached the other servers' clients only through the "
            f"store; {report.line()}"
        )


# -- 3. stop the database --------------------------------------------------------------------


@pytest.mark.postgres
@needs("initdb", "pg_ctl")
async def test_database_outage(clients: list[ChatClient]) -> None:
    async with Cluster(
        servers=2, redis=True, postgres=True, pg_replicas=0, redis_replicas=0, taps=True
    ) as cluster:
        room = await drills.new_room(cluster, "drill-db")
        for i, user in enumerate(USERS[:2]):
            tap = cluster.taps[i]
            tap.name_next_connection(user)
            client = ChatClient(tap.url, user, user, options=drills.drill_options(cluster, i))
            clients.append(client)
            await client.connect()
            await client.join(room)
        alice, bob = clients
        start = len(cluster.trace)
        before = await alice.send(room, "before the outage")
        await bob.wait_until(lambda: bob.received(room) == ["before the outage"])

        await cluster.stop_database()
        pending = alice.send(room, "during the outage")
        await alice.wait_until(lambda: any(e.code == "store_unavailable" for e in alice.errors), 10)
        assert not pending.done()  # not acknowledged: it waits in the outbox
        assert alice.state is State.CONNECTED  # the connection itself is fine

        t_back = cluster.trace.elapsed()
        await cluster.start_database()
        ack = await asyncio.wait_for(pending, 20)
        assert ack["seq"] == before["seq"] + 1
        await bob.wait_until(
            lambda: bob.received(room) == ["before the outage", "during the outage"], 10
        )
        history = await drills.stored(cluster, room)
        assert [(m.seq, m.text) for m in history] == [
            (1, "before the outage"),
            (2, "during the outage"),
        ]
        ledger, report = verdict(cluster.trace.events[start:], room, clients, history)
        held = next(m.client_msg_id for m in history if m.seq == ack["seq"])
        resumed = ledger.acked_at[held] - t_back
        assert 0 < resumed <= DATABASE_RECOVERY_S, resumed
        refusals = [
            e
            for e in cluster.trace.events[start:]
            if e.layer is Layer.SIO
            and e.target == "alice"
            and e.fields.get("event") == "error"
            and e.fields["args"][0].get("code") == "store_unavailable"
        ]
        assert refusals, "no store_unavailable on the wire"
        print(
            f"\ndatabase outage: {len(refusals)} store_unavailable answers on the wire while "
            f"PostgreSQL was down; the held message was acknowledged {resumed:.2f} s after "
            f"it was back (bound {DATABASE_RECOVERY_S} s); {report.line()}"
        )
