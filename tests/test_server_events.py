"""Every event of the chat contract (v1) and every error code, against a real server.

Each test starts the demo server on 127.0.0.1, port 0 (fixture ``server``), connects
python-socketio clients (:class:`rawclient.Recorder`) and waits for what the server
sends; nothing sleeps to synchronise.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rawclient import Recorder, unique_id

from tutorial.chat.auth import TokenSigner
from tutorial.chat.server import ChatServer
from tutorial.protocol.catalog import ErrorCode
from tutorial.protocol.limits import MAX_TEXT_LENGTH

pytestmark = pytest.mark.timeout(30)

ALICE_ROOMS = ["general", "private-chat", "tech-talk"]

MakeClient = Callable[..., Recorder]
MakeServer = Callable[..., Awaitable[ChatServer]]


@pytest.fixture
async def client(server: ChatServer) -> AsyncIterator[MakeClient]:
    """A factory of recording clients for ``server``; all are closed at the end."""
    made: list[Recorder] = []

    def make(
        name: str = "", transports: tuple[str, ...] = ("websocket",), url: str | None = None
    ) -> Recorder:
        rec = Recorder(url or server.url, name, transports)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        await rec.close()


async def expect_failure(rec: Recorder, event: str, payload: Any, code: ErrorCode) -> dict:
    """``event`` must fail with ``code``: in the ack and in an ``error`` event."""
    ack = await rec.call(event, payload)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code.value, ack
    assert ack["error"]["event"] == event
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]
    error = await rec.next("error")
    assert error == ack["error"]
    return error


def refusal_code(data: Any) -> str:
    """The code of a CONNECT_ERROR: ``{"message": ..., "data": {"code", "message"}}``."""
    assert isinstance(data, dict), data
    assert isinstance(data["message"], str) and data["message"]
    assert set(data["data"]) == {"code", "message"}
    return str(data["data"]["code"])


async def token_secret(server: ChatServer) -> str:
    return server.config.secret or await server.store.setting("token_secret", "unused")


def token_signed_at(secret: str, user: str, timestamp: int) -> str:
    """A token like the server's, signed with ``secret`` but dated ``timestamp``."""

    class DatedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return timestamp

    return str(
        URLSafeTimedSerializer(secret, salt="chat-token", signer=DatedSigner).dumps({"u": user})
    )


# -- authenticate ------------------------------------------------------------------


async def test_authenticate_by_password_acks_a_token_then_sends_connect_confirmed(
    client: MakeClient,
) -> None:
    alice = client("alice")
    await alice.connect()
    ack = await alice.call("authenticate", {"username": "alice", "password": "alice"})
    assert ack["ok"] is True
    assert ack["user"] == "alice"
    assert isinstance(ack["token"], str) and ack["token"]
    confirmed = await alice.next("connect-confirmed")
    assert confirmed["user"] == "alice"
    assert confirmed["sid"] == alice.sio.get_sid()
    assert confirmed["rooms"] == ALICE_ROOMS
    assert alice.names().index("ack") < alice.names().index("connect-confirmed")


async def test_authenticate_by_token_logs_in_as_the_user_the_token_names(
    client: MakeClient,
) -> None:
    first = client("first")
    await first.connect()
    token = (await first.call("authenticate", {"username": "bob", "password": "bob"}))["token"]
    second = client("second")
    await second.connect()
    ack = await second.call("authenticate", {"token": token})
    assert ack["ok"] is True
    assert ack["user"] == "bob"
    confirmed = await second.next("connect-confirmed")
    assert confirmed["user"] == "bob"
    assert confirmed["sid"] == second.sio.get_sid()


async def test_connect_auth_with_a_password_logs_in_during_the_handshake(
    client: MakeClient,
) -> None:
    alice = client("alice")
    await alice.connect({"username": "alice", "password": "alice"})
    confirmed = await alice.next("connect-confirmed")
    assert confirmed["user"] == "alice"
    assert confirmed["sid"] == alice.sio.get_sid()
    assert confirmed["rooms"] == ALICE_ROOMS
    assert alice.names()[:2] == ["connect", "connect-confirmed"]


