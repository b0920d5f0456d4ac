"""Chapter 4, seed diagram 4: rooms, their members, and the join-room sequence.

The seed's cast joins the seed's rooms (``tutorial.chat.demo.SEED_MEMBERSHIP``),
so alice, bob, charlie and diana end up in several rooms at once. eve asks for
``private-chat`` and is refused (``error forbidden``). One join is the seed's
"User Join Room Sequence", numbered as the seed numbers it: ``joiner`` switches from
``old_room`` (where nobody else is yet) to ``room`` with ``leaveOthers``:

0. ``join-room {roomId}`` (the client's emit, from the wire)
1. Validate room · 2. Leave old room (server spans)
3. Join new room (server → Room State) · 4. Update room member list (Room State → server)
5. ``room-joined`` confirmation (to the joiner, from the wire)
6. Notify others ``user-joined`` (to the room's other members, from the wire)

``figures["snapshot"]`` is the server's live ``rooms_snapshot()`` at the end: the
seed's picture, drawn by [tutorial.render.rooms.rooms_diagram][tutorial.render.rooms.rooms_diagram].
"""

from __future__ import annotations

from typing import Any

from tutorial.chat import demo
from tutorial.chat.server import ChatServer
from tutorial.client.client import ChatError
from tutorial.protocol.catalog import Event
from tutorial.render.rooms import rooms_diagram
from tutorial.scenarios.base import ScenarioResult, Stage, mark_story, sio_event
from tutorial.trace.model import TraceEvent


async def run(
    joiner: str = "frank",
    room: str = "tech-talk",
    old_room: str = "general",
    intruder: str = "eve",
    private_room: str = "private-chat",
    *,
    deterministic: bool = False,
    server: ChatServer | None = None,
) -> ScenarioResult:
    """Seat the cast, refuse the intruder, and record ``joiner``'s switch to ``room``."""
    others = [u for u in demo.SEED_MEMBERSHIP.get(room, ()) if u != joiner]
    lifelines = [(joiner, joiner, "client"), ("server", "Server", "server")]
    lifelines += [("rooms", "Room State", "room")] + [(u, u, "client") for u in others]
    async with Stage(
        "rooms",
        deterministic=deterministic,
        server=server,
        lifelines=lifelines,
        rooms_lifeline="rooms",
    ) as stage:
        clients = {u: await stage.client(u) for u in demo.USERS}
        # The members of the joiner's target room sit down first, and the joiner
        # waits alone in old_room, so that its switch notifies exactly them.
        for user in others:
            await stage.join(clients[user], room)
        await stage.join(clients[joiner], old_room)
        start = stage.mark()
        ack = await stage.join(clients[joiner], room, leave_others=True)
        end = stage.mark()
        # Everybody else takes their seat from the seed's picture.
        for room_id, members in demo.SEED_MEMBERSHIP.items():
            for user in members:
                if user in clients and room_id not in clients[user].offsets:
                    await stage.join(clients[user], room_id)
        # The intruder knocks on the private room.
        refusal: dict[str, Any] = {}
        try:
            await clients[intruder].join(private_room)
        except ChatError as err:
            refusal = {
                "code": err.code,
                "message": err.message,
                "recovery": str(err.pattern.recovery),
            }
        await clients[intruder].wait_until(lambda: bool(clients[intruder].errors))
        assert stage.server is not None
        snapshot = await stage.server.rooms_snapshot()
        memberships = {u: sorted(c.offsets) for u, c in sorted(clients.items())}
        await stage.close_clients()  # the rest of each connection's life, on the trace

        def relabel(e: TraceEvent) -> dict[str, Any] | None:
            if sio_event(e, Event.JOIN_ROOM) and e.source == joiner:
                return {"step": 0, "label": f"emit('join-room', {{roomId: '{room}'}})"}
            if sio_event(e, Event.ROOM_JOINED) and e.target == joiner:
                return {"step": 5, "label": "room-joined confirmation"}
            if sio_event(e, Event.USER_JOINED) and e.source == "server":
                return {"step": 6, "label": "Notify others 'user-joined'"}
            return None

        trace = mark_story(stage.trace, start, end, relabel)
        figures: dict[str, Any] = {
            "snapshot": snapshot,
            "joined": ack,
            "refusal": refusal,
            "intruder": intruder,
            "memberships": memberships,
        }
        return stage.result(
            trace,
            figures,
            story=True,
            title=f'Seed diagram 4: {joiner} switches to room "{room}"',
            extras={"structure": _structure},
        )


def _structure(result: ScenarioResult) -> Any:
    return rooms_diagram(result.figures["snapshot"], title="Socket.IO server instance")
