"""The drills' checker: what crossed the wire, and the promises it must keep.

A drill's clients talk through nginx, and the taps between nginx and the servers record
every Socket.IO packet ([Cluster][tutorial.cluster.cluster.Cluster] with ``taps=True``).
[read_ledger][tutorial.cluster.ledger.read_ledger] reads one room's story from that
trace alone:

* every ``send-message`` a client sent (with its ``clientMsgId``), in order;
* every ACK the server returned to it (``{ok, id, seq}``), paired by ack id;
* every copy of a message a client received: live (``new-message``) or in a
  ``room-joined`` history (a join, a replay after reconnecting, a gap repair);
* every ``user-left`` a client was told (``departures``);
* every Socket.IO CONNECT a server granted a client (``connects``: when, which
  server), so that a drill can time a reconnection from the wire.

[check_delivery][tutorial.cluster.ledger.check_delivery] then holds the ledger against
the store and (optionally) what each client's application saw, and raises
[DeliveryError][tutorial.cluster.ledger.DeliveryError] listing every broken promise:

* **nothing acknowledged is lost**: each acked message is in the store at its acked
  seq, and reached every member on the wire (live or replayed);
* **nothing is duplicated**: the store holds each ``clientMsgId`` once, under one
  seq; no ``clientMsgId`` crossed the wire under two seqs; no client was sent one seq
  live (``new-message``) twice (a replay of a seq in a ``room-joined`` history is a
  retransmission, which is allowed: the client drops it);
* **nothing is reordered**: seqs run 1..N without a gap; a sender's messages got
  increasing seqs in the order it sent them; the messages one server acknowledged
  reached each client live in increasing seq order (a server broadcasts a room's
  messages in seq order, and Redis keeps one publisher's order: only messages from
  *different* servers may overtake each other on the way); every client delivered
  exactly the seqs it received, once each, in increasing order.

[check_recovery][tutorial.cluster.ledger.check_recovery] holds the reconnections
against a bound: **every client cut off by a fault had a new session within
``bound`` seconds** (the time from the fault to the server's CONNECT reply).

[check_presence][tutorial.cluster.ledger.check_presence] holds the departures against
the users who stayed (a drill's clients that never left): **nobody is announced gone
who is still here** (a Redis failover once made the cluster-wide presence do that).

It reads the bytes the servers really sent, not the clients' own filtered lists:
those are checked *against* the wire.

    ledger = read_ledger(trace.events[start:], room, ["alice", "bob"])
    report = check_delivery(ledger, stored_history, delivered)   # or DeliveryError
    check_presence(ledger, stayed=["alice", "bob"])              # or DeliveryError
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tutorial.chat.store import Message
from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace, TraceEvent


class DeliveryError(AssertionError):
    """One or more promises were broken; ``problems`` says which, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} broken: " + "; ".join(self.problems[:8]))


@dataclass(frozen=True)
class Copy:
    """One copy of a message that reached a client: when, which seq, how."""

    t: float
    seq: int
    client_msg_id: str
    server: str
    live: bool  # new-message (True) or inside a room-joined history (False)


@dataclass(frozen=True)
class Departure:
    """A ``user-left`` that reached a client: when, who was told, who left."""

    t: float
    told: str
    user: str