async def test_connect_auth_with_a_token_logs_in_during_the_handshake(
    server: ChatServer, client: MakeClient
) -> None:
    assert server.tokens is not None
    diana = client("diana")
    await diana.connect({"token": server.tokens.issue("diana")})
    confirmed = await diana.next("connect-confirmed")
    assert confirmed["user"] == "diana"
    ack = await diana.call("join-room", {"roomId": "project-alpha"})
    assert ack["ok"] is True


async def test_a_wrong_password_is_auth_failed(client: MakeClient) -> None:
    alice = client("alice")
    await alice.connect()
    await expect_failure(
        alice, "authenticate", {"username": "alice", "password": "bob"}, ErrorCode.AUTH_FAILED
    )


async def test_an_unknown_user_is_auth_failed(client: MakeClient) -> None:
    mallory = client("mallory")
    await mallory.connect()
    await expect_failure(
        mallory,
        "authenticate",
        {"username": "mallory", "password": "mallory"},
        ErrorCode.AUTH_FAILED,
    )


async def test_a_token_signed_with_another_secret_is_auth_failed(client: MakeClient) -> None:
    forged = TokenSigner("not-the-server-secret").issue("alice")
    mallory = client("mallory")
    await mallory.connect()
    await expect_failure(mallory, "authenticate", {"token": forged}, ErrorCode.AUTH_FAILED)


async def test_an_expired_token_is_auth_failed(server: ChatServer, client: MakeClient) -> None:
    assert server.tokens is not None
    secret = await token_secret(server)
    two_hours_ago = int(time.time()) - 2 * server.config.token_ttl
    expired = token_signed_at(secret, "alice", two_hours_ago)
    # The same signature dated now is accepted: only the age makes it fail.
    assert server.tokens.verify(token_signed_at(secret, "alice", int(time.time()))) == "alice"
    alice = client("alice")
    await alice.connect()
    await expect_failure(alice, "authenticate", {"token": expired}, ErrorCode.AUTH_FAILED)


async def test_refused_connect_auth_gives_connect_error_with_code_auth_failed(
    client: MakeClient,
) -> None:
    alice = client("alice")
    data = await alice.connect_refused({"username": "alice", "password": "wrong"})
    assert refusal_code(data) == ErrorCode.AUTH_FAILED.value
    assert not alice.sio.connected


async def test_events_before_authentication_are_unauthenticated(client: MakeClient) -> None:
    anon = client("anon")
    await anon.connect()
    await expect_failure(anon, "join-room", {"roomId": "general"}, ErrorCode.UNAUTHENTICATED)


# -- rooms -------------------------------------------------------------------------


