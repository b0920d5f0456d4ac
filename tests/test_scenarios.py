"""Each scenario runs real parts and its trace tells the story of its seed diagram."""

from __future__ import annotations

import pytest

from tutorial.chat import demo
from tutorial.chat.server import ChatServer
from tutorial.protocol.layers import Layer
from tutorial.scenarios import SCENARIOS, run_scenario
from tutorial.scenarios.base import ScenarioResult
from tutorial.trace.model import TraceEvent
from tutorial.trace.normalise import SAMPLE_WS_ACCEPT, SAMPLE_WS_KEY


def story(result: ScenarioResult) -> list[tuple[int | None, str, str, str]]:
    return [(e.step, e.source, e.target, e.label) for e in result.story_trace().events]


def sio_events(result: ScenarioResult, name: str) -> list[TraceEvent]:
    return [
        e for e in result.trace.events if e.layer is Layer.SIO and e.fields.get("event") == name
    ]


async def test_handshake_over_websocket_shows_the_seed_rows() -> None:
    result = await run_scenario("handshake")
    http = [e for e in result.trace.events if e.layer is Layer.HTTP]
    assert http[0].raw is not None and SAMPLE_WS_KEY.encode() in http[0].raw
    assert http[1].raw is not None and SAMPLE_WS_ACCEPT.encode() in http[1].raw
    assert http[1].status == "ok"
    layers = [e.layer for e in result.trace.events if e.layer in (Layer.EIO, Layer.SIO)]
    assert layers[:3] == [Layer.EIO, Layer.EIO, Layer.SIO]  # OPEN, then CONNECT in MESSAGE
    assert "WebSocket Connection" in result.diagram().source


async def test_handshake_over_polling_upgrades_with_probes() -> None:
    result = await run_scenario("handshake", transport="polling", deterministic=True)
    eio = [e.raw for e in result.trace.events if e.layer is Layer.EIO]
    assert b"2probe" in eio and b"3probe" in eio and b"5" in eio
    first = next(e for e in result.trace.events if e.layer is Layer.HTTP)
    assert "transport=polling" in first.label and first.phase == "http"


async def test_event_flow_numbers_the_broadcast_as_the_seed_does() -> None:
    result = await run_scenario("event-flow", deterministic=True)
    assert story(result) == [
        (1, "alice", "server", 'send-message "Hello everyone!"'),
        (2, "server", "server", "validate message / add metadata"),
        (3, "server", "server", "broadcast to room"),
        (4, "server", "alice", "new-message (echo to sender)"),
        (5, "server", "bob", "new-message (to other users)"),
        (6, "server", "charlie", "new-message (to all room members)"),
        (6, "server", "diana", "new-message (to all room members)"),
    ]
    assert result.figures["delivered_to"] == ["alice", "bob", "charlie", "diana"]
    delivered = sio_events(result, "new-message")
    assert {e.target for e in delivered} == {"alice", "bob", "charlie", "diana"}
    assert all(e.fields["args"][0]["text"] == "Hello everyone!" for e in delivered)


async def test_event_flow_takes_other_words_and_users() -> None:
    result = await run_scenario("event-flow", text="Hi!", users=("eve", "frank", "grace"))
    assert [row[0] for row in story(result)] == [1, 2, 3, 4, 5, 6]
    assert result.figures["received"] == {"eve": ["Hi!"], "frank": ["Hi!"], "grace": ["Hi!"]}


async def test_rooms_seat_the_seed_cast_and_refuse_eve() -> None:
    result = await run_scenario("rooms", deterministic=True)
    rooms = result.figures["snapshot"]["rooms"]
    seated = {room: tuple(sorted(r["members"])) for room, r in rooms.items()}
    assert seated == {room: tuple(sorted(m)) for room, m in demo.SEED_MEMBERSHIP.items()}
    assert result.figures["refusal"]["code"] == "forbidden"
    errors = sio_events(result, "error")
    assert [(e.target, e.fields["args"][0]["code"]) for e in errors] == [("eve", "forbidden")]
    assert any(e.kind == "error" and e.label == "error forbidden" for e in result.trace.events)
    several = {u for u, r in result.figures["memberships"].items() if len(r) > 1}
    assert several == {"alice", "bob", "charlie", "diana"}


async def test_rooms_join_sequence_has_the_six_seed_steps() -> None:
    result = await run_scenario("rooms")
    assert [(s, src, dst, label) for s, src, dst, label in story(result)] == [
        (0, "frank", "server", "emit('join-room', {roomId: 'tech-talk'})"),
        (1, "server", "server", "Validate room"),
        (2, "server", "server", "Leave old room"),
        (3, "server", "rooms", "Join new room"),
        (4, "rooms", "server", "Update room member list"),
        (5, "server", "frank", "room-joined confirmation"),
        (6, "server", "charlie", "Notify others 'user-joined'"),
        (6, "server", "diana", "Notify others 'user-joined'"),
    ]


