"""Connections under abuse: a bound on what a non-reading client costs, floods cut off,
connections and re-joined rooms per user capped, password guessing throttled, rate
buckets freed, presence once per user (so storms and shutdowns stay linear).

The smallest versions that still prove each bound; ``scripts/abuse_probes.py`` runs the
heavy ones (a never-reading client for minutes, 1,000 sockets of one user, guessing
for a minute) and reports memory and time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from rawclient import Recorder, unique_id

from tutorial.chat.ratelimit import LoginThrottle, RateLimiter
from tutorial.chat.sendqueue import CLOSE_GRACE_SECONDS
from tutorial.chat.server import MAX_PROTOCOL_STRIKES, REFUSAL_BURST, ChatServer
from tutorial.client.client import ChatClient, ChatError, ClientOptions
from tutorial.client.recovery import Backoff
from tutorial.client.states import State
from tutorial.protocol.catalog import ErrorCode

pytestmark = pytest.mark.timeout(90)

MakeServer = Callable[..., Awaitable[ChatServer]]


@pytest.fixture
async def recorders() -> AsyncIterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(url: str, name: str = "") -> Recorder:
        rec = Recorder(url, name)
        made.append(rec)
        return rec

    try:
        yield make
    finally:
        for rec in made:
            await rec.close()


def refusal(data: Any) -> dict[str, Any]:
    """The ``data`` of a CONNECT_ERROR."""
    assert isinstance(data, dict) and isinstance(data.get("data"), dict), data
    return dict(data["data"])


# -- a client that never reads ------------------------------------------------------------


def client_text_frame(text: str) -> bytes:
    """A client's (masked) WebSocket text frame, up to 65,535 bytes."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class NeverReader:
    """A raw WebSocket client that logs in, joins rooms, then stops reading.

    Its kernel receive buffer is made tiny, and its transport stops reading, so what
    the server sends piles up on the server's side, as with a stalled phone or a
    hostile script. :meth:`read_all` later reads what did arrive, frame by frame.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, auth: dict[str, Any], rooms: tuple[str, ...]) -> NeverReader:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        self = cls(reader, writer)
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        _, payload = await asyncio.wait_for(self.frame(), 5)
        assert payload.startswith(b"0"), payload  # Engine.IO OPEN
        self.send("40" + json.dumps(auth))
        while not (await asyncio.wait_for(self.frame(), 5))[1].startswith(b"40"):
            pass
        for i, room in enumerate(rooms):
            self.send(f"42{i}" + json.dumps(["join-room", {"roomId": room}]))
            while not (await asyncio.wait_for(self.frame(), 5))[1].startswith(b"43"):
                pass
        writer.transport.pause_reading()  # from here on, nothing is read
        return self

    def send(self, text: str) -> None:
        self.writer.write(client_text_frame(text))

    async def frame(self) -> tuple[int, bytes]:
        """One server frame (unmasked): opcode and payload."""
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(n)

    async def read_all(self, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        """Read again, to the end of the connection: every frame that arrived."""
        self.writer.transport.resume_reading()
        frames = []
        try:
            while True:
                frames.append(await asyncio.wait_for(self.frame(), timeout))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        return frames

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.mark.parametrize("reads_later", [False, True], ids=["never-reads", "reads-later"])
async def test_a_client_that_does_not_read_is_closed_with_1008_and_its_queue_dropped(
    custom_server: MakeServer, recorders: Callable[..., Recorder], reads_later: bool
) -> None:
    srv = await custom_server(max_send_queue=32 * 1024, rate_capacity=1000.0)
    stalled = await NeverReader.open(
        srv.port, {"username": "alice", "password": "alice"}, ("general",)
    )
    try:
        # Loopback TCP would buffer megabytes in the kernel first (send buffer
        # autotuning); a small send buffer on the server's side of this one connection
        # stands for a slow link, so the bound is reached in a few hundred KB.
        local_port = stalled.writer.get_extra_info("sockname")[1]
        for transport in srv.send_policy._transports.values():
            if transport.get_extra_info("peername")[1] == local_port:
                transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
                )
        bob = recorders(srv.url, "bob")
        await bob.login("bob", rooms=("general",))
        text = "x" * 1900
        for k in range(400):  # about 800 KB at most: far past every buffer on the way
            ack = await bob.call(
                "send-message", {"roomId": "general", "text": text, "clientMsgId": f"f{k}"}
            )
            assert ack["ok"], ack
            if srv.send_policy.overflows:
                break
        assert srv.send_policy.overflows == 1, "the client that does not read was never cut off"
        started = time.monotonic()
        if reads_later:
            # What reached it ends with a CLOSE frame: code 1008 and the reason.
            frames = await stalled.read_all()
            opcode, payload = frames[-1]
            assert opcode == 0x8, frames[-3:]
            assert int.from_bytes(payload[:2], "big") == 1008
            assert payload[2:].decode() == f"send queue over {32 * 1024} bytes"
        # Either way the connection ends (at the latest after the close grace), and
        # presence sees alice leave: her session and its queue are gone.
        assert await bob.next("user-left", timeout=10) == {"roomId": "general", "user": "alice"}
        assert time.monotonic() - started < CLOSE_GRACE_SECONDS + 3.0
        assert not [s for s in srv.sessions.values() if s.user == "alice"]
        assert all(s.queue.bytes == 0 for s in srv.sio.eio.sockets.values() if s.closed)
        # bob never noticed.
        await bob.say("general", "still here")
    finally:
        stalled.close()


# -- floods of refused events ------------------------------------------------------------


@pytest.mark.parametrize(
    ("room", "capacity", "code"),
    [
        pytest.param("tech-talk", 1000.0, "not_in_room", id="not-in-room"),
        pytest.param("general", 3.0, "rate_limited", id="rate-limited"),
    ],
)
async def test_a_flood_of_refused_events_cuts_the_connection_off(
    custom_server: MakeServer,
    recorders: Callable[..., Recorder],
    room: str,
    capacity: float,
    code: str,
) -> None:
    srv = await custom_server(rate_capacity=capacity, rate_per_second=1.0)
    alice = recorders(srv.url, "alice")
    await alice.login("alice", rooms=("general",))
    for _ in range(100):  # no waiting for answers: a flood
        await alice.emit("typing-start", {"roomId": room})
    await alice.next("disconnect", timeout=10)
    errors = [e for e in alice.received("error") if e["code"] == code]
    # Cut off once the refusal budget is gone (a little comes back while it floods).
    assert REFUSAL_BURST < len(errors) <= REFUSAL_BURST + 5
    assert srv.cut_offs == 1


async def test_a_few_refusals_apart_do_not_cut_a_client_off(
    server: ChatServer, recorders: Callable[..., Recorder]
) -> None:
    alice = recorders(server.url, "alice")
    await alice.login("alice", rooms=("general",))
    for _ in range(MAX_PROTOCOL_STRIKES - 1):
        ack = await alice.call("typing-start", {"roomId": "tech-talk"})
        assert ack["error"]["code"] == "not_in_room"
    await alice.say("general", "still connected")
    assert server.cut_offs == 0


# -- caps: connections per user, rooms per connection -----------------------------------


async def test_a_user_may_hold_at_most_max_connections_per_user(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server(max_connections_per_user=2)
    first, second, third = (recorders(srv.url, f"alice-{i}") for i in range(3))
    await first.login("alice")
    await second.login("alice")
    data = refusal(await third.connect_refused({"username": "alice", "password": "alice"}))
    assert data["code"] == ErrorCode.TOO_MANY_CONNECTIONS.value
    # Another user is not affected, and a closed connection frees its place.
    await recorders(srv.url, "bob").login("bob")
    await first.close()
    fourth = recorders(srv.url, "alice-4")
    await fourth.login("alice")


async def test_rooms_rejoined_through_connect_offsets_are_capped_and_rate_limited(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server(max_rooms_per_connection=2, rate_capacity=3.0, rate_per_second=0.5)
    alice = {"username": "alice", "password": "alice"}
    three = {"general": 0, "tech-talk": 0, "private-chat": 0}
    data = refusal(await recorders(srv.url, "a1").connect_refused({**alice, "offsets": three}))
    assert data["code"] == ErrorCode.TOO_MANY_ROOMS.value
    two = {"general": 0, "tech-talk": 0}
    first = recorders(srv.url, "a2")
    await first.connect({**alice, "offsets": two})
    await first.next("room-joined")
    await first.next("room-joined")
    # 3 tokens, 2 spent: re-joining two more rooms at once must wait.
    data = refusal(await recorders(srv.url, "a3").connect_refused({**alice, "offsets": two}))
    assert data["code"] == ErrorCode.RATE_LIMITED.value
    assert 0 < data["retryAfter"] <= 2.0
    # join-room counts against the same cap.
    ack = await first.call("join-room", {"roomId": "private-chat"})
    assert ack["error"]["code"] == ErrorCode.TOO_MANY_ROOMS.value


# -- password guessing -------------------------------------------------------------------


async def test_password_guesses_are_throttled_per_user_name(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server(login_per_name=(3.0, 3.0 / 60))
    codes = []
    for k in range(6):
        rec = recorders(srv.url, f"guess-{k}")
        data = refusal(await rec.connect_refused({"username": "alice", "password": f"no{k}"}))
        codes.append(data["code"])
        if data["code"] == "rate_limited":
            assert 10 < data["retryAfter"] <= 20  # one attempt comes back every 20 s
    assert codes == ["auth_failed"] * 3 + ["rate_limited"] * 3
    # The authenticate event is throttled the same way (the same bucket).
    anon = recorders(srv.url, "anon")
    await anon.connect()
    ack = await anon.call("authenticate", {"username": "alice", "password": "no-again"})
    assert ack["error"]["code"] == "rate_limited" and ack["error"]["retryAfter"] > 10
    # Another name is still checked; a token login is not a guess and still works.
    await recorders(srv.url, "bob").login("bob")
    assert srv.logins_throttled == 4


async def test_right_passwords_use_no_attempts_and_addresses_are_throttled_too(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server(login_per_name=(2.0, 2.0 / 60), login_per_address=(3.0, 3.0 / 60))
    for k in range(5):  # five right passwords in a row: never throttled
        await recorders(srv.url, f"alice-{k}").login("alice")
    # Three wrong passwords for three names from this address use up the address.
    for name in ("bob", "charlie", "diana"):
        data = refusal(
            await recorders(srv.url, name).connect_refused({"username": name, "password": "wrong"})
        )
        assert data["code"] == "auth_failed"
    data = refusal(
        await recorders(srv.url, "eve").connect_refused({"username": "eve", "password": "eve"})
    )
    assert data["code"] == "rate_limited"


def test_the_login_throttle_allows_at_most_ten_guesses_a_minute_per_name() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    allowed = 0
    for step in range(600):  # one guess every 0.1 s for a minute
        now[0] = step * 0.1
        if throttle.reserve("alice", f"198.51.100.{step % 200}") == 0.0:
            allowed += 1
    assert allowed <= 10


# -- rate buckets are freed --------------------------------------------------------------


async def test_anonymous_connections_leave_no_rate_bucket_behind(
    server: ChatServer, recorders: Callable[..., Recorder]
) -> None:
    for k in range(20):
        rec = recorders(server.url, f"anon-{k}")
        await rec.connect()
        ack = await rec.call("authenticate", {})
        assert ack["error"]["code"] == "invalid_payload"
        await rec.close()
    marker = recorders(server.url, "alice")
    await marker.login("alice")  # its CONNECT was handled after every disconnect above
    assert len(server.limiter) == 0


def test_refilled_buckets_are_swept_as_the_table_grows() -> None:
    now = [0.0]
    limiter = RateLimiter(capacity=2.0, rate=1.0, clock=lambda: now[0])
    for k in range(5000):
        limiter.take(f"user-{k}")
        now[0] += 0.01
    # Only the buckets used in the last two seconds (not yet refilled) are kept.
    assert len(limiter) <= RateLimiter.SWEEP_AT + 200
    now[0] += 10
    limiter.sweep()
    assert len(limiter) == 0


# -- presence per user ----------------------------------------------------------------------


async def test_a_user_with_two_connections_is_announced_once_and_leaves_once(
    server: ChatServer, recorders: Callable[..., Recorder]
) -> None:
    bob = recorders(server.url, "bob")
    await bob.login("bob", rooms=("general",))
    tab1, tab2 = recorders(server.url, "alice-1"), recorders(server.url, "alice-2")
    await tab1.login("alice", rooms=("general",))
    assert await bob.next("user-joined") == {"roomId": "general", "user": "alice"}
    joined = await tab2.login("alice", rooms=("general",))
    assert joined["user"] == "alice"
    await tab1.close()
    marker = await tab2.say("general", "I am still here")
    await bob.next("new-message", match=lambda m: m["id"] == marker["id"])
    # Nothing about alice between her first join and that marker.
    presence = [e for e, d in bob.log if e in ("user-joined", "user-left")]
    assert presence == ["user-joined"]
    assert server.members("general") == ["alice", "bob"]
    await tab2.close()
    assert await bob.next("user-left") == {"roomId": "general", "user": "alice"}


async def test_a_storm_of_one_users_sockets_costs_the_room_one_join_and_one_leave(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    sockets = 30
    srv = await custom_server(max_connections_per_user=sockets, rate_capacity=100.0)
    bob = recorders(srv.url, "bob")
    await bob.login("bob", rooms=("general",))
    token = (await recorders(srv.url, "alice").login("alice"))["token"]
    storm = [recorders(srv.url, f"alice-{i}") for i in range(sockets - 1)]
    for rec in storm:
        await rec.connect({"token": token, "offsets": {"general": 0}})
    for rec in storm:
        await rec.next("room-joined")
    started = time.monotonic()
    await asyncio.gather(*(rec.sio.eio.disconnect(abort=True) for rec in storm))
    await bob.say("general", "after the storm")  # its echo is the marker
    assert [e for e, _ in bob.log if e in ("user-joined", "user-left")] == [
        "user-joined",
        "user-left",
    ]
    assert time.monotonic() - started < 5.0


async def test_shutdown_sends_no_presence_to_the_clients_it_closes(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server()
    users = ("alice", "bob", "charlie", "diana", "eve", "frank", "grace")
    recs = [recorders(srv.url, u) for u in users]
    for rec, user in zip(recs, users, strict=True):
        await rec.login(user, rooms=("general",))
    await recs[-1].say("general", unique_id("last"))
    before = [len(rec.received("user-left")) for rec in recs]
    started = time.monotonic()
    await srv.stop()
    assert time.monotonic() - started < 5.0
    for rec in recs:
        await rec.next("disconnect")
    assert [len(rec.received("user-left")) for rec in recs] == before


async def test_the_teaching_client_waits_out_a_throttled_reconnection(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(rate_capacity=3.0, rate_per_second=1.0)
    options = ClientOptions(backoff=Backoff(base=0.05, cap=0.2, jitter=0.0), max_retries=8)
    alice = ChatClient(srv.url, "alice", "alice", options=options)
    try:
        await alice.connect()
        await alice.join("general")
        while True:  # use up alice's tokens
            try:
                await alice.typing_start("general")
            except ChatError as err:
                assert err.code == "rate_limited"
                break
        # The server drops the connection: the reconnection re-joins general through its
        # offsets, which costs a token she has not got yet.
        (eio_socket,) = srv.sio.eio.sockets.values()
        srv.send_policy.transport_of(eio_socket).abort()
        await alice.wait_for_state(State.RECONNECTING)
        await alice.wait_for_state(State.CONNECTED, timeout=10)
        assert "rate_limited" in [e.code for e in alice.errors]
        await alice.wait_until(lambda: "general" in alice.members, 5)
    finally:
        await alice.close()


async def test_a_polling_client_that_never_polls_is_closed_and_its_queue_dropped(
    custom_server: MakeServer, recorders: Callable[..., Recorder]
) -> None:
    srv = await custom_server(max_send_queue=16 * 1024, rate_capacity=1000.0)
    base = f"{srv.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            sid = json.loads((await r.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        login = "40" + json.dumps({"username": "alice", "password": "alice"})
        join = "420" + json.dumps(["join-room", {"roomId": "general"}])
        for body in (login, join):
            async with http.post(url, data=body) as r:
                assert r.status == 200
        # From here on alice never polls: everything for her waits in her queue.
        bob = recorders(srv.url, "bob")
        await bob.login("bob", rooms=("general",))
        for k in range(100):
            await bob.call(
                "send-message", {"roomId": "general", "text": "y" * 1900, "clientMsgId": f"p{k}"}
            )
            if srv.send_policy.overflows:
                break
        assert srv.send_policy.overflows == 1
        assert await bob.next("user-left", timeout=10) == {"roomId": "general", "user": "alice"}
        # Her next poll gets the Engine.IO CLOSE (or finds the session gone), at once.
        async with http.get(url) as r:
            answer = (r.status, await r.text())
        assert answer[0] == 400 or answer == (200, "1"), answer


async def test_a_second_delivery_path_asks_the_same_bound_before_it_writes(
    custom_server: MakeServer,
) -> None:
    # What a fast fan-out path writing pre-built frames to transports must do: ask
    # send_policy.admit(socket, nbytes) first, and skip the write when it says no.
    srv = await custom_server(max_send_queue=32 * 1024)
    stalled = await NeverReader.open(srv.port, {"username": "alice", "password": "alice"}, ())
    try:
        (eio_socket,) = srv.sio.eio.sockets.values()
        transport = srv.send_policy.transport_of(eio_socket)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        text = '42["new-message",{"text":"' + "z" * 1900 + '"}]'
        frame = bytes([0x81, 126]) + len(text).to_bytes(2, "big") + text.encode()
        written = 0
        for _ in range(1000):
            if not srv.send_policy.admit(eio_socket, len(frame)):
                break
            transport.write(frame)
            written += 1
        else:
            raise AssertionError("the bound never refused a write")
        assert srv.send_policy.overflows == 1
        assert written * len(frame) < 32 * 1024 + 400 * 1024  # the bound, plus the kernel's
        assert not srv.send_policy.admit(eio_socket, 1)  # closed: nothing more is admitted
        frames = await stalled.read_all()
        opcode, payload = frames[-1]
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1008
    finally:
        stalled.close()