async def test_join_room_sends_room_joined_to_the_joiner_and_user_joined_to_the_others(
    client: MakeClient,
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice")
    ack = await alice.call("join-room", {"roomId": "general"})
    assert ack == {"ok": True, "roomId": "general", "members": ["alice", "bob"]}
    joined = await alice.next("room-joined")
    assert joined == {"roomId": "general", "members": ["alice", "bob"], "history": []}
    assert await bob.next("user-joined") == {"roomId": "general", "user": "alice"}
    await alice.say("general", "marker")
    assert alice.received("user-joined") == []


async def test_join_with_leave_others_sends_user_left_in_the_old_room(
    client: MakeClient,
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    await alice.join("tech-talk", leaveOthers=True)
    assert await bob.next("user-left") == {"roomId": "general", "user": "alice"}
    await expect_failure(
        alice,
        "send-message",
        {"roomId": "general", "text": "still here?", "clientMsgId": unique_id()},
        ErrorCode.NOT_IN_ROOM,
    )


async def test_a_user_is_in_several_rooms_at_once_by_default(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice", ("general", "tech-talk"))
    in_general = await alice.say("general", "hello general")
    in_tech = await alice.say("tech-talk", "hello tech")
    assert (in_general["roomId"], in_tech["roomId"]) == ("general", "tech-talk")


async def test_history_on_join_is_the_last_50_messages(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(rate_capacity=1000.0)
    bob = Recorder(srv.url, "bob")
    alice = Recorder(srv.url, "alice")
    try:
        await bob.login("bob", ("general",))
        for n in range(1, 56):
            await bob.say("general", f"message {n}")
        await alice.login("alice")
        history = (await alice.join("general"))["history"]
        assert [m["seq"] for m in history] == list(range(6, 56))
        assert [m["text"] for m in history] == [f"message {n}" for n in range(6, 56)]
        assert set(history[0]) == {"roomId", "id", "seq", "ts", "user", "text", "clientMsgId"}
    finally:
        await bob.close()
        await alice.close()


async def test_join_with_since_returns_only_the_later_messages(client: MakeClient) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    for n in range(1, 6):
        await bob.say("general", f"message {n}")
    alice = client("alice")
    await alice.login("alice")
    history = (await alice.join("general", since=3))["history"]
    assert [(m["seq"], m["text"]) for m in history] == [(4, "message 4"), (5, "message 5")]


async def test_leave_room_sends_user_left_to_the_others(client: MakeClient) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    ack = await alice.call("leave-room", {"roomId": "general"})
    assert ack == {"ok": True, "roomId": "general"}
    assert await bob.next("user-left") == {"roomId": "general", "user": "alice"}


async def test_after_leave_room_the_rooms_messages_no_longer_arrive(client: MakeClient) -> None:
    bob = client("bob")
    await bob.login("bob", ("general", "tech-talk"))
    alice = client("alice")
    await alice.login("alice", ("general", "tech-talk"))
    assert (await alice.call("leave-room", {"roomId": "general"}))["ok"] is True
    await bob.say("general", "alice cannot hear this")
    await bob.say("tech-talk", "marker")
    await alice.next("new-message", match=lambda m: m["text"] == "marker")
    assert [m["text"] for m in alice.received("new-message")] == ["marker"]


async def test_leaving_a_room_not_joined_is_not_in_room(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice")
    await expect_failure(alice, "leave-room", {"roomId": "general"}, ErrorCode.NOT_IN_ROOM)


async def test_joining_an_unknown_room_is_room_not_found(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice")
    await expect_failure(alice, "join-room", {"roomId": "no-such-room"}, ErrorCode.ROOM_NOT_FOUND)


async def test_joining_a_private_room_as_an_outsider_is_forbidden(client: MakeClient) -> None:
    eve = client("eve")
    await eve.login("eve")
    await expect_failure(eve, "join-room", {"roomId": "private-chat"}, ErrorCode.FORBIDDEN)


async def test_a_member_of_a_private_room_may_join_it(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice")
    joined = await alice.join("private-chat")
    assert joined["members"] == ["alice"]


# -- messages ----------------------------------------------------------------------


async def test_send_message_broadcasts_new_message_with_metadata_to_every_member_and_the_sender(
    client: MakeClient,
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    before = int(time.time() * 1000)
    ack = await alice.call(
        "send-message", {"roomId": "general", "text": "hi all", "clientMsgId": "c-1"}
    )
    assert ack["ok"] is True
    assert ack["seq"] == 1
    assert ack["duplicate"] is False
    expected = {
        "roomId": "general",
        "id": ack["id"],
        "seq": 1,
        "user": "alice",
        "text": "hi all",
        "clientMsgId": "c-1",
    }
    for rec in (alice, bob):
        message = await rec.next("new-message")
        ts = message.pop("ts")
        assert message == expected
        assert isinstance(ts, int) and before - 1000 <= ts <= int(time.time() * 1000) + 1000


async def test_seq_counts_1_2_3_in_each_room_independently(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice", ("general", "tech-talk"))
    seqs = []
    for room in ("general", "tech-talk", "general", "general", "tech-talk"):
        message = await alice.say(room, "counting")
        seqs.append((room, message["seq"]))
    assert seqs == [
        ("general", 1),
        ("tech-talk", 1),
        ("general", 2),
        ("general", 3),
        ("tech-talk", 2),
    ]


async def test_the_same_client_msg_id_twice_is_stored_once_and_delivered_once(
    server: ChatServer, client: MakeClient
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    payload = {"roomId": "general", "text": "only once", "clientMsgId": "retry-1"}
    first = await alice.call("send-message", payload)
    second = await alice.call("send-message", payload)
    assert first["duplicate"] is False
    assert second["duplicate"] is True
    assert (second["id"], second["seq"]) == (first["id"], first["seq"])
    await alice.say("general", "marker")
    await bob.next("new-message", match=lambda m: m["text"] == "marker")
    assert [m["text"] for m in bob.received("new-message")] == ["only once", "marker"]
    assert [m["text"] for m in alice.received("new-message")] == ["only once", "marker"]
    assert await server.store.count_messages() == 2


async def test_the_same_client_msg_id_in_two_rooms_is_two_messages(
    server: ChatServer, client: MakeClient
) -> None:
    # A client that numbers its messages per room: m-1 in general, m-1 in tech-talk.
    bob = client("bob")
    await bob.login("bob", ("tech-talk",))
    alice = client("alice")
    await alice.login("alice", ("general", "tech-talk"))
    in_general = await alice.call(
        "send-message", {"roomId": "general", "text": "hi general", "clientMsgId": "m-1"}
    )
    in_tech = await alice.call(
        "send-message", {"roomId": "tech-talk", "text": "hi tech", "clientMsgId": "m-1"}
    )
    assert in_general["duplicate"] is False and in_tech["duplicate"] is False
    assert in_tech["seq"] == 1 and in_tech["id"] != in_general["id"]
    got = await bob.next("new-message")
    assert (got["roomId"], got["text"], got["clientMsgId"]) == ("tech-talk", "hi tech", "m-1")
    assert await server.store.count_messages() == 2


async def test_sending_to_a_room_not_joined_is_not_in_room(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice")
    await expect_failure(
        alice,
        "send-message",
        {"roomId": "general", "text": "hello?", "clientMsgId": unique_id()},
        ErrorCode.NOT_IN_ROOM,
    )


async def test_text_longer_than_2000_characters_is_message_too_long(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice", ("general",))
    await expect_failure(
        alice,
        "send-message",
        {"roomId": "general", "text": "x" * (MAX_TEXT_LENGTH + 1), "clientMsgId": unique_id()},
        ErrorCode.MESSAGE_TOO_LONG,
    )


async def test_text_of_exactly_2000_characters_is_accepted(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice", ("general",))
    message = await alice.say("general", "y" * MAX_TEXT_LENGTH)
    assert len(message["text"]) == MAX_TEXT_LENGTH


async def test_a_payload_with_a_wrong_field_type_is_invalid_payload(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice", ("general",))
    await expect_failure(
        alice,
        "send-message",
        {"roomId": "general", "text": 42, "clientMsgId": unique_id()},
        ErrorCode.INVALID_PAYLOAD,
    )


async def test_an_unknown_event_is_unknown_event(client: MakeClient) -> None:
    alice = client("alice")
    await alice.login("alice")
    await expect_failure(alice, "delete-everything", {"roomId": "general"}, ErrorCode.UNKNOWN_EVENT)


# -- typing ------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["typing-start", "typing-stop"])
async def test_typing_events_are_relayed_to_the_others_but_not_to_the_sender(
    client: MakeClient, event: str
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    assert await alice.call(event, {"roomId": "general"}) == {"ok": True}
    assert await bob.next(event) == {"roomId": "general", "user": "alice"}
    await alice.say("general", "marker")
    assert alice.received(event) == []


# -- disconnect and reconnection ---------------------------------------------------


async def test_disconnect_sends_user_left_in_every_room_the_user_was_in(
    client: MakeClient,
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general", "tech-talk"))
    alice = client("alice")
    await alice.login("alice", ("general", "tech-talk"))
    await alice.close()
    left = [await bob.next("user-left"), await bob.next("user-left")]
    assert sorted(left, key=lambda e: e["roomId"]) == [
        {"roomId": "general", "user": "alice"},
        {"roomId": "tech-talk", "user": "alice"},
    ]


async def test_reconnect_with_offsets_rejoins_and_replays_exactly_the_missed_messages(
    client: MakeClient,
) -> None:
    alice = client("alice")
    await alice.login("alice", ("general",))
    bob = client("bob")
    await bob.login("bob", ("general",))
    for n in (1, 2):
        await alice.say("general", f"seen {n}")
    last_seen = (await bob.next("new-message", match=lambda m: m["text"] == "seen 2"))["seq"]
    await bob.close()
    await alice.next("user-left")
    for n in (3, 4, 5):
        await alice.say("general", f"missed {n}")

    bob_again = client("bob-again")
    await bob_again.connect(
        {"username": "bob", "password": "bob", "offsets": {"general": last_seen}}
    )
    assert (await bob_again.next("connect-confirmed"))["user"] == "bob"
    joined = await bob_again.next("room-joined")
    assert joined["roomId"] == "general"
    assert [(m["seq"], m["text"]) for m in joined["history"]] == [
        (3, "missed 3"),
        (4, "missed 4"),
        (5, "missed 5"),
    ]
    assert await alice.next("user-joined") == {"roomId": "general", "user": "bob"}
    live = await alice.say("general", "live again")
    assert (await bob_again.next("new-message"))["id"] == live["id"]


# -- limits and failures -----------------------------------------------------------


async def test_too_many_events_too_fast_is_rate_limited_with_retry_after(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(rate_capacity=3.0, rate_per_second=1.0)
    alice = Recorder(srv.url, "alice")
    try:
        await alice.login("alice")
        for _ in range(10):
            ack = await alice.call("typing-start", {"roomId": "general"})
            if ack.get("error", {}).get("code") == ErrorCode.RATE_LIMITED.value:
                break
        else:
            raise AssertionError("ten events in a row were never rate limited")
        error = await alice.next("error", match=lambda e: e["code"] == "rate_limited")
        assert error == ack["error"]
        assert error["event"] == "typing-start"
        assert 0 < error["retryAfter"] <= 1.0
    finally:
        await alice.close()


async def test_a_closed_store_is_store_unavailable_and_nothing_is_broadcast(
    server: ChatServer, client: MakeClient
) -> None:
    bob = client("bob")
    await bob.login("bob", ("general",))
    alice = client("alice")
    await alice.login("alice", ("general",))
    await server.store.close()
    await expect_failure(
        alice,
        "send-message",
        {"roomId": "general", "text": "lost?", "clientMsgId": unique_id()},
        ErrorCode.STORE_UNAVAILABLE,
    )
    # typing-start does not need the store: it is the marker that bob is up to date.
    assert (await alice.call("typing-start", {"roomId": "general"}))["ok"] is True
    await bob.next("typing-start")
    assert bob.received("new-message") == []
    assert alice.received("new-message") == []


# -- transports ----------------------------------------------------------------------

# python-engineio holds a long-poll GET until ping_interval + ping_timeout even after
# the client said CLOSE, and the python-socketio client waits for it on disconnect: the
# polling tests use short pings so that closing takes about two seconds, not 45.
SHORT_PINGS = {"ping_interval": 1.0, "ping_timeout": 1.0}


async def test_the_polling_transport_works_for_login_join_and_send(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(**SHORT_PINGS)
    alice = Recorder(srv.url, "alice", transports=("polling",))
    try:
        await alice.connect()
        assert alice.sio.transport() == "polling"
        ack = await alice.call("authenticate", {"username": "alice", "password": "alice"})
        assert ack["ok"] is True
        await alice.next("connect-confirmed")
        joined = await alice.join("general")
        assert joined["members"] == ["alice"]
        message = await alice.say("general", "over long-polling")
        assert (message["user"], message["seq"]) == ("alice", 1)
    finally:
        await alice.close()


async def test_a_polling_client_and_a_websocket_client_chat_in_one_room(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(**SHORT_PINGS)
    polling = Recorder(srv.url, "alice", transports=("polling",))
    websocket = Recorder(srv.url, "bob")
    try:
        await polling.login("alice", ("general",))
        await websocket.login("bob", ("general",))
        sent = await websocket.say("general", "from the websocket")
        assert (await polling.next("new-message"))["id"] == sent["id"]
        answer = await polling.say("general", "from long-polling")
        echoed = await websocket.next("new-message", match=lambda m: m["id"] == answer["id"])
        assert echoed["text"] == "from long-polling"
    finally:
        await polling.close()
        await websocket.close()