@dataclass
class Ledger:
    """One room's story as the wire told it."""

    room: str
    sends: dict[str, list[str]] = field(default_factory=dict)  # client -> clientMsgIds
    sent_at: dict[str, float] = field(default_factory=dict)  # clientMsgId -> first send
    acked: dict[str, int] = field(default_factory=dict)  # clientMsgId -> seq
    acked_at: dict[str, float] = field(default_factory=dict)  # clientMsgId -> time
    acked_by: dict[str, str] = field(default_factory=dict)
    """clientMsgId -> the server that stored and broadcast it: the one whose ack says
    ``duplicate: false``, or, when only a retransmission was acked, the one the first
    send went to."""
    copies: dict[str, list[Copy]] = field(default_factory=dict)  # client -> in wire order
    departures: list[Departure] = field(default_factory=list)  # user-left, in wire order
    connects: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """client -> (time, server) of every Socket.IO CONNECT reply it got, in wire order."""

    def seqs_seen(self, client: str) -> set[int]:
        return {c.seq for c in self.copies.get(client, [])}

    def retransmissions(self) -> int:
        """Copies of a seq a client had already received (replays that overlap)."""
        extra = 0
        for copies in self.copies.values():
            seen: set[int] = set()
            for c in copies:
                extra += c.seq in seen
                seen.add(c.seq)
        return extra

    def repaired(self, client: str) -> list[int]:
        """Seqs this client first received in a history after a later seq had arrived
        live: the gaps that only the store could fill."""
        first: dict[int, Copy] = {}
        for c in self.copies.get(client, []):
            first.setdefault(c.seq, c)
        out = []
        for seq, c in first.items():
            if not c.live and any(o.live and o.seq > seq and o.t < c.t for o in first.values()):
                out.append(seq)
        return sorted(out)


def _sio(event: TraceEvent) -> Mapping[str, Any] | None:
    if event.layer is not Layer.SIO or event.kind == "error":
        return None
    return event.fields


def _first_arg(fields: Mapping[str, Any], key: str) -> Any:
    value = fields.get(key)
    if isinstance(value, list | tuple) and value:
        return value[0]
    return None


def read_ledger(trace: Trace | Iterable[TraceEvent], room: str, clients: Iterable[str]) -> Ledger:
    """The ledger of ``room`` for ``clients`` (lifeline ids), from the trace alone."""
    members = set(clients)
    ledger = Ledger(room, copies={c: [] for c in sorted(members)})
    pending: dict[tuple[str, str, int], str] = {}  # (client, server, ack id) -> clientMsgId
    first_sent_to: dict[str, str] = {}  # clientMsgId -> server its first send went to
    events = trace.events if isinstance(trace, Trace) else tuple(trace)
    for e in events:
        fields = _sio(e)
        if fields is None:
            continue
        kind, name = fields.get("type"), fields.get("event")
        if e.source in members and kind == "EVENT" and name == "send-message":
            payload = _first_arg(fields, "args")
            if isinstance(payload, dict) and payload.get("roomId") == room:
                msg_id = str(payload.get("clientMsgId"))
                sent = ledger.sends.setdefault(e.source, [])
                if msg_id not in sent:
                    sent.append(msg_id)
                ledger.sent_at.setdefault(msg_id, e.t)
                first_sent_to.setdefault(msg_id, e.target)
                if fields.get("id") is not None:
                    pending[(e.source, e.target, int(fields["id"]))] = msg_id
        elif e.target in members and kind == "ACK" and fields.get("id") is not None:
            acked = pending.pop((e.target, e.source, int(fields["id"])), "")
            ack = _first_arg(fields, "data")
            if acked and isinstance(ack, dict) and ack.get("ok"):
                ledger.acked[acked] = int(ack["seq"])
                ledger.acked_at.setdefault(acked, e.t)
                if not ack.get("duplicate"):
                    # The server that stored it, and so broadcast it: only one ever does.
                    ledger.acked_by[acked] = e.source
                else:
                    # A retransmission's ack ("already stored"): the server that stored
                    # and broadcast it is the one the first send reached (it may have
                    # died before its ack got out), not the one answering now.
                    ledger.acked_by.setdefault(acked, first_sent_to.get(acked, e.source))
        elif e.target in members and kind == "EVENT" and name == "new-message":
            message = _first_arg(fields, "args")
            if isinstance(message, dict) and message.get("roomId") == room:
                ledger.copies[e.target].append(_copy(e, message, live=True))
        elif e.target in members and kind == "EVENT" and name == "room-joined":
            joined = _first_arg(fields, "args")
            if isinstance(joined, dict) and joined.get("roomId") == room:
                for message in joined.get("history") or []:
                    ledger.copies[e.target].append(_copy(e, message, live=False))
        elif e.target in members and kind == "CONNECT":
            ledger.connects.setdefault(e.target, []).append((e.t, e.source))
        elif e.target in members and kind == "EVENT" and name == "user-left":
            left = _first_arg(fields, "args")
            if isinstance(left, dict) and left.get("roomId") == room:
                ledger.departures.append(Departure(e.t, e.target, str(left.get("user"))))
    return ledger


