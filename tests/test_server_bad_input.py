"""Hostile input: the server answers each bad thing precisely, and bob keeps chatting.

Every case runs against a fresh demo server. A well-behaved client, bob, is in
``general`` and says something (and hears its echo) before and after the hostile client
acts; bob must never see an ``error`` or a message he did not send. The hostile client is
alice (logged in, also in ``general``) unless the case is about logging in. After every
case the hostile connections close, the server must hold bob's session and no other
(nothing leaked), and a newcomer, charlie, logs in, joins ``general`` and exchanges a
message with bob; the server then holds exactly their two sessions.

Part (a) sends the bad thing through python-socketio's client API (over WebSocket, and
a subset over long-polling), part (b) as raw Engine.IO / Socket.IO packets over a plain
WebSocket, part (c) as raw packets in long-polling POSTs. Each test id names the expected
outcome: an error code, a refused CONNECT (``connect_error``), a clean disconnect, or
"ignored" (nothing answers and the connection keeps working).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rawclient import RawPolling, RawSocket, Recorder, unique_id
from websockets.exceptions import ConnectionClosed

from tutorial.chat.auth import TokenSigner
from tutorial.chat.server import ChatServer
from tutorial.protocol.limits import MAX_PROTOCOL_STRIKES

pytestmark = pytest.mark.timeout(30)

# What bob may receive while the hostile client acts: presence and his own messages.
BOB_MAY_RECEIVE = {
    "connect",
    "connect-confirmed",
    "room-joined",
    "ack",
    "new-message",
    "user-joined",
    "user-left",
}
KIB = 1024


class WatchedSessions(dict[str, Any]):
    """``server.sessions``, waking waiters whenever a session comes or goes (no polling)."""

    def __init__(self, sessions: dict[str, Any]) -> None:
        super().__init__(sessions)
        self.changed = asyncio.Event()

    def __setitem__(self, sid: str, session: Any) -> None:
        super().__setitem__(sid, session)
        self.changed.set()

    def pop(self, sid: str, *default: Any) -> Any:
        session = super().pop(sid, *default)
        self.changed.set()
        return session

    def users(self) -> list[str | None]:
        return sorted((s.user for s in self.values()), key=str)

    async def until_users(self, users: list[str], timeout: float = 10) -> None:
        async def wait() -> None:
            while self.users() != users:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"sessions of {self.users()}, expected {users}") from None


def watch_sessions(server: ChatServer) -> WatchedSessions:
    watched = WatchedSessions(server.sessions)
    server.sessions = watched
    return watched


@dataclass
class Chat:
    """The scene of one case: the server, bob, the hostile client, and helpers."""

    server: ChatServer
    bob: Recorder
    alice: Recorder | None = None
    raw: RawSocket | None = None
    token: str = ""
    others: list[Recorder] = field(default_factory=list)
    sockets: list[RawSocket] = field(default_factory=list)
    pollings: list[RawPolling] = field(default_factory=list)
    transports: tuple[str, ...] = ("websocket",)
    """How the hostile clients made by :meth:`client` connect."""

    def client(self, name: str, transports: tuple[str, ...] | None = None) -> Recorder:
        rec = Recorder(self.server.url, name, transports or self.transports)
        self.others.append(rec)
        return rec

    async def raw_socket(self) -> RawSocket:
        sock = await RawSocket.open(self.server.port or 0)
        self.sockets.append(sock)
        return sock

    async def raw_polling(self) -> RawPolling:
        polling = await RawPolling.open(self.server.port or 0)
        self.pollings.append(polling)
        return polling

    def assert_bob_unharmed(self) -> None:
        unexpected = [n for n in self.bob.names() if n not in BOB_MAY_RECEIVE]
        assert unexpected == [], f"bob received {unexpected}: {self.bob.log}"
        messages = self.bob.received("new-message")
        assert [(m["user"], m["text"]) for m in messages] == [
            ("bob", "before"),
            ("bob", "after"),
            ("charlie", "fresh"),
        ]

    async def after_the_case(self) -> None:
        """bob still chats; the hostile connections go and leave no session behind; a
        newcomer logs in and exchanges a message with bob; two sessions remain."""
        await self.bob.say("general", "after")
        hostile = [*([self.alice] if self.alice else []), *self.others]
        await asyncio.gather(*(rec.close() for rec in hostile))
        for sock in [*([self.raw] if self.raw else []), *self.sockets]:
            await sock.close()
        for polling in self.pollings:
            await polling.close()
        sessions = self.server.sessions
        assert isinstance(sessions, WatchedSessions)
        await sessions.until_users(["bob"])
        charlie = self.client("charlie", ("websocket",))
        await charlie.login("charlie", ("general",))
        await self.bob.next("user-joined", match=lambda e: e["user"] == "charlie")
        await charlie.say("general", "fresh")
        heard = await self.bob.next("new-message", match=lambda m: m["text"] == "fresh")
        assert heard["user"] == "charlie"
        assert sessions.users() == ["bob", "charlie"] and len(sessions) == 2


# python-engineio logs these at ERROR (once each) when a polling request names a session
# the server has closed (a cut-off client still polling) or never had: not a failure.
LIBRARY_NOTICES = ("'Session is disconnected'", "Invalid session")


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """The server (aiohttp, engineio, socketio, asyncio) logged no ERROR while the case ran."""
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and not (r.name == "engineio.server" and r.getMessage().startswith(LIBRARY_NOTICES))
    ]
    assert errors == [], [f"{r.name}: {r.getMessage()}" for r in errors]


async def close_all(chat: Chat) -> None:
    for rec in [chat.bob, *([chat.alice] if chat.alice else []), *chat.others]:
        await rec.close()
    for sock in [*([chat.raw] if chat.raw else []), *chat.sockets]:
        await sock.close()
    for polling in chat.pollings:
        await polling.close()


@pytest.fixture
async def api_chat(server: ChatServer) -> AsyncIterator[Chat]:
    """bob and alice, both python-socketio clients, logged in and in ``general``."""
    watch_sessions(server)
    chat = Chat(server, Recorder(server.url, "bob"))
    chat.alice = Recorder(server.url, "alice")
    try:
        await chat.bob.login("bob", ("general",))
        await chat.alice.login("alice", ("general",))
        yield chat
    finally:
        await close_all(chat)


@pytest.fixture
async def raw_chat(server: ChatServer) -> AsyncIterator[Chat]:
    """bob (python-socketio) and alice over a raw WebSocket, both in ``general``."""
    watch_sessions(server)
    chat = Chat(server, Recorder(server.url, "bob"))
    try:
        await chat.bob.login("bob", ("general",))
        login = chat.client("alice-login")
        await login.connect()
        ack = await login.call("authenticate", {"username": "alice", "password": "alice"})
        chat.token = ack["token"]
        await login.close()
        chat.raw = await RawSocket.open(server.port or 0)
        reply = await chat.raw.connect({"token": chat.token})
        assert reply.startswith("40{"), reply
        assert (await chat.raw.call(1, "join-room", {"roomId": "general"}))["ok"] is True
        await chat.bob.next("user-joined", match=lambda e: e["user"] == "alice")
        yield chat
    finally:
        await close_all(chat)


Case = Callable[[Chat], Awaitable[None]]


# -- (a) through the python-socketio client API -----------------------------------------

NO_PAYLOAD = object()


def msg(**fields: Any) -> dict[str, Any]:
    """A send-message payload for ``general``, with ``fields`` replaced or (None) removed."""
    payload: dict[str, Any] = {"roomId": "general", "text": "hi", "clientMsgId": unique_id("a")}
    payload.update(fields)
    return {k: v for k, v in payload.items() if v is not None}


async def expect_error(rec: Recorder, event: str, payload: Any, code: str) -> None:
    """The ack says ``{ok: false, error: {code}}`` and an ``error`` event says the same."""
    ack = await rec.call(event, None if payload is NO_PAYLOAD else payload)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code, ack
    error = await rec.next("error")
    assert error == ack["error"]


def rejected(event: str, payload: Any, code: str) -> Case:
    async def case(chat: Chat) -> None:
        assert chat.alice is not None
        await expect_error(chat.alice, event, payload, code)

    return case


async def payload_over_the_buffer_limit_disconnects(chat: Chat) -> None:
    assert chat.alice is not None
    too_big = "x" * (chat.server.config.max_http_buffer_size + KIB)
    await chat.alice.emit("send-message", msg(text=too_big))
    await chat.alice.next("disconnect")
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}


async def events_before_authentication_are_unauthenticated(chat: Chat) -> None:
    anon = chat.client("anon")
    await anon.connect()
    await expect_error(anon, "send-message", msg(), "unauthenticated")
    await expect_error(anon, "join-room", {"roomId": "general"}, "unauthenticated")


def forged_token() -> str:
    return TokenSigner("not-the-server-secret").issue("bob")


async def expired_token(chat: Chat) -> str:
    secret = chat.server.config.secret or await chat.server.store.setting("token_secret", "-")

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * chat.server.config.token_ttl

    return str(
        URLSafeTimedSerializer(secret, salt="chat-token", signer=LongAgo).dumps({"u": "bob"})
    )


async def forged_token_in_authenticate_is_auth_failed(chat: Chat) -> None:
    mallory = chat.client("mallory")
    await mallory.connect()
    await expect_error(mallory, "authenticate", {"token": forged_token()}, "auth_failed")


async def forged_token_in_connect_is_refused(chat: Chat) -> None:
    data = await chat.client("mallory").connect_refused({"token": forged_token()})
    assert data["data"]["code"] == "auth_failed"


async def expired_token_in_authenticate_is_auth_failed(chat: Chat) -> None:
    mallory = chat.client("mallory")
    await mallory.connect()
    await expect_error(mallory, "authenticate", {"token": await expired_token(chat)}, "auth_failed")


async def expired_token_in_connect_is_refused(chat: Chat) -> None:
    data = await chat.client("mallory").connect_refused({"token": await expired_token(chat)})
    assert data["data"]["code"] == "auth_failed"


async def connect_offsets_not_an_object_are_refused(chat: Chat) -> None:
    auth = {"username": "alice", "password": "alice", "offsets": ["general", 3]}
    data = await chat.client("mallory").connect_refused(auth)
    assert data["data"]["code"] == "invalid_payload"


async def connect_password_with_lone_surrogate_is_refused(chat: Chat) -> None:
    data = await chat.client("mallory").connect_refused({"username": "alice", "password": "\ud800"})
    assert data["data"]["code"] == "invalid_payload"


async def connect_offset_beyond_json_integers_is_invalid_payload(chat: Chat) -> None:
    frank = chat.client("frank")
    await frank.connect({"username": "frank", "password": "frank", "offsets": {"general": 2**70}})
    await frank.next("connect-confirmed")
    error = await frank.next("error")
    assert (error["code"], error["event"]) == ("invalid_payload", "join-room")


async def ten_unknown_events_strike_out(chat: Chat) -> None:
    assert chat.alice is not None
    for n in range(MAX_PROTOCOL_STRIKES - 1):
        await expect_error(chat.alice, f"no-such-event-{n}", {}, "unknown_event")
    # The tenth strike is answered by the error event, then DISCONNECT (and no ack). Over
    # long-polling both come in one response, and python-socketio's client may run the
    # disconnect before the error handler: wait for both, in either order.
    await chat.alice.emit("no-such-event-9", {})
    seen: dict[str, object] = {}
    while len(seen) < 2:
        name, data = await asyncio.wait_for(chat.alice.queue.get(), 5)
        if name in ("error", "disconnect"):
            seen[name] = data
    assert isinstance(seen["error"], dict) and seen["error"]["code"] == "unknown_event"
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}


async def client_sent_malformed_event_name_is_invalid_payload(chat: Chat) -> None:
    assert chat.alice is not None
    await chat.alice.emit("__malformed__", "I made this up")
    error = await chat.alice.next("error")
    assert error["code"] == "invalid_payload"


async def authenticate_after_wrong_passwords_is_rate_limited(chat: Chat) -> None:
    mallory = chat.client("mallory")
    await mallory.connect()
    burst = int(chat.server.config.login_per_name[0])
    wrong = {"username": "alice", "password": "not-alices"}
    for _ in range(burst):
        await expect_error(mallory, "authenticate", wrong, "auth_failed")
    await expect_error(mallory, "authenticate", wrong, "rate_limited")
    assert mallory.received("error")[-1]["retryAfter"] > 0


async def join_room_flood_is_rate_limited(chat: Chat) -> None:
    assert chat.alice is not None
    alice = chat.alice
    count = int(chat.server.config.rate_capacity) + 5
    acks = await asyncio.gather(
        *(alice.call("join-room", {"roomId": "tech-talk"}) for _ in range(count))
    )
    limited = [a for a in acks if not a["ok"]]
    assert limited and all(a["error"]["code"] == "rate_limited" for a in limited), acks
    assert all(a["error"]["retryAfter"] > 0 for a in limited)
    assert len(alice.received("error")) == len(limited)


def before_authentication(event: str) -> Case:
    async def case(chat: Chat) -> None:
        anon = chat.client("anon")
        await anon.connect()
        await expect_error(anon, event, {"roomId": "general"}, "unauthenticated")

    return case


def nested(depth: int) -> Any:
    value: Any = "general"
    for _ in range(depth):
        value = [value]
    return value


API_CASES = [
    pytest.param(rejected("send-message", msg(roomId=7), "invalid_payload"), id="roomId-int"),
    pytest.param(rejected("send-message", msg(text=["hi"]), "invalid_payload"), id="text-list"),
    pytest.param(rejected("send-message", msg(text=1.5), "invalid_payload"), id="text-number"),
    pytest.param(
        rejected("send-message", msg(clientMsgId=None), "invalid_payload"),
        id="clientMsgId-missing",
    ),
    pytest.param(
        rejected("send-message", msg(clientMsgId=12), "invalid_payload"), id="clientMsgId-int"
    ),
    pytest.param(
        rejected("join-room", {"roomId": "general", "leaveOthers": "yes"}, "invalid_payload"),
        id="leaveOthers-string",
    ),
    pytest.param(
        rejected("join-room", {"roomId": "general", "since": True}, "invalid_payload"),
        id="since-bool",
    ),
    pytest.param(
        rejected("join-room", {"roomId": "general", "since": "3"}, "invalid_payload"),
        id="since-string",
    ),
    pytest.param(
        rejected("join-room", {"roomId": "general", "since": 2**70}, "invalid_payload"),
        id="since-beyond-2**53",
    ),
    pytest.param(rejected("join-room", "general", "invalid_payload"), id="payload-a-string"),
    pytest.param(rejected("join-room", ["general"], "invalid_payload"), id="payload-a-list"),
    pytest.param(rejected("join-room", 42, "invalid_payload"), id="payload-a-number"),
    pytest.param(rejected("join-room", (None,), "invalid_payload"), id="payload-null"),
    pytest.param(
        rejected("send-message", (msg(), msg()), "invalid_payload"), id="two-payload-arguments"
    ),
    pytest.param(rejected("send-message", NO_PAYLOAD, "invalid_payload"), id="no-payload"),
    pytest.param(
        rejected("join-room", {"roomId": nested(40)}, "invalid_payload"), id="nested-40-deep"
    ),
    pytest.param(rejected("shutdown-server", {}, "unknown_event"), id="unknown-event"),
    pytest.param(rejected("x" * 1000, {}, "unknown_event"), id="unknown-event-1000-char-name"),
    pytest.param(rejected("disconnect", {}, "invalid_payload"), id="event-named-disconnect"),
    *(
        # The protocol's reserved names (protocol/limits.py), one table for the decoder
        # and the server.
        pytest.param(rejected(name, {}, "invalid_payload"), id=f"event-named-{name}")
        for name in ("disconnecting", "newListener", "removeListener", "connect_error")
    ),
    pytest.param(
        rejected("connect", {"username": "bob", "password": "bob"}, "invalid_payload"),
        id="event-named-connect",
    ),
    pytest.param(
        client_sent_malformed_event_name_is_invalid_payload, id="event-named-__malformed__"
    ),
    pytest.param(
        rejected("send-message", msg(text="x" * 5000), "message_too_long"), id="text-5000-chars"
    ),
    pytest.param(payload_over_the_buffer_limit_disconnects, id="payload-over-64KiB-disconnect"),
    pytest.param(
        rejected("join-room", {"roomId": "no-such-room"}, "room_not_found"), id="unknown-room"
    ),
    pytest.param(
        rejected("join-room", {"roomId": "project-alpha"}, "forbidden"), id="private-room"
    ),
    pytest.param(
        rejected("send-message", msg(roomId="tech-talk"), "not_in_room"), id="send-not-joined"
    ),
    pytest.param(
        rejected("typing-start", {"roomId": "tech-talk"}, "not_in_room"), id="typing-not-joined"
    ),
    pytest.param(
        rejected("leave-room", {"roomId": "tech-talk"}, "not_in_room"), id="leave-not-joined"
    ),
    pytest.param(
        rejected("join-room", {"roomId": "General!"}, "invalid_payload"), id="roomId-bad-chars"
    ),
    pytest.param(
        rejected("join-room", {"roomId": "../etc/passwd"}, "invalid_payload"),
        id="roomId-path-traversal",
    ),
    pytest.param(
        rejected("join-room", {"roomId": "a" * 200}, "invalid_payload"), id="roomId-200-chars"
    ),
    pytest.param(
        rejected("send-message", msg(clientMsgId="has spaces"), "invalid_payload"),
        id="clientMsgId-spaces",
    ),
    pytest.param(
        rejected("send-message", msg(clientMsgId="c" * 65), "invalid_payload"),
        id="clientMsgId-65-chars",
    ),
    pytest.param(rejected("send-message", msg(text=""), "invalid_payload"), id="text-empty"),
    pytest.param(
        rejected("send-message", msg(text=" \t\n "), "invalid_payload"), id="text-whitespace"
    ),
    pytest.param(
        rejected("send-message", msg(text="a\ud800b"), "invalid_payload"),
        id="text-lone-surrogate",
    ),
    pytest.param(
        rejected("authenticate", {"username": "alice", "password": 1234}, "invalid_payload"),
        id="authenticate-password-int",
    ),
    pytest.param(
        rejected("authenticate", {"username": "alice", "password": "\ud800"}, "invalid_payload"),
        id="authenticate-password-lone-surrogate",
    ),
    pytest.param(
        rejected("authenticate", {"username": "alice", "password": "p" * 201}, "invalid_payload"),
        id="authenticate-password-201-chars",
    ),
    pytest.param(
        rejected(
            "authenticate", {"username": "Robert'); DROP", "password": "x"}, "invalid_payload"
        ),
        id="authenticate-username-bad-chars",
    ),
    pytest.param(rejected("authenticate", {}, "invalid_payload"), id="authenticate-empty"),
    pytest.param(events_before_authentication_are_unauthenticated, id="before-authentication"),
    pytest.param(forged_token_in_authenticate_is_auth_failed, id="forged-token-authenticate"),
    pytest.param(forged_token_in_connect_is_refused, id="forged-token-connect-error"),
    pytest.param(expired_token_in_authenticate_is_auth_failed, id="expired-token-authenticate"),
    pytest.param(expired_token_in_connect_is_refused, id="expired-token-connect-error"),
    pytest.param(connect_offsets_not_an_object_are_refused, id="connect-offsets-list"),
    pytest.param(
        connect_password_with_lone_surrogate_is_refused, id="connect-password-lone-surrogate"
    ),
    pytest.param(connect_offset_beyond_json_integers_is_invalid_payload, id="connect-offset-2**70"),
    pytest.param(ten_unknown_events_strike_out, id="ten-unknown-events-disconnect"),
    pytest.param(
        authenticate_after_wrong_passwords_is_rate_limited, id="authenticate-rate_limited"
    ),
    pytest.param(join_room_flood_is_rate_limited, id="join-room-rate_limited"),
    *(
        pytest.param(before_authentication(event), id=f"{event}-unauthenticated")
        for event in ("leave-room", "typing-start", "typing-stop")
    ),
    *(
        pytest.param(rejected(event, {"roomId": 7}, "invalid_payload"), id=f"{event}-roomId-int")
        for event in ("leave-room", "typing-start", "typing-stop")
    ),
    *(
        pytest.param(rejected(event, NO_PAYLOAD, "invalid_payload"), id=f"{event}-no-payload")
        for event in ("leave-room", "typing-start", "typing-stop")
    ),
]

# The same hostility from a client on HTTP long-polling (bob stays on WebSocket).
POLLING_IDS = {
    "roomId-int",
    "no-payload",
    "nested-40-deep",
    "unknown-event",
    "text-5000-chars",
    "private-room",
    "event-named-disconnect",
    "before-authentication",
    "forged-token-connect-error",
    "authenticate-rate_limited",
    "ten-unknown-events-disconnect",
}
POLLING_CASES = [case for case in API_CASES if case.id in POLLING_IDS]
assert len(POLLING_CASES) == len(POLLING_IDS)


@pytest.fixture
async def polling_chat(custom_server: Callable[..., Awaitable[ChatServer]]) -> AsyncIterator[Chat]:
    """bob on WebSocket, alice (and every other hostile client) on long-polling only.

    python-engineio answers a polling client's CLOSE (or a refused CONNECT) without
    releasing its pending GET, which returns after ping interval + ping timeout: 1 s + 2 s
    bound each client's close to 3 s (with the defaults, 45 s: longer than a case).
    """
    server = await custom_server(ping_interval=1.0, ping_timeout=2.0)
    watch_sessions(server)
    chat = Chat(server, Recorder(server.url, "bob"), transports=("polling",))
    chat.alice = Recorder(server.url, "alice", transports=("polling",))
    try:
        await chat.bob.login("bob", ("general",))
        await chat.alice.login("alice", ("general",))
        yield chat
    finally:
        await close_all(chat)


async def run_hostile_case(chat: Chat, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    """bob chats, the hostile case runs, the hostile connections close; then bob must be
    unharmed (alone on the server, a newcomer chats with him) and nothing logged a traceback."""
    await chat.bob.say("general", "before")
    await case(chat)
    await chat.after_the_case()
    chat.assert_bob_unharmed()
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize("case", POLLING_CASES)
async def test_hostile_input_over_long_polling_is_answered_and_bob_keeps_chatting(
    polling_chat: Chat, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_hostile_case(polling_chat, case, caplog)


@pytest.mark.parametrize("case", API_CASES)
async def test_hostile_api_input_is_answered_and_bob_keeps_chatting(
    api_chat: Chat, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_hostile_case(api_chat, case, caplog)


# -- (b) raw Engine.IO / Socket.IO packets over a plain WebSocket -----------------------

MARKER_ACK_ID = 900


async def raw_marker(sock: RawSocket) -> None:
    """A valid call whose ack proves the connection is alive and logged in."""
    ack = await sock.call(MARKER_ACK_ID, "join-room", {"roomId": "general"})
    assert ack["ok"] is True, ack


def error_frames(frames: list[str | bytes]) -> list[dict[str, Any]]:
    errors = []
    for frame in frames:
        if isinstance(frame, str) and frame.startswith('42["error",'):
            errors.append(json.loads(frame[2:])[1])
    return errors


def answered_with(*frames: str | bytes, errors: int = 1) -> Case:
    """Sending ``frames`` earns ``errors`` x invalid_payload; the connection lives on."""

    async def case(chat: Chat) -> None:
        assert chat.raw is not None
        for frame in frames:
            await chat.raw.send(frame)
        for _ in range(errors):
            error = await chat.raw.event("error")
            assert error["code"] == "invalid_payload", error
            assert error["event"] is None
        await raw_marker(chat.raw)
        assert len(error_frames(chat.raw.frames)) == errors

    return case


def closes_the_connection(frame: str | bytes, code: int) -> Case:
    """Sending ``frame`` makes the server close the WebSocket with close code ``code``;
    bob hears alice left."""

    async def case(chat: Chat) -> None:
        assert chat.raw is not None
        await chat.raw.send(frame)
        seen = await chat.raw.closed()
        assert error_frames(seen) == []
        assert chat.raw.close_code == code
        assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}

    return case


async def aborted_transport_is_user_left(chat: Chat) -> None:
    """The TCP connection drops without a close frame: bob still hears alice left."""
    assert chat.raw is not None
    chat.raw.abort()
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}


def ignored(frame: str) -> Case:
    """The library drops ``frame`` without an answer; the connection keeps working."""

    async def case(chat: Chat) -> None:
        assert chat.raw is not None
        await chat.raw.send(frame)
        await raw_marker(chat.raw)
        assert error_frames(chat.raw.frames) == []

    return case


def connect_refused(connect_packet: str, code: str) -> Case:
    """A fresh connection's CONNECT is refused with ``44{message, data: {code}}``."""

    async def case(chat: Chat) -> None:
        sock = await chat.raw_socket()
        await sock.send(connect_packet)
        reply = await sock.until("4")
        assert isinstance(reply, str) and reply.startswith("44{"), reply
        assert json.loads(reply[2:])["data"]["code"] == code

    return case


