"""Chapter 5, seed diagram 5: the client's connection states and error recovery.

A real teaching client meets a real fault, and every move of its state machine is
recorded (``figures["history"]``), drawn on the transition table
([tutorial.render.states.state_diagram][tutorial.render.states.state_diagram]), and the wire is
traced as usual.

========================  ==============================================================
``fault``                 what happens, and the path the client takes
========================  ==============================================================
``"restart"``             the server stops; one reconnection attempt is refused; the
                          server comes back on the same port and the next attempt wins:
                          CONNECTING → CONNECTED → RECONNECTING → CONNECTED
``"down"``                the server stops for good: RECONNECTING → FAILED after
                          ``max_retries``, then a manual reset → DISCONNECTED
``"bad_password"``        wrong credentials: CONNECTING → ERROR → DISCONNECTED, and the
                          client asks for a new login (Auth Failure → Redirect to Login)
``"rate_limit"``          a burst of messages meets the server's rate limit: the outbox
                          queues and slows down, every message is delivered once
``"timeout"``             the network goes silent (the tap holds the server's bytes):
                          the heartbeat times out → RECONNECTING → CONNECTED
========================  ==============================================================
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tutorial.chat.server import ChatServer
from tutorial.client.client import ChatClient, ChatError
from tutorial.client.recovery import Backoff, classify
from tutorial.protocol.catalog import Event
from tutorial.protocol.layers import Layer
from tutorial.protocol.states import State
from tutorial.render.sequence import sequence_diagram
from tutorial.render.states import state_diagram
from tutorial.scenarios.base import ScenarioResult, Stage, not_a_carrier, sequence_view
from tutorial.trace.model import Trace, TraceEvent

FAULTS = ("restart", "down", "bad_password", "rate_limit", "timeout")
ROOM = "general"


async def run(
    fault: str = "restart",
    *,
    max_retries: int = 3,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """Drive the client through ``fault`` (one of ``FAULTS``)."""
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r}: choose from {list(FAULTS)}")
    if server is not None and fault in ("restart", "down"):
        raise ValueError(f"fault {fault!r} stops the server: let the scenario start its own")
    config: dict[str, Any] = {}
    if fault == "rate_limit":
        # Six messages at once against three tokens: a slow refill, so that the limit
        # meets the burst even when a busy machine spreads its sends over a second.
        config = {"rate_capacity": 3.0, "rate_per_second": 2.0}
    elif fault == "timeout":
        # Whole seconds: python-engineio 4.x advertises pingInterval as
        # int(interval) * 1000, so 0.2 s would reach the client as 0 ms, and the client
        # (which waits pingInterval + pingTimeout for each ping) would race the server's
        # first ping and sometimes drop a healthy connection.
        config = {"ping_interval": 1.0, "ping_timeout": 0.2}
    lifelines = [("alice", "alice", "client"), ("server", "Server", "server")]
    async with Stage(
        "state-machine",
        deterministic=deterministic,
        server=server,
        lifelines=lifelines,
        config=config,
    ) as stage:
        backoff = Backoff(base=0.2, factor=2.0, cap=1.0, jitter=0.0)
        options = stage.options(max_retries=max_retries, backoff=backoff)
        password = "wrong password" if fault == "bad_password" else None
        client = stage.make_client("alice", password, options=options)
        outcome: dict[str, Any] = {}
        try:
            await client.connect()
            await client.wait_for_event(Event.CONNECT_CONFIRMED)
            await stage.join(client, ROOM)
        except ChatError as err:
            outcome["raised"] = f"{type(err).__name__}: {err.code}"
        if fault == "restart":
            await _restart(stage, client)
        elif fault == "down":
            await _down(stage, client)
        elif fault == "rate_limit":
            outcome |= await _burst(stage, client)
        elif fault == "timeout":
            await _silence(stage, client)
        outcome["final_state"] = str(client.state)
        outcome["login_required"] = client.login_required
        figures = _figures(client, deterministic) | outcome
        await stage.close_clients()  # the last connection's closing handshake, traced
        title = f"Seed diagram 5: connection states, fault = {fault}"
        return stage.result(
            figures=figures,
            title=title,
            main=_states,
            extras={"sequence": _sequence},
        )


async def _restart(stage: Stage, client: ChatClient) -> None:
    assert stage.server is not None and stage.tap is not None
    tap = stage.tap
    port = stage.server_port
    failures = len(client.errors)

    # From the client's first refused attempt on, its next attempt waits at the tap
    # until the server is back instead of racing the restart (on a busy machine a
    # second or third refusal would change the picture). The hold starts inside the
    # client's error callback, before its backoff sleep: no race.
    def hold_after_first_refusal(_error: Any) -> None:
        if len(client.errors) == failures + 1:
            tap.hold_new_connections()

    client.on("client-error", hold_after_first_refusal)
    await stage.server.stop()
    await client.wait_for_state(State.RECONNECTING)
    await client.wait_until(lambda: len(client.errors) > failures)  # one refused attempt
    stage.server = ChatServer(stage.server_config(port=port), span=stage.spans)
    try:
        await stage.server.start()
    finally:
        tap.release_new_connections()
    await client.wait_for_state(State.CONNECTED)
    await client.wait_until(lambda: not client.rejoining)  # the server restored our room


async def _down(stage: Stage, client: ChatClient) -> None:
    assert stage.server is not None
    await stage.server.stop()
    await client.wait_for_state(State.FAILED, timeout=10)
    await client.reset()


async def _burst(stage: Stage, client: ChatClient) -> dict[str, Any]:
    texts = [f"message {i}" for i in range(1, 7)]
    acks = [client.send(ROOM, t, client_msg_id=stage.msg_id(client)) for t in texts]
    results = [await a for a in acks]
    await client.wait_until(lambda: len(client.received(ROOM)) >= len(texts))
    return {"sent": texts, "acked": len(results), "received": client.received(ROOM)}


async def _silence(stage: Stage, client: ChatClient) -> None:
    assert stage.tap is not None
    stage.tap.hold_server_bytes()
    # The client notices the silence after pingInterval + pingTimeout (1.2 s), then
    # closes its WebSocket; with the server's bytes held, aiohttp may wait for the
    # close handshake up to its ws_close timeout (10 s) before the disconnect lands.
    await client.wait_for_state(State.RECONNECTING, timeout=15)
    await client.wait_for_state(State.CONNECTED, timeout=5)
    stage.tap.release_server_bytes()


def _figures(client: ChatClient, deterministic: bool) -> dict[str, Any]:
    history = []
    for r in client.history:
        row: dict[str, Any] = {
            "from": str(r.source),
            "to": str(r.target),
            "trigger": str(r.trigger),
            "cause": r.cause,
        }
        if not deterministic:
            row["t"] = round(r.time, 3)
        history.append(row)
    errors = []
    for e in client.errors:
        errors.append(
            {
                "code": e.code,
                "message": e.message,
                "event": e.event,
                "detection": str(e.pattern.detection),
                "classification": str(e.pattern.classification),
                "recovery": str(e.pattern.recovery),
            }
        )
    lost = [r.cause for r in client.history if r.target is State.RECONNECTING]
    detected = None
    if lost:
        pattern = classify(None)
        detected = {
            "cause": lost[0],
            "detection": str(pattern.detection),
            "recovery": str(pattern.recovery),
        }
    return {
        "history": history,
        "path": [[str(r.source), str(r.target)] for r in client.history],
        "retry_delays": [round(d, 3) for d in client.retry_delays],
        "errors": errors,
        "connection_lost": detected,
        "state": str(client.state),
    }


def _states(result: ScenarioResult) -> Any:
    """The state machine with the path taken; for a fault that does not move it (a
    rate limit), the chat events of the burst, where the fault and its recovery show."""
    f = result.figures
    if "sent" in f:
        limited = sum(1 for e in f["errors"] if e["code"] == "rate_limited")
        title = (
            f"fault = rate_limit: alice stays {f['state']}; rate_limited {limited}×,"
            f" her outbox waited and resent ({len(f['received'])} of {len(f['sent'])}"
            " delivered once)"
        )
        events = (e for e in result.trace.events if not_a_carrier(e) and e.layer is not Layer.EIO)
        return sequence_diagram(
            Trace(result.trace.lifelines, (replace(e, step=None) for e in events)),
            layers=["sio", "app"],
            title=title,
        )
    path = [(a, b) for a, b in f["path"]]
    return state_diagram(f["state"], path)


def _wire_row(event: TraceEvent) -> bool:
    """The rows of the fault on the wire: HTTP, Engine.IO and Socket.IO packets, and
    refused TCP connections (not the carriers of Socket.IO packets)."""
    if event.layer is Layer.TCP:
        return event.kind == "error"
    return not_a_carrier(event)


def _sequence(result: ScenarioResult) -> Any:
    return sequence_view(result, ["tcp", "http", "eio", "sio"], _wire_row)
