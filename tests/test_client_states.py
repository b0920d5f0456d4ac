"""Every transition of the client's table, driven for real against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_config
from tutorial.chat.server import ChatServer
from tutorial.client import (
    TRANSITIONS,
    Backoff,
    ChatClient,
    ChatError,
    ClientOptions,
    LoginRequired,
    State,
)
from tutorial.client.recovery import Classification
from tutorial.client.states import IllegalTransition, transition

FAST = ClientOptions(backoff=Backoff(base=0.02, factor=2.0, cap=0.2, jitter=0.5), max_retries=40)


def moves(client: ChatClient) -> list[tuple[str, str]]:
    return [(r.source.value, r.target.value) for r in client.history]


async def test_connect_moves_disconnected_connecting_connected(server: ChatServer) -> None:
    client = ChatClient(server.url, "alice", "alice", options=FAST)
    await client.connect()
    try:
        assert moves(client) == [("DISCONNECTED", "CONNECTING"), ("CONNECTING", "CONNECTED")]
        assert client.state is State.CONNECTED
        await client.wait_for_event("connect-confirmed")
        assert client.user == "alice"
    finally:
        await client.close()
    assert moves(client)[-1] == ("CONNECTED", "DISCONNECTED")


async def test_bad_password_goes_error_then_disconnected_and_asks_to_log_in(
    server: ChatServer,
) -> None:
    client = ChatClient(server.url, "alice", "not-alice", options=FAST)
    with pytest.raises(LoginRequired) as raised:
        await client.connect()
    assert raised.value.code == "auth_failed"
    assert client.login_required
    assert moves(client) == [
        ("DISCONNECTED", "CONNECTING"),
        ("CONNECTING", "ERROR"),
        ("ERROR", "DISCONNECTED"),
    ]
    assert client.errors[-1].pattern.classification is Classification.USER_ACTION


async def test_no_server_is_a_recoverable_network_error(tmp_path: Path) -> None:
    server = ChatServer(make_config(tmp_path))
    port = await server.start()
    await server.stop()  # nobody listens on this port now
    client = ChatClient(f"http://127.0.0.1:{port}", "alice", "alice", options=FAST)
    with pytest.raises(ChatError) as raised:
        await client.connect()
    assert raised.value.code is None
    assert raised.value.pattern.classification is Classification.TEMPORARY
    assert client.state is State.DISCONNECTED
    assert ("CONNECTING", "ERROR") in moves(client)


async def test_server_stopped_then_restarted_goes_reconnecting_then_connected(
    tmp_path: Path,
) -> None:
    server = ChatServer(make_config(tmp_path))
    port = await server.start()
    client = ChatClient(server.url, "alice", "alice", options=FAST)
    await client.connect()
    await client.join("general")
    await server.stop()
    await client.wait_for_state(State.RECONNECTING)
    restarted = ChatServer(make_config(tmp_path, port=port))
    await restarted.start()
    try:
        await client.wait_for_state(State.CONNECTED, timeout=10)
        assert moves(client)[-2:] == [("CONNECTED", "RECONNECTING"), ("RECONNECTING", "CONNECTED")]
        # The rooms came back with the reconnection: sending works at once.
        ack = await client.send("general", "back again")
        assert ack["ok"]
    finally:
        await client.close()
        await restarted.stop()


async def test_server_kept_down_ends_in_failed_after_the_retry_limit(tmp_path: Path) -> None:
    server = ChatServer(make_config(tmp_path))
    await server.start()
    options = ClientOptions(backoff=Backoff(base=0.01, cap=0.05), max_retries=3)
    client = ChatClient(server.url, "alice", "alice", options=options)
    await client.connect()
    await server.stop()
    await client.wait_for_state(State.FAILED, timeout=10)
    assert len(client.retry_delays) == 3
    assert client.history[-1].cause == "max retries (3) exceeded"
    await client.reset()
    assert moves(client)[-1] == ("FAILED", "DISCONNECTED")


async def test_close_while_reconnecting_goes_disconnected(tmp_path: Path) -> None:
    server = ChatServer(make_config(tmp_path))
    await server.start()
    options = ClientOptions(backoff=Backoff(base=5.0, cap=5.0, jitter=0), max_retries=3)
    client = ChatClient(server.url, "alice", "alice", options=options)
    await client.connect()
    await server.stop()
    await client.wait_for_state(State.RECONNECTING)
    await client.close()
    assert moves(client)[-1] == ("RECONNECTING", "DISCONNECTED")


async def test_rate_limited_messages_are_queued_then_delivered(tmp_path: Path) -> None:
    server = ChatServer(make_config(tmp_path, rate_capacity=3.0, rate_per_second=20.0))
    await server.start()
    client = ChatClient(server.url, "alice", "alice", options=FAST)
    try:
        await client.connect()
        await client.join("general")  # takes one token
        texts = [f"burst {i}" for i in range(8)]
        acks = await client.send_many("general", texts)
        assert [a["seq"] for a in acks] == list(range(1, 9))
        await client.wait_until(lambda: client.received("general") == texts)
        limited = [e for e in client.errors if e.code == "rate_limited"]
        assert limited, "the burst should have hit the limit"
        assert limited[0].pattern.classification is Classification.THROTTLING
    finally:
        await client.close()
        await server.stop()


def test_a_move_outside_the_table_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        transition(State.DISCONNECTED, State.CONNECTED)


def test_the_table_holds_the_seeds_eight_transitions_plus_two_drawn_ones() -> None:
    seed = {(t.source.value, t.target.value) for t in TRANSITIONS if t.seed}
    assert seed == {
        ("DISCONNECTED", "CONNECTING"),
        ("CONNECTING", "CONNECTED"),
        ("CONNECTING", "ERROR"),
        ("CONNECTED", "RECONNECTING"),
        ("RECONNECTING", "CONNECTED"),
        ("RECONNECTING", "FAILED"),
        ("ERROR", "DISCONNECTED"),
        ("FAILED", "DISCONNECTED"),
    }
    assert len(TRANSITIONS) == 10
