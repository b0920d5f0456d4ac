"""Every scenario's trace holds each connection's whole life, every WebSocket frame
exactly once, in order: checked against an independent capture of the same bytes.

A raw capture sits in front of each scenario's wiretap (tests/wirecapture.py); wsproto
decodes what it saw. For every client and direction, the trace's WebSocket events
must be the captured frames: the same count, the same order, the same bytes. The
closing handshake is among them, and the ``user-left`` each departure sends the
others. The comparison itself is shown to fail on a dropped, a doubled and a swapped
frame.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from wirecapture import C2S, S2C, captured_frames, captured_stages, compare, traced_frames

from tutorial.protocol.layers import Layer
from tutorial.scenarios import run_scenario
from tutorial.scenarios.base import ScenarioResult
from tutorial.trace.model import Trace

pytestmark = pytest.mark.timeout(120)

# The single-process scenarios (the cluster ones run separate server processes behind
# nginx, and trace chosen windows of their story: tests/test_cluster_scenario.py).
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("handshake", {}),
    ("handshake", {"transport": "polling"}),
    ("event-flow", {}),
    ("rooms", {}),
    ("state-machine", {}),
    ("state-machine", {"fault": "down"}),
    ("state-machine", {"fault": "bad_password"}),
    ("state-machine", {"fault": "timeout"}),
    ("state-machine", {"fault": "rate_limit"}),
    ("scaling", {}),
]


def clients_of(result: ScenarioResult) -> set[str]:
    return {lf.id for lf in result.trace.lifelines if lf.kind == "client"}


async def run_captured(
    monkeypatch: pytest.MonkeyPatch, name: str, params: dict[str, Any]
) -> tuple[ScenarioResult, Any, Any]:
    with captured_stages(monkeypatch) as taps:
        result = await run_scenario(name, **params)
    assert taps, "the scenario made no wiretap"
    traced = traced_frames(result.trace, clients_of(result))
    captured = captured_frames(taps[0])
    for tap in taps[1:]:  # scaling: one tap per server, clients disjoint
        more = captured_frames(tap)
        captured.data |= more.data
        captured.frames |= more.frames
    return result, traced, captured


@pytest.mark.parametrize(("name", "params"), RUNS, ids=[f"{n}{p or ''}" for n, p in RUNS])
async def test_the_trace_holds_every_captured_frame_once_in_order(
    monkeypatch: pytest.MonkeyPatch, name: str, params: dict[str, Any]
) -> None:
    result, traced, captured = await run_captured(monkeypatch, name, params)
    assert captured.frames, "the capture saw no WebSocket frame"
    assert compare(traced, captured) == []
    # The whole life: every WebSocket connection ends with its closing handshake, and
    # each client's last frame each way is a close frame (opcode 8), or the server's
    # answer never came because the server itself went away (state-machine restart).
    for (client, direction), frames in captured.frames.items():
        if direction == C2S:
            assert frames[-1][0].value == 8, f"{client} sent no close frame"
    closes = [e for e in result.trace.events if e.layer is Layer.WS and "code" in e.fields]
    assert closes, "no close frame on the trace"
    # Every TCP connection the trace opened, it also saw end (a FIN, or a refusal).
    clients = clients_of(result)
    tcp: dict[tuple[str, int], list[str]] = {}
    for e in result.trace.events:
        if e.layer is Layer.TCP:
            server = e.target if e.source in clients else e.source
            tcp.setdefault((server, e.fields["connection"]), []).append(e.label)
    ended = ("TCP close", "TCP refused")
    unfinished = [k for k, labels in tcp.items() if not any(x.startswith(ended) for x in labels)]
    assert tcp and unfinished == []


async def test_the_closing_handshake_and_user_left_are_on_the_trace() -> None:
    result = await run_scenario("event-flow")
    events = result.trace.events
    for user in ("alice", "bob", "charlie", "diana"):
        mine = [e for e in events if user in (e.source, e.target)]
        labels = [e.label for e in mine[-4:]]
        assert labels == [
            "CLOSE 1000 NORMAL_CLOSURE",
            "CLOSE 1000 NORMAL_CLOSURE",
            "TCP close (server FIN)",
            "TCP close (client FIN)",
        ], (user, labels)
    left = [
        (e.target, e.fields["args"][0]["user"])
        for e in events
        if e.layer is Layer.SIO and e.fields.get("event") == "user-left"
    ]
    assert left == [
        ("bob", "alice"),
        ("charlie", "alice"),
        ("diana", "alice"),
        ("charlie", "bob"),
        ("diana", "bob"),
        ("diana", "charlie"),
    ]


async def test_a_close_frame_is_one_trace_event() -> None:
    result = await run_scenario("handshake")
    closes = [e for e in result.trace.events if e.layer is Layer.WS and "CLOSE" in e.label]
    assert [(e.source, e.label) for e in closes] == [
        ("client", "CLOSE 1000 NORMAL_CLOSURE"),
        ("server", "CLOSE 1000 NORMAL_CLOSURE"),
    ]
    assert closes[0].fields["masked"] is True and closes[0].fields["code"] == 1000


# -- the comparison fails on a wrong trace --------------------------------------------------


def _ws_indexes(trace: Trace, client: str) -> list[int]:
    return [
        i
        for i, e in enumerate(trace.events)
        if e.layer is Layer.WS and e.raw is not None and e.target == client
    ]


def _with(trace: Trace, events: list[Any]) -> Trace:
    return Trace(trace.lifelines, events)


async def test_the_comparison_fails_on_a_dropped_a_doubled_and_a_swapped_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, traced, captured = await run_captured(monkeypatch, "event-flow", {})
    assert compare(traced, captured) == []
    clients = clients_of(result)
    events = list(result.trace.events)
    at = _ws_indexes(result.trace, "bob")
    assert len(at) >= 3
    dropped = events[: at[1]] + events[at[1] + 1 :]
    doubled = [*events[: at[1]], events[at[1]], *events[at[1] :]]
    swapped = list(events)
    swapped[at[1]], swapped[at[2]] = swapped[at[2]], swapped[at[1]]
    last = events[at[-1]]
    assert last.raw is not None
    altered = list(events)
    altered[at[-1]] = replace(last, raw=last.raw[:-1] + bytes([last.raw[-1] ^ 1]))
    for wrong, what in [
        (dropped, "frames traced"),
        (doubled, "frames traced"),
        (swapped, "frame 2"),
        (altered, "bytes are not the captured bytes"),
    ]:
        problems = compare(traced_frames(_with(result.trace, wrong), clients), captured)
        assert problems, what
        assert any(what in p and "bob" in p and S2C in p for p in problems), problems
