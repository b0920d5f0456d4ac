"""Chapter 3, seed diagram 3: one message, broadcast to everybody in the room.

``users[0]`` sends ``text`` to room ``general``; the server validates it, adds its
metadata (id, seq, ts, user), persists it and broadcasts ``new-message`` to every
member, the sender included. The story is numbered as the seed numbers it:

1. ``send-message`` (the sender's Socket.IO EVENT, from the wire)
2. validate message / add metadata (a server span)
3. broadcast to room (a server span)
4. ``new-message`` (echo to sender)
5. ``new-message`` (to other users): to ``users[1]``
6. ``new-message`` (to all room members): to the rest, one fan-out row
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tutorial.chat.server import ChatServer
from tutorial.protocol.catalog import Event
from tutorial.scenarios.base import ScenarioResult, Stage, mark_story, sio_event
from tutorial.trace.model import TraceEvent

ROOM = "general"


async def run(
    text: str = "Hello everyone!",
    users: Sequence[str] = ("alice", "bob", "charlie", "diana"),
    *,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """``users`` (demo users, at least two) join ``general``; the first one sends ``text``."""
    users = tuple(users)
    if len(users) < 2:
        raise ValueError("the story needs a sender and at least one other user")
    # Columns as in the seed: User A, Server, then the others.
    lifelines = [(users[0], users[0], "client"), ("server", "Server", "server")]
    lifelines += [(u, u, "client") for u in users[1:]]
    async with Stage(
        "event-flow", deterministic=deterministic, server=server, lifelines=lifelines
    ) as stage:
        clients = [await stage.client(u) for u in users]
        for client in clients:
            await stage.join(client, ROOM)
        start = stage.mark()
        ack = await stage.send(clients[0], ROOM, text)
        end = stage.mark()
        await stage.close_clients()  # the rest of each connection's life, on the trace
        sender, first_other = users[0], users[1]

        def relabel(e: TraceEvent) -> dict[str, Any] | None:
            if sio_event(e, Event.SEND_MESSAGE) and e.source == sender:
                return {"step": 1, "label": f"send-message {_quote(text)}"}
            if sio_event(e, Event.NEW_MESSAGE) and e.source == "server":
                if e.target == sender:
                    return {"step": 4, "label": "new-message (echo to sender)"}
                if e.target == first_other:
                    return {"step": 5, "label": "new-message (to other users)"}
                return {"step": 6, "label": "new-message (to all room members)"}
            return None

        trace = mark_story(stage.trace, start, end, relabel)
        received = {c.name: c.received(ROOM) for c in clients}
        figures: dict[str, Any] = {
            "room": ROOM,
            "text": text,
            "ack": ack,
            "received": received,
            "delivered_to": sorted(u for u, texts in received.items() if text in texts),
        }
        return stage.result(
            trace,
            figures,
            story=True,
            layers="chat",
            title=f'Seed diagram 3: event flow in room "{ROOM}"',
        )


def _quote(text: str) -> str:
    short = text if len(text) <= 40 else text[:39] + "…"
    return '"' + short.replace('"', '\\"') + '"'
