"""Socket.IO v5 packets, checked against python-socketio's encoder."""

from __future__ import annotations

import random

import pytest
from socketio import packet as oracle

from tutorial.protocol.layers import DecodeError, Layer
from tutorial.protocol.socketio import SioDecoder, SioPacket, SioPacketType, decode_packet

# One of every packet type, as python-socketio builds them: (type, namespace, id, data).
ORACLE_PACKETS = [
    (oracle.CONNECT, None, None, None),
    (oracle.CONNECT, "/admin", None, {"token": "t0k"}),
    (oracle.CONNECT, None, None, {"sid": "xyz"}),
    (oracle.DISCONNECT, None, None, None),
    (oracle.DISCONNECT, "/admin", None, None),
    (oracle.EVENT, None, None, ["send-message", {"text": "hi", "roomId": "general"}]),
    (oracle.EVENT, "/admin", 3, ["join-room", {"roomId": "r1"}, 2, None, True]),
    (oracle.EVENT, None, 12345, ["typing-start"]),
    (oracle.ACK, None, 3, [{"ok": True, "seq": 7}]),
    (oracle.ACK, "/admin", 0, []),
    (oracle.CONNECT_ERROR, None, None, {"message": "Not authorized", "data": {"code": 4}}),
    (oracle.CONNECT_ERROR, "/admin", None, "Invalid namespace"),
]
ORACLE_BINARY = [
    (oracle.EVENT, None, None, ["upload", b"\x01\x02", {"thumb": b"\xff", "name": "a.png"}]),
    (oracle.EVENT, "/admin", 9, ["upload", [b"", b"\x00"]]),
    (oracle.ACK, None, 4, [b"\xca\xfe"]),
]


@pytest.mark.parametrize(("packet_type", "namespace", "ack_id", "data"), ORACLE_PACKETS)
def test_every_packet_python_socketio_encodes_decodes_the_same(
    packet_type, namespace, ack_id, data
):
    encoded = oracle.Packet(packet_type, data, namespace=namespace, id=ack_id).encode()
    ours = decode_packet(encoded)
    assert isinstance(ours, SioPacket), ours
    assert (ours.type, ours.namespace, ours.id, ours.data) == (
        packet_type,
        namespace or "/",
        ack_id,
        data,
    )


@pytest.mark.parametrize(("packet_type", "namespace", "ack_id", "data"), ORACLE_BINARY)
def test_binary_packets_python_socketio_encodes_decode_with_their_attachments(
    packet_type, namespace, ack_id, data
):
    text, *attachments = oracle.Packet(packet_type, data, namespace=namespace, id=ack_id).encode()
    decoder = SioDecoder()
    assert decoder.receive(text) == []
    events = [e for a in attachments for e in decoder.receive(a)]
    [ours] = events
    assert ours.type == packet_type + 3  # EVENT becomes BINARY_EVENT, ACK BINARY_ACK
    assert (ours.namespace, ours.id, ours.attachments) == (
        namespace or "/",
        ack_id,
        len(attachments),
    )
    expected_args = data[1:] if packet_type == oracle.EVENT else data
    assert ours.args == expected_args


def test_event_name_and_args_of_an_event():
    packet = decode_packet('2["send-message",{"text":"hi"}]')
    assert packet.event_name == "send-message"
    assert packet.args == [{"text": "hi"}]


def test_namespace_and_ack_id_are_read_in_order():
    packet = decode_packet('2/admin,13["x"]')
    assert (packet.type, packet.namespace, packet.id, packet.data) == (
        SioPacketType.EVENT,
        "/admin",
        13,
        ["x"],
    )


def test_attachment_count_is_read_before_the_namespace():
    packet = decode_packet(
        '52-/admin,["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    assert (packet.type, packet.attachments, packet.namespace) == (
        SioPacketType.BINARY_EVENT,
        2,
        "/admin",
    )


def test_label_abbreviates_nested_values():
    assert str(decode_packet('23["send-message",{"text":"hi"}]')) == (
        'sio EVENT ["send-message",{…}] id=3'
    )
    assert str(decode_packet('0{"sid":"xyz"}')) == 'sio CONNECT {"sid":"xyz"}'


def test_attachment_with_no_packet_waiting_is_a_decode_error():
    assert SioDecoder().receive(b"\x01") == [
        DecodeError(Layer.SIO, "attachment with no packet waiting", b"\x01")
    ]


def test_text_packet_before_the_attachments_arrive_is_a_decode_error_then_decodes():
    decoder = SioDecoder()
    decoder.receive('51-["upload",{"_placeholder":true,"num":0}]')
    error, packet = decoder.receive('2["x"]')
    assert error.reason == "packet got 0 of its 1 attachments"
    assert packet.event_name == "x"


def test_placeholder_that_names_no_attachment_is_a_decode_error():
    decoder = SioDecoder()
    decoder.receive('51-["upload",{"_placeholder":true,"num":3}]')
    [error] = decoder.receive(b"\x01")
    assert error.reason == "placeholder num 3 names no attachment"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty packet"),
        ("7", "unknown packet type '7'"),
        ("2[]", "EVENT payload must be a non-empty array"),
        ("2{", "payload is not JSON"),
        ("4", "CONNECT_ERROR payload must be an object or a string"),
        ("2[1]", "EVENT name must be a string"),
        ("2", "EVENT payload must be a non-empty array"),
        ("2" + "9" * 40 + '["x"]', "acknowledgment id too large"),
        ('29007199254740992["x"]', "acknowledgment id too large"),
        ('2["disconnect"]', "reserved event name 'disconnect'"),
        ("2[NaN]", "payload is not JSON"),
        ("0[]", "CONNECT payload not an object"),
        ('1["x"]', "DISCONNECT carries no payload"),
        ("3[1]", "ACK without an acknowledgment id"),
        ('5["x"]', "binary packet without its '<count>-' prefix"),
        ('599999-["x"]', "too many attachments"),
        ("2" + "[" * 40 + "]" * 40, "payload nested deeper than 32"),
        ("2" + "[" * 100000, "payload is not JSON"),
        ('2["x",1' + "0" * 5000 + "]", "payload is not JSON"),
    ],
)
def test_hostile_packet_is_a_decode_error(text, reason):
    error = decode_packet(text)
    assert isinstance(error, DecodeError) and error.layer is Layer.SIO
    assert error.reason.startswith(reason)
    assert error.raw == text.encode()


def test_random_text_never_raises():
    rng = random.Random(5)
    alphabet = '0123456789-/,[]{}":_placeholdertruenum\x00é'
    decoder = SioDecoder()
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert isinstance(decode_packet(text), SioPacket | DecodeError)
        data: str | bytes = rng.randbytes(3) if rng.random() < 0.2 else text
        for item in decoder.receive(data):
            assert isinstance(item, SioPacket | DecodeError)
            if isinstance(item, SioPacket):
                item.args  # noqa: B018 (reconstructing attachments must not raise either)
