"""Chapter 1, seed diagram 1: the WebSocket handshake, as it really crosses the wire.

One teaching client connects through the wiretap to a real server. With
``transport="websocket"`` the trace holds the HTTP upgrade request (with
``Sec-WebSocket-Key``), the ``101 Switching Protocols`` (with ``Sec-WebSocket-Accept``),
then, over WebSocket, the Engine.IO OPEN packet, the Socket.IO CONNECT and its reply.
With ``transport="polling"`` the session starts on HTTP long-polling and then upgrades:
``2probe``, ``3probe``, ``5``.

The client connects without logging in, as in the seed (``{"type":"connect"}``).
With ``sample_key=True`` (the default, deterministic or not) it sends RFC 6455's sample
nonce, so that the learner can check the ``Sec-WebSocket-Accept`` against section 1.3
of the RFC: ``dGhlIHNhbXBsZSBub25jZQ==`` → ``s3pPLMBiTxaQ9kYGzzhZRbK+xOo=``.
"""

from __future__ import annotations

from typing import Any

from tutorial.chat.server import ChatServer
from tutorial.scenarios.base import ScenarioResult, Stage, not_a_carrier

TRANSPORTS: dict[str, tuple[str, ...]] = {
    "websocket": ("websocket",),
    "polling": ("polling", "websocket"),
}


async def run(
    transport: str = "websocket",
    sample_key: bool = True,
    *,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """Connect one anonymous client over ``transport`` ("websocket" or "polling")."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r}: choose from {sorted(TRANSPORTS)}")
    lifelines = [("client", "Client", "client"), ("server", "Server", "server")]
    async with Stage(
        "handshake", deterministic=deterministic, server=server, lifelines=lifelines
    ) as stage:
        if sample_key and not deterministic:
            stage.use_sample_key()
        options = stage.options(transports=TRANSPORTS[transport])
        # Anonymous: CONNECT without credentials, like the seed.
        client = stage.make_client("client", options=options, label="Client", anonymous=True)
        await client.connect()
        if transport == "polling":
            # Wait for the upgrade to finish (the client sends "5" on the WebSocket).
            await stage.trace.wait_for(lambda e: e.raw == b"5", 3.0)
        sid = client.sid
        await stage.close_clients()  # and its closing handshake, on the trace too
        figures: dict[str, Any] = {
            "transport": transport,
            "sid": sid,
            "upgrade": _find(stage, "http", 101),
            "events": len(stage.trace),
        }
        title = f"Seed diagram 1: the Socket.IO handshake ({transport})"
        return stage.result(
            figures=figures,
            layers="packets",
            title=title,
            extras={"frames": _frames},
            focus=not_a_carrier,
        )


def _frames(result: ScenarioResult) -> Any:
    return result.diagram(layers="frames")


def _find(stage: Stage, layer: str, status: int) -> dict[str, Any] | None:
    for event in stage.trace.events:
        if event.layer.value == layer and event.fields.get("status") == status:
            return {"label": event.label, "headers": event.fields.get("headers")}
    return None