def _copy(e: TraceEvent, message: Mapping[str, Any], *, live: bool) -> Copy:
    return Copy(e.t, int(message["seq"]), str(message.get("clientMsgId")), e.source, live)


@dataclass(frozen=True)
class DeliveryReport:
    """What a passing check counted."""

    stored: int
    acked: int
    copies: int
    retransmissions: int
    repaired: dict[str, list[int]]

    def line(self) -> str:
        fixed = sum(len(v) for v in self.repaired.values())
        return (
            f"{self.acked} acked, {self.stored} stored, 0 acked lost, 0 duplicated, "
            f"0 reordered; {self.copies} copies on the wire ({self.retransmissions} "
            f"replays dropped by the clients); {fixed} gaps repaired from the store"
        )


def check_delivery(
    ledger: Ledger,
    stored: Sequence[Message],
    delivered: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    first_seq: Mapping[str, int] | None = None,
) -> DeliveryReport:
    """Raise [DeliveryError][tutorial.cluster.ledger.DeliveryError] unless every promise
    holds; see the module doc.

    ``stored``: the room's history from the store (seq order). ``delivered``: what
    each client's application got (``ChatClient.messages[room]``), checked against the
    wire. ``first_seq``: the first seq a client must have (default 1: it was in the
    room from the start).
    """
    problems: list[str] = []
    seqs = [m.seq for m in stored]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"store: seqs are not 1..{len(seqs)} without gaps: {seqs[:12]}")
    by_id: dict[str, int] = {}
    for m in stored:
        if m.client_msg_id in by_id:
            problems.append(
                f"duplicated: {m.client_msg_id} stored twice (seq {by_id[m.client_msg_id]} "
                f"and {m.seq})"
            )
        by_id.setdefault(m.client_msg_id, m.seq)
    by_seq = {m.seq: m.client_msg_id for m in stored}
    last = max(seqs, default=0)

    for msg_id, seq in sorted(ledger.acked.items(), key=lambda kv: kv[1]):
        if by_id.get(msg_id) != seq:
            problems.append(f"lost: {msg_id} acked as seq {seq}, store has {by_id.get(msg_id)}")
    for sender, msg_ids in sorted(ledger.sends.items()):
        got = [ledger.acked[i] for i in msg_ids if i in ledger.acked]
        if got != sorted(got):
            problems.append(f"reordered: {sender}'s messages got seqs {got} in send order")
        unacked = [i for i in msg_ids if i not in ledger.acked]
        if unacked:
            problems.append(f"{sender}: {len(unacked)} sends never acked ({unacked[:3]})")

    seen_as: dict[str, set[int]] = {}
    for client, copies in sorted(ledger.copies.items()):
        live = [c.seq for c in copies if c.live]
        twice = sorted({s for s in live if live.count(s) > 1})
        if twice:
            problems.append(f"duplicated: seqs {twice[:10]} reached {client} live twice")
        highest: dict[str, int] = {}  # origin server -> highest seq it sent live so far
        for c in copies:
            origin = ledger.acked_by.get(c.client_msg_id)
            if not c.live or origin is None:
                continue
            if c.seq < highest.get(origin, 0):
                problems.append(
                    f"reordered: {client} got seq {c.seq} of {origin}'s live after seq "
                    f"{highest[origin]}"
                )
            highest[origin] = max(highest.get(origin, 0), c.seq)
        for c in copies:
            seen_as.setdefault(c.client_msg_id, set()).add(c.seq)
            if by_seq.get(c.seq, c.client_msg_id) != c.client_msg_id:
                problems.append(
                    f"reordered: {client} got {c.client_msg_id} as seq {c.seq}, "
                    f"the store has {by_seq.get(c.seq)} there"
                )
        start = (first_seq or {}).get(client, 1)
        missing = sorted(set(range(start, last + 1)) - {c.seq for c in copies})
        if missing:
            problems.append(f"lost: seqs {missing[:10]} never reached {client} on the wire")
    for msg_id, seqs_of in sorted(seen_as.items()):
        if len(seqs_of) > 1:
            problems.append(f"duplicated: {msg_id} crossed the wire as seqs {sorted(seqs_of)}")

    for client, messages in sorted((delivered or {}).items()):
        got = [int(m["seq"]) for m in messages]
        wire = sorted(ledger.seqs_seen(client))
        if len(got) != len(set(got)):
            dupes = sorted({s for s in got if got.count(s) > 1})
            problems.append(f"duplicated: {client}'s application got seqs {dupes} twice")
        if got != sorted(got):
            problems.append(f"reordered: {client}'s application got seqs out of order")
        start = (first_seq or {}).get(client, 1)
        if sorted(set(got)) != [s for s in wire if s >= start]:
            problems.append(
                f"{client}'s application got {len(set(got))} messages, the wire brought "
                f"{len([s for s in wire if s >= start])}"
            )
    if problems:
        raise DeliveryError(problems)
    return DeliveryReport(
        stored=len(stored),
        acked=len(ledger.acked),
        copies=sum(len(c) for c in ledger.copies.values()),
        retransmissions=ledger.retransmissions(),
        repaired={c: r for c in sorted(ledger.copies) if (r := ledger.repaired(c))},
    )


