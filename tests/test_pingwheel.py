"""The ping wheel (``tutorial/chat/pingwheel.py``), read off the wire.

* a session gets its ``2`` every ``ping_interval`` and stays open while it answers ``3``,
  with no python-engineio ping task behind it (one timer for every session instead);
* a session that stops answering is closed ``ping_timeout`` after its unanswered ping,
  not before, its ``disconnect`` runs, and python-engineio's table forgets it;
* a session that closed is forgotten by the table too (the library's service task, which
  did that, is not started).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rawclient import RawPolling, RawSocket
from test_server_bad_input import watch_sessions
from websockets.exceptions import ConnectionClosed

from tutorial import compat
from tutorial.chat.server import ChatServer

pytestmark = pytest.mark.timeout(60)

INTERVAL, TIMEOUT = 0.5, 1.0


@pytest.fixture
async def quick(custom_server: Callable[..., Awaitable[ChatServer]]) -> ChatServer:
    """A server whose heartbeats come every 0.5 s, and which gives up 1 s after an
    unanswered one."""
    return await custom_server(ping_interval=INTERVAL, ping_timeout=TIMEOUT)


async def login(server: ChatServer, user: str) -> RawSocket:
    sock = await RawSocket.open(server.port or 0)
    assert (await sock.connect({"username": user, "password": user})).startswith("40")
    return sock


async def read_to_the_end(sock: RawSocket) -> None:
    """Read frames, answering nothing, until the server closes the WebSocket."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await sock.ws.recv()


async def next_ping(sock: RawSocket) -> None:
    """Read on (answering nothing) up to the next Engine.IO ping."""
    while await asyncio.wait_for(sock.ws.recv(), 5) != "2":
        pass


async def answer_pings(sock: RawSocket, n: int) -> None:
    """Wait for ``n`` pings, answering each."""
    for _ in range(n):
        await next_ping(sock)
        await sock.ws.send("3")


async def keep_answering(sock: RawSocket, answered: asyncio.Queue[None]) -> None:
    """Answer every ping, for as long as the task runs; one item on ``answered`` each."""
    while True:
        if await sock.ws.recv() == "2":
            await sock.ws.send("3")
            answered.put_nowait(None)


def ping_tasks() -> list[asyncio.Task[Any]]:
    """python-engineio's per-session ping tasks (``AsyncSocket._send_ping``) now running."""
    return [t for t in asyncio.all_tasks() if "_send_ping" in t.get_coro().__qualname__]


async def test_pings_come_every_interval_and_a_session_that_answers_stays(
    quick: ChatServer,
) -> None:
    assert quick.pings is not None, "the fast path's server keeps its heartbeats in the wheel"
    sock = await login(quick, "alice")
    try:
        times = []
        for _ in range(4):
            await next_ping(sock)  # past the connect's own events, the first time
            times.append(time.monotonic())
            await sock.ws.send("3")
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Each ping comes ping_interval after the last PONG (up to the wheel's batch early).
        assert all(INTERVAL - 0.06 < gap < INTERVAL + 1.0 for gap in gaps), gaps
        assert ping_tasks() == [], "a ping task per session: the wheel is not in use"
        assert [s.user for s in quick.sessions.values()] == ["alice"]
        assert quick.pings.pings >= 4 and quick.pings.timeouts == 0
    finally:
        await sock.close()


async def test_a_polling_client_that_goes_quiet_is_closed_and_forgotten(
    quick: ChatServer,
) -> None:
    """A long-polling client that takes its ping and then sends nothing, not even a GET:
    no request of its is waiting to time out, so the wheel's check closes it (the job of
    python-engineio's service task, not started here)."""
    assert quick.pings is not None
    sessions = watch_sessions(quick)
    poll = await RawPolling.open(quick.port or 0)
    try:
        assert await poll.post('40{"username": "alice", "password": "alice"}') == 200
        assert (await poll.until("40")).startswith("40")
        got: list[str] = []
        while "2" not in got:
            status, got = await poll.get()
            assert status == 200, status
        pinged = time.monotonic()  # ... and from here on, silence
        await sessions.until_users([])
        silent_for = time.monotonic() - pinged
        assert silent_for > TIMEOUT - 0.1, f"closed {silent_for:.2f} s after the ping"
        await quick.pings.settled()
        assert quick.pings.timeouts == 1
        alice = await login(quick, "alice")  # a round later, the table forgets it
        try:
            await answer_pings(alice, 4)
            assert list(compat.engineio_socket_table(quick.sio.eio)) == [alice.handshake["sid"]]
        finally:
            await alice.close()
    finally:
        await poll.close()


async def test_a_websocket_that_stops_answering_is_closed_and_forgotten(
    quick: ChatServer,
) -> None:
    """A WebSocket's own reader gives up first (no packet for ``ping_interval +
    ping_timeout``); the wheel's next round forgets the closed session."""
    silent, alice = await login(quick, "bob"), await login(quick, "alice")
    gone = silent.handshake["sid"]
    answered = asyncio.Queue[None]()  # one item per ping alice answered
    keeper = asyncio.create_task(keep_answering(alice, answered))  # alice stays meanwhile
    try:
        await next_ping(silent)
        pinged = time.monotonic()
        await asyncio.wait_for(read_to_the_end(silent), 10)  # pings unanswered
        silent_for = time.monotonic() - pinged
        assert silent_for > TIMEOUT - 0.1, f"closed {silent_for:.2f} s after the ping"
        while not answered.empty():
            answered.get_nowait()
        for _ in range(4):  # the wheel's rounds go on past bob's check
            await asyncio.wait_for(answered.get(), 5)
        assert gone not in compat.engineio_socket_table(quick.sio.eio)
        assert [s.user for s in quick.sessions.values()] == ["alice"]
    finally:
        keeper.cancel()
        await silent.close()
        await alice.close()


async def test_a_closed_session_is_forgotten_by_the_next_round(quick: ChatServer) -> None:
    """bob hangs up; alice keeps answering. Once alice has had pings due well after
    bob's (and after the check of a ping bob may still have been sent, had the server
    not yet seen him go), the wheel has passed bob's turn: the table holds alice alone."""
    alice, bob = await login(quick, "alice"), await login(quick, "bob")
    gone = bob.handshake["sid"]
    try:
        await bob.close()
        await answer_pings(alice, 6)  # past bob's next due ping, and its check if it was pinged
        table = compat.engineio_socket_table(quick.sio.eio)
        assert gone not in table
        assert list(table) == [alice.handshake["sid"]]
    finally:
        await alice.close()


async def test_the_library_keeps_its_own_heartbeats_without_the_fast_path(
    custom_server: Callable[..., Awaitable[ChatServer]],
) -> None:
    """With the fast path off (or the libraries outside the checked versions), nothing
    is routed: python-engineio's ping task and service task run as shipped."""
    srv = await custom_server(ping_interval=INTERVAL, ping_timeout=TIMEOUT, fast_fanout=False)
    assert srv.pings is None
    sock = await login(srv, "alice")
    try:
        await next_ping(sock)
        await sock.ws.send("3")
        # A call answered after the PONG: the server has read it, and started the next
        # ping's task (it sleeps ping_interval).
        await sock.call(1, "join-room", {"roomId": "general"})
        assert len(ping_tasks()) == 1
    finally:
        await sock.close()
