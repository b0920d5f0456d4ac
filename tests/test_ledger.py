"""The drills' checker must fail on a lost, a duplicated and a reordered message, and on
a user announced gone who never left.

Each test feeds ``check_delivery`` a wire trace built by hand (the same Socket.IO
fields the taps record) and a store history, with one thing wrong, and expects the
``DeliveryError`` that names it. The good story passes, and so does a replay of a
seq the client already had (a retransmission, which the client drops).
"""

from __future__ import annotations

from typing import Any

import pytest

from tutorial.chat.store import Message
from tutorial.cluster.ledger import (
    DeliveryError,
    check_delivery,
    check_presence,
    check_recovery,
    read_ledger,
)
from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace

ROOM = "drill"
CLIENTS = ("alice", "bob")


class Wire:
    """A hand-made tap trace: alice on server-1, bob on server-2."""

    def __init__(self) -> None:
        self.trace = Trace()
        for lid, kind in (("alice", "client"), ("server-1", "server")):
            self.trace.add_lifeline(lid, lid, kind)
        for lid, kind in (("server-2", "server"), ("bob", "client")):
            self.trace.add_lifeline(lid, lid, kind)
        self.server = {"alice": "server-1", "bob": "server-2"}

    def _sio(self, source: str, target: str, **fields: Any) -> None:
        self.trace.record(source, target, Layer.SIO, "sio", fields={"namespace": "/", **fields})

    def send(self, client: str, ack_id: int, msg_id: str, seq: int) -> None:
        payload = {"roomId": ROOM, "text": msg_id, "clientMsgId": msg_id}
        server = self.server[client]
        self._sio(client, server, type="EVENT", event="send-message", id=ack_id, args=[payload])
        ack = {"ok": True, "id": f"id-{seq}", "seq": seq, "duplicate": False}
        self._sio(server, client, type="ACK", id=ack_id, data=[ack])

    def deliver(self, client: str, seq: int, msg_id: str) -> None:
        message = {"roomId": ROOM, "seq": seq, "clientMsgId": msg_id, "text": msg_id}
        self._sio(self.server[client], client, type="EVENT", event="new-message", args=[message])

    def connected(self, client: str, server: str | None = None) -> None:
        """The server's Socket.IO CONNECT reply: a (new) session for ``client``."""
        self._sio(server or self.server[client], client, type="CONNECT", data={"sid": "s"})

    def left(self, client: str, user: str, room: str = ROOM) -> None:
        told = {"roomId": room, "user": user}
        self._sio(self.server[client], client, type="EVENT", event="user-left", args=[told])

    def history(self, client: str, *messages: tuple[int, str]) -> None:
        history = [{"roomId": ROOM, "seq": s, "clientMsgId": m, "text": m} for s, m in messages]
        joined = {"roomId": ROOM, "members": list(CLIENTS), "history": history}
        self._sio(self.server[client], client, type="EVENT", event="room-joined", args=[joined])


def stored(*messages: tuple[int, str]) -> list[Message]:
    return [Message(f"id-{s}", ROOM, s, 0, m.split("-")[0], m, m) for s, m in messages]


def story() -> Wire:
    """alice sends a-1, bob b-1, alice a-2; both receive all three live."""
    wire = Wire()
    wire.send("alice", 1, "alice-1", 1)
    for c in CLIENTS:
        wire.deliver(c, 1, "alice-1")
    wire.send("bob", 1, "bob-1", 2)
    for c in CLIENTS:
        wire.deliver(c, 2, "bob-1")
    wire.send("alice", 2, "alice-2", 3)
    for c in CLIENTS:
        wire.deliver(c, 3, "alice-2")
    return wire


STORE = stored((1, "alice-1"), (2, "bob-1"), (3, "alice-2"))


def app(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s} for s in seqs]


def check(wire: Wire, store: list[Message] = STORE, **kw: Any) -> Any:
    return check_delivery(read_ledger(wire.trace, ROOM, CLIENTS), store, **kw)


def problems(wire: Wire, store: list[Message] = STORE, **kw: Any) -> list[str]:
    with pytest.raises(DeliveryError) as caught:
        check(wire, store, **kw)
    return caught.value.problems


def test_the_good_story_passes_and_is_counted() -> None:
    report = check(story(), delivered={"alice": app(1, 2, 3), "bob": app(1, 2, 3)})
    assert (report.acked, report.stored, report.copies, report.retransmissions) == (3, 3, 6, 0)
    assert "0 acked lost" in report.line()


def test_a_message_that_never_reached_a_client_is_lost() -> None:
    wire = Wire()
    wire.send("alice", 1, "alice-1", 1)
    wire.deliver("alice", 1, "alice-1")  # bob never gets seq 1
    assert problems(wire, stored((1, "alice-1"))) == [
        "lost: seqs [1] never reached bob on the wire"
    ]