def check_presence(ledger: Ledger, stayed: Iterable[str]) -> None:
    """Raise [DeliveryError][tutorial.cluster.ledger.DeliveryError] if a client was told
    that one of ``stayed`` (users who never left the room) left it."""
    here = set(stayed)
    problems = [
        f"ghost departure: {d.told} was told {d.user} left at {d.t:.2f} s"
        for d in ledger.departures
        if d.user in here
    ]
    if problems:
        raise DeliveryError(problems)


def cross_server_resumed(ledger: Ledger, since: float) -> float | None:
    """Seconds from ``since`` (a fault, trace time) to the first live copy, on another
    server than the one that acknowledged it, of a message that reached its server
    after ``since`` (so it was published after it: a message published just before,
    and acknowledged just after, does not count): Redis carries again."""
    times = [
        c.t - since
        for copies in ledger.copies.values()
        for c in copies
        if c.live
        and ledger.sent_at.get(c.client_msg_id, -1) > since
        and ledger.acked_by.get(c.client_msg_id) not in (None, c.server)
    ]
    return min(times, default=None)


def reconnected_after(
    ledger: Ledger, clients: Iterable[str], since: float
) -> dict[str, float | None]:
    """Seconds from ``since`` (trace time) to each client's first Socket.IO CONNECT
    reply after it, from any server (None: no new session on the wire)."""
    out: dict[str, float | None] = {}
    for client in clients:
        times = [t for t, _server in ledger.connects.get(client, []) if t > since]
        out[client] = round(min(times) - since, 3) if times else None
    return out


def check_recovery(
    ledger: Ledger, clients: Iterable[str], since: float, bound: float
) -> dict[str, float]:
    """Raise [DeliveryError][tutorial.cluster.ledger.DeliveryError] unless each of
    ``clients`` got a new session (a CONNECT reply on the wire) within ``bound``
    seconds of ``since``; return the seconds each took."""
    took = reconnected_after(ledger, clients, since)
    problems = [
        f"not recovered: {client} got no new session on the wire after the fault"
        if seconds is None
        else f"slow recovery: {client} reconnected {seconds:.2f} s after the fault "
        f"(bound {bound:.2f} s)"
        for client, seconds in sorted(took.items())
        if seconds is None or seconds > bound
    ]
    if problems:
        raise DeliveryError(problems)
    return {c: s for c, s in took.items() if s is not None}
