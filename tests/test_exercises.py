"""The chapters' check cells accept the right answers and refuse wrong ones."""

from __future__ import annotations

from tutorial import exercises
from tutorial.client.recovery import Backoff
from tutorial.client.states import State
from tutorial.explain import frame_bits_table, seed_view, wire_vs_seed
from tutorial.protocol.catalog import ErrorCode


def test_accept_key_check_knows_the_rfc_example() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert exercises.accept_key(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    assert not exercises.accept_key(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo")


def test_frame_header_check_matches_rfc_section_5_7() -> None:
    assert exercises.frame_header(b"Hello", True, bytes([0x81, 0x85]))
    assert exercises.frame_header(b"Hello", False, bytes([0x81, 0x05]))
    assert not exercises.frame_header(b"Hello", True, bytes([0x81, 0x05]))


def test_reachable_states_come_from_the_table() -> None:
    assert exercises.reachable_from(State.RECONNECTING, ["CONNECTED", "FAILED", "DISCONNECTED"])
    assert not exercises.reachable_from(State.RECONNECTING, ["CONNECTED", "FAILED"])


def test_total_backoff_ignores_jitter_and_respects_the_cap() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=4, jitter=0.5)
    assert exercises.total_backoff(backoff, 5, 0.5 + 1 + 2 + 4 + 4)
    assert not exercises.total_backoff(backoff, 5, 0.5 + 1 + 2 + 4 + 8)


def test_private_room_members_and_error_codes() -> None:
    assert exercises.private_room_members("private-chat", ["charlie", "alice"])
    assert not exercises.private_room_members("private-chat", ["alice", "eve"])
    assert exercises.error_code(ErrorCode.FORBIDDEN, "forbidden")
    assert not exercises.error_code(ErrorCode.FORBIDDEN, "not_in_room")


def test_frame_table_shows_every_header_field_of_the_rfc_hello() -> None:
    table = frame_bits_table(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert "0001 = TEXT" in table
    assert "37 fa 21 3d" in table
    assert "`Hello`" in table


def test_seed_view_simplifies_connect_packets_as_diagram_1_does() -> None:
    assert seed_view("0") == {"type": "connect", "namespace": "/"}
    assert seed_view('0{"sid":"abc"}') == {"type": "connect", "data": "sid"}
    assert "`40`" in wire_vs_seed(["40"])