async def connect_to_unknown_namespace_is_refused_by_the_library(chat: Chat) -> None:
    sock = await chat.raw_socket()
    await sock.send("40/admin,")
    assert await sock.until("44") == '44/admin,"Unable to connect"'


async def second_connect_is_refused_and_the_first_session_lives(chat: Chat) -> None:
    assert chat.raw is not None
    await chat.raw.send("40" + json.dumps({"token": chat.token}))
    assert await chat.raw.until("44") == '44"Unable to connect"'
    await raw_marker(chat.raw)


async def forged_token_connect_is_auth_failed(chat: Chat) -> None:
    sock = await chat.raw_socket()
    reply = await sock.connect({"token": forged_token()})
    assert reply.startswith("44{"), reply
    assert json.loads(reply[2:])["data"]["code"] == "auth_failed"


async def ten_malformed_packets_cut_the_connection_off(chat: Chat) -> None:
    assert chat.raw is not None
    for _ in range(MAX_PROTOCOL_STRIKES):
        await chat.raw.send("42[]")
        error = await chat.raw.event("error")
        assert error["code"] == "invalid_payload"
    assert await chat.raw.until("41") == "41"  # Socket.IO DISCONNECT of the namespace
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}
    # Then the whole connection ends (Engine.IO CLOSE, then the WebSocket closes): a
    # flooder cannot go on sending on the same connection.
    assert await chat.raw.until("1") == "1"
    with pytest.raises(ConnectionClosed):
        await chat.raw.recv()
    assert len(error_frames(chat.raw.frames)) == MAX_PROTOCOL_STRIKES


