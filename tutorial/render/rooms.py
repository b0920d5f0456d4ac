"""Rooms and their members, drawn like seed diagram 4, from a snapshot of the server.

A snapshot is plain data (a dict the server can produce and JSON can carry):

    {"namespace": "/",
     "rooms": {"general": {"private": False, "members": {"alice": ["sid1"], ...}}, ...}}

Each room is a box of its members, "alice (sid1)". A user in several rooms appears
once per room, always in the same colour, and a footnote names the users who are in
more than one room, so the picture does not depend on colour alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import graphviz

from tutorial.render import palette

USER_FILLS: tuple[tuple[str, str], ...] = (  # (fill, border), light enough for black text
    ("#cfe2ff", "#007bff"),
    ("#ffe5cc", "#ff9500"),
    ("#d4edda", "#28a745"),
    ("#e2d9f3", "#6f42c1"),
    ("#f8d7da", "#dc3545"),
    ("#d1ecf1", "#17a2b8"),
    ("#fff3cd", "#b58900"),
    ("#e9ecef", "#6c757d"),
    ("#f3d9e8", "#d63384"),
    ("#d9f2e6", "#20c997"),
)


@dataclass(frozen=True)
class RoomMember:
    user: str
    sids: tuple[str, ...]


@dataclass(frozen=True)
class Room:
    name: str
    private: bool
    members: tuple[RoomMember, ...]


@dataclass(frozen=True)
class RoomsSnapshot:
    """Who is in which room of one namespace; rooms public first, then by name."""

    namespace: str
    rooms: tuple[Room, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, hide_sid_rooms: bool = True) -> RoomsSnapshot:
        """Read the plain form. ``hide_sid_rooms`` drops the room Socket.IO makes for
        every connection (named after its sid), which is not a chat room."""
        rooms = []
        for name, room in data.get("rooms", {}).items():
            members = tuple(
                RoomMember(str(user), tuple(sorted(str(s) for s in sids)))
                for user, sids in sorted(room.get("members", {}).items())
            )
            if hide_sid_rooms and any(name in m.sids for m in members):
                continue
            rooms.append(Room(str(name), bool(room.get("private", False)), members))
        rooms.sort(key=lambda r: (r.private, r.name))
        return cls(str(data.get("namespace", "/")), tuple(rooms))

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "rooms": {
                r.name: {"private": r.private, "members": {m.user: list(m.sids) for m in r.members}}
                for r in self.rooms
            },
        }

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(sorted({m.user for r in self.rooms for m in r.members}))


def rooms_diagram(
    snapshot: RoomsSnapshot | Mapping[str, Any], *, columns: int = 2, title: str | None = None
) -> graphviz.Digraph:
    """Draw the rooms of one namespace as a grid of boxes, ``columns`` rooms wide.

    Each room is one node (an HTML-like table of its members), so dot keeps the grid:
    the rooms of a grid row share a rank and are chained left to right.
    """
    if not isinstance(snapshot, RoomsSnapshot):
        snapshot = RoomsSnapshot.from_dict(snapshot)
    colours = {u: USER_FILLS[i % len(USER_FILLS)] for i, u in enumerate(snapshot.users)}

    g = graphviz.Digraph(name="rooms")
    g.attr(
        rankdir="TB",
        nodesep="0.3",
        ranksep="0.3",
        newrank="true",
        fontname=palette.FONT,
        fontsize="12",
        fontcolor=palette.INK,
    )
    g.attr(
        "node", shape="box", fontname=palette.FONT, fontsize=palette.FONT_SIZE, margin="0.05,0.05"
    )

    with g.subgraph(name="cluster_server") as server:
        server.attr(
            label=palette.escape(title or "Socket.IO server instance"),
            style="rounded",
            color=palette.INK,
            labeljust="l",
        )
        with server.subgraph(name="cluster_namespace") as ns:
            ns.attr(
                label=palette.escape(f'Namespace: "{snapshot.namespace}"'),
                style="rounded,filled",
                fillcolor="#f8f9fa",
                color=palette.LIFELINE_GREY,
                labeljust="c",
            )
            names = [f"room_{i}" for i in range(len(snapshot.rooms))]
            for start in range(0, len(names), columns):
                with ns.subgraph() as row:
                    row.attr(rank="same")
                    for i in range(start, min(start + columns, len(names))):
                        _room(row, names[i], snapshot.rooms[i], colours)
                    chunk = names[start : start + columns]
                    for a, b in itertools.pairwise(chunk):
                        row.edge(a, b, style="invis")
            for i in range(columns, len(names)):
                ns.edge(names[i - columns], names[i], style="invis")

    multi = [
        (u, [r.name for r in snapshot.rooms if any(m.user == u for m in r.members)])
        for u in snapshot.users
    ]
    multi = [(u, rooms) for u, rooms in multi if len(rooms) > 1]
    foot = "Same colour, same user: a user can be in several rooms at once."
    if multi:
        foot += "".join("\\n" + palette.escape(f"{u}: {', '.join(rooms)}") for u, rooms in multi)
    g.attr(label=graphviz.nohtml(foot), labelloc="b", fontsize=palette.FONT_SIZE)
    return g


def _room(
    g: graphviz.Digraph, name: str, room: Room, colours: Mapping[str, tuple[str, str]]
) -> None:
    count = f"{len(room.members)} member{'s' if len(room.members) != 1 else ''}"
    access = "private" if room.private else "open"
    title = palette.html_escape(f'Room: "{room.name}"')
    rows = [
        f'<TR><TD ALIGN="LEFT" BORDER="0"><B>{title}</B></TD></TR>',
        f'<TR><TD ALIGN="LEFT" BORDER="0"><FONT POINT-SIZE="9">{access} · {count}</FONT></TD></TR>',
    ]
    for m in room.members:
        fill, border = colours[m.user]
        text = palette.html_escape(f"{m.user} ({', '.join(m.sids)})")
        rows.append(f'<TR><TD BGCOLOR="{fill}" COLOR="{border}" STYLE="rounded">{text}</TD></TR>')
    if not room.members:
        rows.append('<TR><TD BORDER="0">(no members)</TD></TR>')
    note = "private: members only" if room.private else "broadcasts reach members only"
    rows.append(
        f'<TR><TD BORDER="0"><FONT POINT-SIZE="9" COLOR="{palette.PROCESSING_GREY}">'
        f"{note}</FONT></TD></TR>"
    )
    label = (
        '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="5" CELLPADDING="4">'
        + "".join(rows)
        + "</TABLE>>"
    )
    if room.private:  # dashed red border and the word "private": not colour alone
        attrs = {"style": "rounded,dashed,filled", "color": palette.ERROR_RED, "penwidth": "1.5"}
    else:
        attrs = {"style": "rounded,filled", "color": palette.INK, "penwidth": "1"}
    g.node(
        name, label=label, fillcolor="white", tooltip=palette.escape(f"room {room.name}"), **attrs
    )
