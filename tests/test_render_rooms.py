"""Rooms and members, drawn like seed diagram 4."""

from __future__ import annotations

import re
import subprocess

from tutorial.render import RoomsSnapshot, palette, rooms_diagram
from tutorial.render.rooms import Room, RoomMember

SEED_CAST = {
    "namespace": "/",
    "rooms": {
        "project-alpha": {
            "private": True,
            "members": {"diana": ["socket_4"], "bob": ["socket_2"], "grace": ["socket_7"]},
        },
        "general": {
            "private": False,
            "members": {"alice": ["socket_1"], "bob": ["socket_2"], "eve": ["socket_5"]},
        },
        "private-chat": {
            "private": True,
            "members": {"alice": ["socket_1"], "charlie": ["socket_3"]},
        },
        "tech-talk": {
            "private": False,
            "members": {"charlie": ["socket_3"], "diana": ["socket_4"], "frank": ["socket_6"]},
        },
    },
}


def room_node(source: str, name: str) -> str:
    """The DOT line of the room node whose title is ``Room: "name"``."""
    for line in source.splitlines():
        if f"Room: &quot;{name}&quot;" in line:
            return line
    raise AssertionError(f"no room {name}")


def test_from_dict_sorts_open_rooms_first_then_by_name_and_members_by_name():
    snapshot = RoomsSnapshot.from_dict(SEED_CAST)
    assert [r.name for r in snapshot.rooms] == [
        "general",
        "tech-talk",
        "private-chat",
        "project-alpha",
    ]
    alpha = snapshot.rooms[3]
    assert alpha == Room(
        "project-alpha",
        True,
        (
            RoomMember("bob", ("socket_2",)),
            RoomMember("diana", ("socket_4",)),
            RoomMember("grace", ("socket_7",)),
        ),
    )
    assert snapshot.users == ("alice", "bob", "charlie", "diana", "eve", "frank", "grace")


def test_from_dict_and_to_dict_agree():
    snapshot = RoomsSnapshot.from_dict(SEED_CAST)
    assert RoomsSnapshot.from_dict(snapshot.to_dict()) == snapshot


def test_the_room_socketio_makes_for_each_connection_is_hidden():
    data = {"rooms": {"Kq1rT8pLm2Zx0aBc": {"members": {"alice": ["Kq1rT8pLm2Zx0aBc"]}}}}
    assert RoomsSnapshot.from_dict(data).rooms == ()
    assert len(RoomsSnapshot.from_dict(data, hide_sid_rooms=False).rooms) == 1


def test_each_room_lists_its_members_with_their_sockets():
    source = rooms_diagram(SEED_CAST).source
    general = room_node(source, "general")
    for member in ["alice (socket_1)", "bob (socket_2)", "eve (socket_5)"]:
        assert member in general
    assert "charlie (socket_3)" in room_node(source, "private-chat")
    assert 'label="Namespace: \\"/\\""' in source


def test_a_user_in_two_rooms_appears_in_both_in_the_same_colour():
    source = rooms_diagram(SEED_CAST).source
    fill = re.compile(r'BGCOLOR="(#\w+)" COLOR="(#\w+)" STYLE="rounded">alice \(socket_1\)')
    general = fill.search(room_node(source, "general")).groups()
    private = fill.search(room_node(source, "private-chat")).groups()
    assert general == private
    bob = re.search(r'BGCOLOR="(#\w+)"[^>]*>bob ', room_node(source, "general")).group(1)
    assert bob != general[0]
    assert "alice: general, private-chat" in source  # said in words too


def test_private_rooms_are_marked_in_words_and_with_a_dashed_red_border():
    source = rooms_diagram(SEED_CAST).source
    private = room_node(source, "private-chat")
    assert "private · 2 members" in private
    assert "dashed" in private and palette.ERROR_RED in private
    general = room_node(source, "general")
    assert "open · 3 members" in general and "dashed" not in general


def test_rooms_form_a_grid_two_wide_in_order():
    source = rooms_diagram(SEED_CAST).source
    assert "room_0 -> room_1 [style=invis]" in source
    assert "room_2 -> room_3 [style=invis]" in source
    assert "room_0 -> room_2 [style=invis]" in source


def test_names_are_escaped_in_the_html_labels():
    data = {"rooms": {"r&d": {"members": {"<eve>": ["s1"]}}}}
    source = rooms_diagram(data).source
    assert "Room: &quot;r&amp;d&quot;" in source and "&lt;eve&gt; (s1)" in source


def test_an_empty_room_says_so():
    assert "(no members)" in rooms_diagram({"rooms": {"lobby": {"members": {}}}}).source


def test_equal_snapshots_give_identical_dot_and_svg_whatever_the_dict_order():
    shuffled = {"namespace": "/", "rooms": dict(reversed(list(SEED_CAST["rooms"].items())))}
    one, two = rooms_diagram(SEED_CAST), rooms_diagram(shuffled)
    assert one.source == two.source
    assert one.pipe(format="svg") == two.pipe(format="svg")


def test_dot_renders_it_without_warnings():
    source = rooms_diagram(SEED_CAST).source
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True)
    assert done.stderr == b""