async def client_disconnect_packet_leaves_cleanly(chat: Chat) -> None:
    assert chat.raw is not None
    await chat.raw.send("41")
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}


async def engineio_close_packet_ends_the_session(chat: Chat) -> None:
    assert chat.raw is not None
    await chat.raw.send("1")
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}


BINARY_EVENT = '451-["send-message",{"_placeholder":true,"num":0}]'
# An undecodable Engine.IO packet: the connection is closed cleanly (1000, after the
# close handshake); a frame over the size limit: 1009 MESSAGE_TOO_BIG (RFC 6455, 7.4.1).
CLOSE_BAD = 1000
RANDOM_BYTES = random.Random(6455).randbytes(64)
NESTED_60 = "[" * 60 + "]" * 60

RAW_CASES = [
    pytest.param(answered_with('42["send-message",{'), id="invalid-json->invalid_payload"),
    pytest.param(answered_with("42[]"), id="42[]->invalid_payload"),
    pytest.param(answered_with("42{}"), id="42{}->invalid_payload"),
    pytest.param(answered_with("42[1,2]"), id="42[1,2]->invalid_payload"),
    pytest.param(answered_with('42"x"'), id='42"x"->invalid_payload'),
    pytest.param(answered_with("4" + "[" * 60), id="4+60-open-brackets->invalid_payload"),
    pytest.param(
        answered_with('42["send-message",' + NESTED_60 + "]"),
        id="60-deep-nesting->invalid_payload",
    ),
    pytest.param(answered_with("49"), id="unknown-sio-type-49->invalid_payload"),
    pytest.param(answered_with("4x"), id="4x->invalid_payload"),
    pytest.param(answered_with("4"), id="empty-sio-packet->invalid_payload"),
    pytest.param(
        answered_with(BINARY_EVENT, b"\x00\x01\x02", errors=2),
        id="binary-event+attachment->invalid_payload-x2",
    ),
    pytest.param(answered_with("44{}"), id="client-CONNECT_ERROR-44->invalid_payload"),
    pytest.param(answered_with(RANDOM_BYTES), id="random-binary-frame->invalid_payload"),
    pytest.param(answered_with('42["disconnect"]'), id="event-named-disconnect->invalid_payload"),
    pytest.param(
        answered_with('42["connect",{"token":"x"}]'), id="event-named-connect->invalid_payload"
    ),
    pytest.param(closes_the_connection("9abc", CLOSE_BAD), id="eio-type-9->clean-close"),
    pytest.param(closes_the_connection("x", CLOSE_BAD), id="eio-non-digit-type->clean-close"),
    pytest.param(closes_the_connection("", CLOSE_BAD), id="empty-text-frame->clean-close"),
    pytest.param(closes_the_connection("bAAA", CLOSE_BAD), id="eio-bad-base64->clean-close"),
    pytest.param(
        closes_the_connection("4" + "x" * 70 * KIB, 1009), id="70KiB-frame->clean-close-1009"
    ),
    pytest.param(aborted_transport_is_user_left, id="tcp-abort->user-left"),
    pytest.param(ignored('42/admin,["x"]'), id="event-to-unknown-namespace->ignored"),
    pytest.param(ignored("43999[]"), id="ack-never-requested->ignored"),
    pytest.param(ignored("6"), id="eio-noop->ignored"),
    pytest.param(
        connect_refused('40"token"', "invalid_payload"), id="connect-auth-string->connect-error"
    ),
    pytest.param(
        connect_refused("40[1]", "invalid_payload"), id="connect-auth-list->connect-error"
    ),
    pytest.param(
        connect_refused("40{", "invalid_payload"), id="connect-auth-bad-json->connect-error"
    ),
    pytest.param(forged_token_connect_is_auth_failed, id="connect-forged-token->auth_failed"),
    pytest.param(
        connect_to_unknown_namespace_is_refused_by_the_library,
        id="connect-unknown-namespace->library-connect-error",
    ),
    pytest.param(
        second_connect_is_refused_and_the_first_session_lives,
        id="second-connect->library-connect-error",
    ),
    pytest.param(ten_malformed_packets_cut_the_connection_off, id="10-malformed->41-and-close"),
    pytest.param(client_disconnect_packet_leaves_cleanly, id="client-41->user-left"),
    pytest.param(engineio_close_packet_ends_the_session, id="eio-close-1->user-left"),
]


