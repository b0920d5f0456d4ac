"""Engine.IO v4 packets and payloads, checked against python-engineio's encoder."""

from __future__ import annotations

import json
import random

import pytest
from engineio import packet as oracle
from engineio import payload as oracle_payload

from tutorial.protocol.engineio import (
    EioPacket,
    EioPacketType,
    OpenPayload,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
    open_packet,
)
from tutorial.protocol.layers import DecodeError, Layer

HANDSHAKE = {
    "sid": "lv_VI97HAXpY6yYWAAAC",
    "upgrades": ["websocket"],
    "pingInterval": 25000,
    "pingTimeout": 20000,
    "maxPayload": 1000000,
}

# One of every packet type, as python-engineio builds them.
ORACLE_PACKETS = [
    (oracle.OPEN, HANDSHAKE),
    (oracle.CLOSE, None),
    (oracle.PING, None),
    (oracle.PING, "probe"),
    (oracle.PONG, None),
    (oracle.PONG, "probe"),
    (oracle.MESSAGE, 'hello "world" é'),
    (oracle.MESSAGE, '2["send-message",{"text":"hi"}]'),
    (oracle.MESSAGE, b"\x00\x01\xfe\xff"),
    (oracle.UPGRADE, None),
    (oracle.NOOP, None),
]


def same(ours: EioPacket | DecodeError, packet_type: int, data: object) -> bool:
    assert isinstance(ours, EioPacket), ours
    if isinstance(data, dict):
        assert isinstance(ours.data, str)
        return ours.type == packet_type and json.loads(ours.data) == data
    return ours.type == packet_type and ours.data == data


@pytest.mark.parametrize(("packet_type", "data"), ORACLE_PACKETS)
def test_every_packet_python_engineio_encodes_decodes_the_same(packet_type, data):
    encoded = oracle.Packet(packet_type, data).encode()
    assert same(decode_packet(encoded), packet_type, data)


@pytest.mark.parametrize(("packet_type", "data"), ORACLE_PACKETS)
def test_every_packet_in_base64_polling_form_decodes_the_same(packet_type, data):
    encoded = oracle.Packet(packet_type, data).encode(b64=True)
    assert same(decode_packet(encoded), packet_type, data)


def test_polling_payload_from_python_engineio_decodes_packet_by_packet():
    packets = [oracle.Packet(t, d) for t, d in ORACLE_PACKETS]
    body = oracle_payload.Payload(packets).encode()
    decoded = decode_payload(body)
    assert len(decoded) == len(ORACLE_PACKETS)
    assert all(same(ours, t, d) for ours, (t, d) in zip(decoded, ORACLE_PACKETS, strict=True))


def test_our_polling_payload_decodes_the_same_in_python_engineio():
    ours = [
        EioPacket(EioPacketType.MESSAGE, "0"),
        EioPacket(EioPacketType.MESSAGE, b"\x01\x02"),
        EioPacket(EioPacketType.PING),
    ]
    theirs = oracle_payload.Payload(encoded_payload=encode_payload(ours)).packets
    assert [(p.packet_type, p.data) for p in theirs] == [(4, "0"), (4, b"\x01\x02"), (2, "")]


def test_packets_are_joined_by_the_record_separator():
    body = encode_payload([EioPacket(EioPacketType.MESSAGE, "0"), EioPacket(EioPacketType.PING)])
    assert body == "40\x1e2"


def test_binary_packet_on_websocket_is_sent_as_is():
    assert encode_packet(EioPacket(EioPacketType.MESSAGE, b"\x01")) == b"\x01"
    assert encode_packet(EioPacket(EioPacketType.MESSAGE, b"\x01"), b64=True) == "bAQ=="


def test_open_packet_carries_the_handshake():
    packet = decode_packet("0" + json.dumps(HANDSHAKE))
    assert packet.open_payload == OpenPayload(
        sid="lv_VI97HAXpY6yYWAAAC",
        upgrades=("websocket",),
        ping_interval=25000,
        ping_timeout=20000,
        max_payload=1000000,
    )
    assert str(packet) == "eio OPEN sid=lv_VI97HAXpY6yYWAAAC"


def test_open_packet_helper_encodes_what_the_decoder_reads():
    packet = open_packet("abc", upgrades=())
    assert decode_packet(encode_packet(packet)) == packet
    assert packet.open_payload.upgrades == ()


def test_probe_ping_and_pong_are_recognised():
    assert decode_packet("2probe").is_probe
    assert decode_packet("3probe").is_probe
    assert not decode_packet("2").is_probe
    assert not decode_packet("4probe").is_probe


def test_empty_polling_body_holds_no_packet():
    assert decode_payload("") == []


def test_polling_body_that_is_not_utf8_is_a_decode_error():
    [error] = decode_payload(b"4\xff")
    assert error == DecodeError(Layer.EIO, "polling body is not UTF-8", b"4\xff")


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        ("", "empty packet"),
        ("7", "unknown packet type '7'"),
        ("x4", "unknown packet type 'x'"),
        ("b!!", "b-prefixed packet is not base64"),
        ("0", "OPEN handshake is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("0[]", "OPEN handshake is not a JSON object"),
        ('0{"upgrades":[]}', "OPEN handshake has no sid"),
        (
            '0{"sid":"a","pingInterval":"25000","pingTimeout":1}',
            "OPEN pingInterval/pingTimeout are not integers",
        ),
    ],
)
def test_hostile_packet_is_a_decode_error(encoded, reason):
    assert decode_packet(encoded) == DecodeError(Layer.EIO, reason, encoded.encode())


def test_random_text_never_raises():
    rng = random.Random(4)
    alphabet = '0123456789b{}[]":,\x1eprobe\x00é'
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for item in [*decode_payload(text), decode_packet(text)]:
            assert isinstance(item, EioPacket | DecodeError)
        for item in decode_payload(rng.randbytes(rng.randrange(0, 40))):
            assert isinstance(item, EioPacket | DecodeError)
