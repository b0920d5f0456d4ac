"""The chapters' check cells accept the right answers and refuse wrong ones."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tutorial import exercises
from tutorial.client.recovery import Backoff
from tutorial.exercises import RIGHT, UNANSWERED, WRONG
from tutorial.explain import frame_bits_table, seed_view, wire_vs_seed
from tutorial.protocol.catalog import ErrorCode
from tutorial.protocol.states import State


def test_accept_key_check_knows_the_rfc_example() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert exercises.accept_key(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    assert exercises.accept_key(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo").status == WRONG
    assert exercises.accept_key(key, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=").status == WRONG
    key_alone = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
    assert "GUID" in exercises.accept_key(key, key_alone).explanation


def test_frame_header_check_matches_rfc_section_5_7() -> None:
    assert exercises.frame_header(b"Hello", True, bytes([0x81, 0x85]))
    assert exercises.frame_header(b"Hello", False, bytes([0x81, 0x05]))
    masked_wrong = exercises.frame_header(b"Hello", True, bytes([0x81, 0x05]))
    assert masked_wrong.status == WRONG and "MASK" in masked_wrong.explanation
    assert exercises.frame_header(b"Hello", True, [0x81, 0x85]).status == WRONG
    assert exercises.frame_header(b"Hello", True, "8185").status == WRONG


def test_an_unanswered_exercise_says_so_and_is_not_right() -> None:
    for verdict in (
        exercises.accept_key("x", None),
        exercises.frame_header(b"Hi", True, None),
        exercises.value(None, 3, "hint"),
        exercises.reachable_from(State.RECONNECTING, None),
        exercises.total_backoff(Backoff(), 3, None),
        exercises.private_room_members("private-chat", None),
    ):
        assert verdict.status == UNANSWERED and not verdict
        assert "not answered yet" in repr(verdict)


def test_a_check_without_an_expected_value_is_a_broken_question() -> None:
    with pytest.raises(ValueError):
        exercises.value(None, None, "hint")


def test_value_rejects_the_wrong_type_with_an_explanation() -> None:
    assert exercises.value(2, 2, "h")
    assert exercises.value(True, 1, "h").status == WRONG
    assert exercises.value("2", 2, "h").status == WRONG
    assert exercises.value(2, "2", "h").status == WRONG
    assert exercises.value(3, 2, "h").status == WRONG


def test_reachable_states_come_from_the_table() -> None:
    assert exercises.reachable_from(State.RECONNECTING, ["CONNECTED", "FAILED", "DISCONNECTED"])
    assert not exercises.reachable_from(State.RECONNECTING, ["CONNECTED", "FAILED"])
    assert not exercises.reachable_from(State.RECONNECTING, "CONNECTED")
    assert not exercises.reachable_from(State.RECONNECTING, [])


def test_total_backoff_ignores_jitter_and_respects_the_cap() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=4, jitter=0.5)
    assert exercises.total_backoff(backoff, 5, 0.5 + 1 + 2 + 4 + 4)
    uncapped = exercises.total_backoff(backoff, 5, 0.5 + 1 + 2 + 4 + 8)
    assert uncapped.status == WRONG and "capped" in uncapped.explanation
    assert exercises.total_backoff(Backoff(base=1, factor=1, cap=1), 1, True).status == WRONG
    assert exercises.total_backoff(backoff, 5, "11.5").status == WRONG


def test_private_room_members_and_error_codes() -> None:
    assert exercises.private_room_members("private-chat", ["charlie", "alice"])
    assert not exercises.private_room_members("private-chat", ["alice", "eve"])
    assert not exercises.private_room_members("private-chat", [])
    with pytest.raises(ValueError):
        exercises.private_room_members("general", [])
    with pytest.raises(ValueError):
        exercises.private_room_members("no-such-room", [])
    assert exercises.error_code(ErrorCode.FORBIDDEN, "forbidden")
    assert not exercises.error_code(ErrorCode.FORBIDDEN, "not_in_room")
    assert exercises.error_code("forbidden", "Forbidden").status == WRONG


async def test_the_server_answers_the_error_code_questions() -> None:
    outcome = await exercises.ask_server_error(
        "bob", "send-message", {"roomId": "tech-talk", "text": "hi", "clientMsgId": "x1"}
    )
    assert outcome == "not_in_room"
    too_long = {"roomId": "general", "text": "x" * 5000, "clientMsgId": "x2"}
    assert await exercises.ask_server_error(
        "bob", "send-message", too_long, joined=["general"]
    ) == ("message_too_long")


async def test_dedup_field_is_found_by_asking_a_real_server() -> None:
    assert (await exercises.dedup_field("clientMsgId")).status == RIGHT
    assert (await exercises.dedup_field("text")).status == WRONG
    assert (await exercises.dedup_field("seq")).status == WRONG
    assert (await exercises.dedup_field(None)).status == UNANSWERED


async def test_the_sticky_free_transport_comes_from_two_real_handshakes() -> None:
    assert (await exercises.sticky_free_transport("websocket")).status == RIGHT
    assert (await exercises.sticky_free_transport("polling")).status == WRONG


async def test_deliveries_are_counted_on_the_wire() -> None:
    from tutorial.scenarios import run_scenario

    flow = await run_scenario("event-flow", users=["alice", "bob", "charlie"])
    assert exercises.new_messages_sent(flow.trace) == 3
    assert exercises.deliveries(3, flow.trace)
    assert exercises.deliveries(2, flow.trace).status == WRONG


def test_frame_table_shows_every_header_field_of_the_rfc_hello() -> None:
    table = frame_bits_table(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert "0001 = TEXT" in table
    assert "37 fa 21 3d" in table
    assert "`Hello`" in table


def test_seed_view_simplifies_connect_packets_as_diagram_1_does() -> None:
    assert seed_view("0") == {"type": "connect", "namespace": "/"}
    assert seed_view('0{"sid":"abc"}') == {"type": "connect", "data": "sid"}
    assert "`40`" in wire_vs_seed(["40"])