@pytest.mark.parametrize("case", RAW_CASES)
async def test_hostile_raw_packets_are_answered_and_bob_keeps_chatting(
    raw_chat: Chat, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_hostile_case(raw_chat, case, caplog)


# -- (c) raw packets in long-polling POSTs ------------------------------------------------


@pytest.fixture
async def polling_raw_chat(
    custom_server: Callable[..., Awaitable[ChatServer]],
) -> AsyncIterator[Chat]:
    """bob (python-socketio, WebSocket) and alice over hand-made long-polling requests."""
    server = await custom_server(ping_interval=1.0, ping_timeout=2.0)
    watch_sessions(server)
    chat = Chat(server, Recorder(server.url, "bob"))
    try:
        await chat.bob.login("bob", ("general",))
        assert server.tokens is not None
        alice = await chat.raw_polling()
        assert await alice.post("40" + json.dumps({"token": server.tokens.issue("alice")})) == 200
        assert (await alice.until("40")).startswith("40{")
        await polling_marker(alice)
        await chat.bob.next("user-joined", match=lambda e: e["user"] == "alice")
        yield chat
    finally:
        await close_all(chat)


async def polling_marker(polling: RawPolling, ack_id: int = MARKER_ACK_ID) -> None:
    """A valid call over polling whose ack proves the session is alive and logged in."""
    assert await polling.post(f"42{ack_id}" + json.dumps(["join-room", {"roomId": "general"}]))
    ack = await polling.until(f"43{ack_id}[")
    assert json.loads(ack[len(f"43{ack_id}") :])[0]["ok"] is True


def polling_answered_with(*packets: str, errors: int = 1) -> Case:
    """POSTing ``packets`` (in one body) earns ``errors`` x invalid_payload; alice's
    session lives on."""

    async def case(chat: Chat) -> None:
        alice = chat.pollings[0]
        assert await alice.post(*packets) == 200
        for _ in range(errors):
            error = json.loads((await alice.until('42["error",'))[2:])[1]
            assert error["code"] == "invalid_payload", error
        await polling_marker(alice, MARKER_ACK_ID + 1)

    return case


async def polling_good_and_bad_in_one_body(chat: Chat) -> None:
    alice = chat.pollings[0]
    good = "42901" + json.dumps(["join-room", {"roomId": "general"}])
    assert await alice.post(good, "42[1,2]", "42") == 200
    error = json.loads((await alice.until('42["error",'))[2:])[1]
    assert error["code"] == "invalid_payload"
    await polling_marker(alice, MARKER_ACK_ID + 2)


async def polling_undecodable_packet_ends_the_session(chat: Chat) -> None:
    alice = chat.pollings[0]
    assert await alice.post("x") == 400  # the guard: undecodable Engine.IO packet
    assert await chat.bob.next("user-left") == {"roomId": "general", "user": "alice"}
    status, _ = await alice.get()
    assert status == 400  # the session is gone: its sid is no longer valid


async def polling_post_to_a_made_up_session_is_400(chat: Chat) -> None:
    alice = chat.pollings[0]
    stranger = RawPolling(alice.session, alice.url.replace(alice.sid, "made-up-sid"), "x")
    assert await stranger.post('42["send-message",{}]') == 400
    await polling_marker(alice, MARKER_ACK_ID + 3)


POLLING_RAW_CASES = [
    pytest.param(polling_answered_with("42[]"), id="42[]->invalid_payload"),
    pytest.param(polling_answered_with('42["send-message",{'), id="invalid-json->invalid_payload"),
    pytest.param(polling_answered_with("4" + "[" * 60), id="60-open-brackets->invalid_payload"),
    pytest.param(polling_answered_with("49"), id="unknown-sio-type->invalid_payload"),
    pytest.param(polling_good_and_bad_in_one_body, id="good+bad-in-one-body->ack+error"),
    pytest.param(polling_undecodable_packet_ends_the_session, id="eio-bad-type->session-ends"),
    pytest.param(polling_post_to_a_made_up_session_is_400, id="made-up-sid->400"),
]


@pytest.mark.parametrize("case", POLLING_RAW_CASES)
async def test_hostile_polling_requests_are_answered_and_bob_keeps_chatting(
    polling_raw_chat: Chat, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    await run_hostile_case(polling_raw_chat, case, caplog)