def test_an_acked_message_missing_from_the_store_is_lost() -> None:
    found = problems(story(), stored((1, "alice-1"), (2, "bob-1")))
    assert "lost: alice-2 acked as seq 3, store has None" in found


def test_a_message_stored_twice_is_duplicated() -> None:
    store = [*STORE, *stored((4, "alice-1"))]
    assert any(p.startswith("duplicated: alice-1 stored twice") for p in problems(story(), store))


def test_one_message_under_two_seqs_on_the_wire_is_duplicated() -> None:
    wire = story()
    wire.deliver("bob", 4, "alice-1")  # the same clientMsgId again, as a new seq
    found = problems(wire, [*STORE, *stored((4, "carol-1"))])
    assert "duplicated: alice-1 crossed the wire as seqs [1, 4]" in found


def test_an_application_that_delivers_a_message_twice_is_caught() -> None:
    found = problems(story(), delivered={"alice": app(1, 2, 2, 3)})
    assert "duplicated: alice's application got seqs [2] twice" in found


def test_a_sender_whose_messages_swapped_seqs_is_reordered() -> None:
    wire = Wire()
    wire.send("alice", 1, "alice-1", 2)
    wire.send("alice", 2, "alice-2", 1)
    for c in CLIENTS:
        wire.deliver(c, 1, "alice-2")
        wire.deliver(c, 2, "alice-1")
    found = problems(wire, stored((1, "alice-2"), (2, "alice-1")))
    assert found == ["reordered: alice's messages got seqs [2, 1] in send order"]


def test_an_application_out_of_seq_order_is_reordered() -> None:
    found = problems(story(), delivered={"bob": app(2, 1, 3)})
    assert "reordered: bob's application got seqs out of order" in found


def test_a_client_that_got_another_message_at_a_seq_is_reordered() -> None:
    wire = story()
    wire.deliver("bob", 2, "alice-2")  # seq 2 is bob-1 in the store
    assert any(p.startswith("reordered: bob got alice-2 as seq 2") for p in problems(wire))


def test_a_gap_filled_from_a_history_passes_and_is_reported_repaired() -> None:
    wire = Wire()
    wire.send("alice", 1, "alice-1", 1)
    wire.deliver("alice", 1, "alice-1")  # lost on its way to bob (Redis was away)
    wire.send("alice", 2, "alice-2", 2)
    for c in CLIENTS:
        wire.deliver(c, 2, "alice-2")
    wire.history("bob", (1, "alice-1"), (2, "alice-2"))  # bob's repair: join-room {since}
    report = check(wire, stored((1, "alice-1"), (2, "alice-2")))
    assert report.repaired == {"bob": [1]}
    assert report.retransmissions == 1  # seq 2 came twice; bob's client drops one


def test_each_ack_is_timed_and_placed_by_its_own_message() -> None:
    # Two sends in flight at once: the ACKs come after both requests.
    wire = Wire()
    for client, msg_id in (("alice", "alice-1"), ("bob", "bob-1")):
        payload = {"roomId": ROOM, "text": msg_id, "clientMsgId": msg_id}
        wire._sio(client, wire.server[client], type="EVENT", event="send-message", id=1,
                  args=[payload])  # fmt: skip
    for client, seq in (("alice", 1), ("bob", 2)):
        ack = {"ok": True, "id": f"id-{seq}", "seq": seq, "duplicate": False}
        wire._sio(wire.server[client], client, type="ACK", id=1, data=[ack])
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    acks = [e.t for e in wire.trace.events if e.fields.get("type") == "ACK"]
    assert ledger.acked == {"alice-1": 1, "bob-1": 2}
    assert ledger.acked_at == {"alice-1": acks[0], "bob-1": acks[1]}
    assert ledger.acked_by == {"alice-1": "server-1", "bob-1": "server-2"}


def test_a_user_announced_gone_who_stayed_is_a_ghost_departure() -> None:
    wire = story()
    wire.left("alice", "bob")  # bob never left
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    with pytest.raises(DeliveryError) as caught:
        check_presence(ledger, stayed=CLIENTS)
    assert [p.split(" at ")[0] for p in caught.value.problems] == [
        "ghost departure: alice was told bob left"
    ]


def test_a_user_who_really_left_or_left_another_room_is_no_ghost() -> None:
    wire = story()
    wire.left("alice", "carol")  # carol left: she is not among those who stayed
    wire.left("bob", "alice", room="elsewhere")
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    check_presence(ledger, stayed=CLIENTS)
    assert [(d.told, d.user) for d in ledger.departures] == [("alice", "carol")]