PATHS = {
    "restart": ["DISCONNECTED", "CONNECTING", "CONNECTED", "RECONNECTING", "CONNECTED"],
    "down": ["DISCONNECTED", "CONNECTING", "CONNECTED", "RECONNECTING", "FAILED", "DISCONNECTED"],
    "bad_password": ["DISCONNECTED", "CONNECTING", "ERROR", "DISCONNECTED"],
    "rate_limit": ["DISCONNECTED", "CONNECTING", "CONNECTED"],
    "timeout": ["DISCONNECTED", "CONNECTING", "CONNECTED", "RECONNECTING", "CONNECTED"],
}
RECOVERY = {
    "restart": "Auto Retry with Exponential Backoff",
    "down": "Auto Retry with Exponential Backoff",
    "bad_password": "Redirect to Login Page",
    "rate_limit": "Queue Messages & Slow Down",
}


@pytest.mark.parametrize("fault", sorted(PATHS))
async def test_state_machine_takes_the_expected_transitions(fault: str) -> None:
    result = await run_scenario("state-machine", fault=fault)
    path = result.figures["path"]
    assert [path[0][0]] + [b for _, b in path] == PATHS[fault]
    if fault in RECOVERY:
        assert {e["recovery"] for e in result.figures["errors"]} == {RECOVERY[fault]}
    if fault == "down":
        assert len(result.figures["retry_delays"]) == 3
    if fault == "rate_limit":
        assert result.figures["received"] == [f"message {i}" for i in range(1, 7)]
    if fault == "timeout":
        assert result.figures["connection_lost"]["detection"] == "Network Timeout"
        # The heartbeat the client was told is the one the server keeps (python-engineio
        # truncates a sub-second pingInterval to 0 ms, and the client then races the
        # first ping).
        opened = [e.fields for e in result.trace.events if "pingInterval" in e.fields]
        assert opened and all(f["pingInterval"] == 1000 for f in opened)
    assert result.seconds < 10
    assert "digraph" in result.diagram().source


async def test_architecture_runs_seed_diagram_2_on_a_cluster_and_counts_what_flowed() -> None:
    result = await run_scenario("architecture", clients=3, deterministic=True)
    figures = result.figures
    assert [c["kind"] for c in figures["clients"]] == ["browser", "mobile", "desktop"]
    # One client per server: nginx's sticky hash was asked which address lands where.
    assert figures["distribution"] == {
        "alice": "server-1",
        "bob": "server-2",
        "charlie": "server-3",
    }
    assert figures["stored_rows"] == 3
    assert figures["redis_messages"] > 0  # the adapter carried the cross-server emits
    assert all(n >= 3 for n in figures["events_sent"].values())
    source = result.diagram().source
    assert "one SQLite file, 3 rows" in source and "TLS termination" in source


async def test_scaling_spreads_clients_over_three_servers_that_share_redis() -> None:
    result = await run_scenario("scaling", clients=3, messages=2)
    f = result.figures
    # Three servers (in this process), one client each, round robin; Redis between them.
    assert f["servers"] == ["server-1", "server-2", "server-3"] and f["redis"] is True
    assert sorted(f["distribution"].values()) == f["servers"]
    # Every message reached every client; those on another server came through Redis,
    # as the taps saw: each server published what its client sent, and got the rest.
    assert f["deliveries"] == 3 * 2 * 3
    assert f["deliveries_via_redis"] == 3 * 2 * 2
    assert all(m["published"] >= 2 and m["pushed"] >= 4 for m in f["redis_messages"].values())
    assert f["stored_rows"] == 6


async def test_every_scenario_is_registered() -> None:
    assert sorted(SCENARIOS) == sorted(
        ["handshake", "architecture", "event-flow", "rooms", "state-machine", "scaling", "cluster"]
    )
    with pytest.raises(ValueError, match="no scenario"):
        await run_scenario("nope")


async def test_a_scenario_that_fails_leaves_a_given_server_as_it_was(server: ChatServer) -> None:
    with pytest.raises(Exception, match="auth_failed"):
        await run_scenario("event-flow", users=("alice", "nobody"), server=server)
    assert server.span_hooks == []
    result = await run_scenario("event-flow", server=server)
    assert result.figures["delivered_to"] == ["alice", "bob", "charlie", "diana"]


async def test_the_recovery_drill_meets_all_four_patterns_of_diagram_5() -> None:
    from tutorial.client.recovery import Detection
    from tutorial.scenarios.recovery import recovery_drill

    outcomes = await recovery_drill()
    assert [o.detection for o in outcomes] == list(Detection)
    network, auth, rejection, rate = outcomes
    assert network.states[-1] == "RECONNECTING→CONNECTED"
    assert auth.states == (
        "DISCONNECTED→CONNECTING",
        "CONNECTING→ERROR",
        "ERROR→DISCONNECTED",
    )
    assert "message_too_long" in rejection.what_happened
    assert "seq 1..8" in rate.what_the_client_did