def test_one_seq_sent_live_twice_to_a_client_is_duplicated() -> None:
    wire = story()
    wire.deliver("bob", 3, "alice-2")  # the same new-message frame again
    assert problems(wire) == ["duplicated: seqs [3] reached bob live twice"]


def test_recovery_is_timed_from_the_fault_to_the_new_session_on_the_wire() -> None:
    wire = story()
    fault = wire.trace.elapsed()
    wire.connected("bob", "server-1")  # bob's server died; nginx sent him to server-1
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    took = check_recovery(ledger, ["bob"], fault, bound=5.0)
    assert list(took) == ["bob"] and 0 <= took["bob"] <= 5.0


def test_a_recovery_over_the_bound_or_none_at_all_fails() -> None:
    wire = story()
    wire.connected("bob", "server-1")
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    earlier = wire.trace.events[0].t
    with pytest.raises(DeliveryError) as caught:
        check_recovery(ledger, ["bob"], earlier - 10.0, bound=5.0)  # took over 10 s
    assert caught.value.problems[0].startswith("slow recovery: bob reconnected")
    with pytest.raises(DeliveryError) as caught:
        check_recovery(ledger, ["alice", "bob"], wire.trace.elapsed(), bound=5.0)
    assert "not recovered: alice got no new session" in caught.value.problems[0]


def test_one_servers_messages_overtaking_each_other_on_the_wire_are_reordered() -> None:
    wire = Wire()
    wire.send("alice", 1, "alice-1", 1)
    wire.send("alice", 2, "alice-2", 2)
    for c in CLIENTS:  # server-1's two broadcasts reach bob the other way round
        for seq in (1, 2) if c == "alice" else (2, 1):
            wire.deliver(c, seq, f"alice-{seq}")
    found = problems(wire, stored((1, "alice-1"), (2, "alice-2")))
    assert found == ["reordered: bob got seq 1 of server-1's live after seq 2"]


def test_messages_of_two_servers_may_cross_on_the_way() -> None:
    wire = Wire()
    wire.send("alice", 1, "alice-1", 1)  # acked by server-1
    wire.send("bob", 1, "bob-1", 2)  # acked by server-2
    wire.deliver("bob", 2, "bob-1")  # bob's own, local: first
    wire.deliver("bob", 1, "alice-1")  # alice's, through Redis: after it
    for seq in (1, 2):
        wire.deliver("alice", seq, ("alice-1", "bob-1")[seq - 1])
    check(wire, stored((1, "alice-1"), (2, "bob-1")))


def crossed_retransmission(*, duplicate: bool) -> Wire:
    """alice's first send of alice-1 reached server-3 and got no ack; alice, now on
    server-1, sends alice-2 and then alice-1 again, acked with ``duplicate``; bob gets
    seq 2 live before seq 1."""
    wire = Wire()
    wire.trace.add_lifeline("server-3", "server-3", "server")
    payload = {"roomId": ROOM, "text": "alice-1", "clientMsgId": "alice-1"}
    wire._sio("alice", "server-3", type="EVENT", event="send-message", id=1, args=[payload])
    wire.send("alice", 1, "alice-2", 2)
    wire._sio("alice", "server-1", type="EVENT", event="send-message", id=2, args=[payload])
    again = {"ok": True, "id": "id-1", "seq": 1, "duplicate": duplicate}
    wire._sio("server-1", "alice", type="ACK", id=2, data=[again])
    wire.deliver("bob", 2, "alice-2")
    wire.deliver("bob", 1, "alice-1")
    wire.history("alice", (1, "alice-1"), (2, "alice-2"))
    return wire


def test_a_retransmission_acked_by_another_server_keeps_its_first_server_as_origin() -> None:
    """The kill drill's case: server-3 stored and published alice-1, then died before
    its ack got out, and server-1 answered the retransmission with ``duplicate``. So
    alice-1 is server-3's, and its late arrival at bob, after server-1's seq 2, is two
    servers crossing on the way, not server-1 reordering."""
    store = stored((1, "alice-1"), (2, "alice-2"))
    wire = crossed_retransmission(duplicate=True)
    ledger = read_ledger(wire.trace, ROOM, CLIENTS)
    assert ledger.acked_by == {"alice-1": "server-3", "alice-2": "server-1"}
    check(wire, store)
    # Had server-1 stored it (its ack says so), the same wire is server-1 reordering.
    wire = crossed_retransmission(duplicate=False)
    assert read_ledger(wire.trace, ROOM, CLIENTS).acked_by["alice-1"] == "server-1"
    assert problems(wire, store) == ["reordered: bob got seq 1 of server-1's live after seq 2"]
