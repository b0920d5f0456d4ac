"""The annotated-bytes model: every bit of a unit named once, checked against RFC 6455's
examples and independent encoders (websockets, python-socketio)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from socketio import packet as sio_packet
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode

from tutorial.protocol.annotate import Role, annotate, annotate_frame, annotate_http
from tutorial.protocol.layers import Layer
from tutorial.trace.model import Trace

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"

# RFC 6455 section 5.7, "Examples".
MASKED_HELLO = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")
UNMASKED_HELLO = bytes.fromhex("81 05 48 65 6c 6c 6f")
FRAGMENTED_HEL = bytes.fromhex("01 03 48 65 6c")
FRAGMENTED_LO = bytes.fromhex("80 02 6c 6f")
UNMASKED_PING = bytes.fromhex("89 05 48 65 6c 6c 6f")
MASKED_PONG = bytes.fromhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58")
BINARY_256 = bytes.fromhex("82 7E 0100") + bytes(256)
BINARY_64K = bytes.fromhex("82 7F 0000000000010000") + bytes(65536)

# RFC 6455 section 1.3 (the opening handshake, as the RFC prints it).
HANDSHAKE_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
HANDSHAKE_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)


def fields(raw: bytes, layer: Layer = Layer.WS) -> list[tuple[str, str, str]]:
    """(name, bits or hex, value) of each span."""
    a = annotate(layer, raw)
    return [(s.name, s.bits(raw) if s.is_bits else s.hex(raw), s.value) for s in a.spans]


# -- RFC 6455 5.7 ---------------------------------------------------------------------


def test_the_masked_hello_frame_names_every_field_of_section_5_2() -> None:
    assert fields(MASKED_HELLO) == [
        ("FIN", "1", "1: the final fragment"),
        ("RSV1", "0", "0"),
        ("RSV2", "0", "0"),
        ("RSV3", "0", "0"),
        ("opcode", "0001", "0x1 TEXT: a text frame"),
        ("MASK", "1", "1: the payload is masked"),
        ("payload length", "0000101", "5: 5 bytes"),
        ("masking key", "37 fa 21 3d", "37 fa 21 3d"),
        ("payload", "7f 9f 4d 51 58", "5 bytes: 'Hello'"),
    ]


def test_the_masked_hello_frame_covers_every_bit_once_and_unmasks_to_hello() -> None:
    a = annotate_frame(MASKED_HELLO)
    assert a.gaps_and_overlaps() == []
    assert a.problem is None
    assert dict(a.decoded)["unmasked payload"] == "'Hello'"
    assert dict(a.decoded)["XOR masking key"] == "37 fa 21 3d 37"


def test_the_unmasked_hello_frame_has_no_masking_key() -> None:
    names = [n for n, _, _ in fields(UNMASKED_HELLO)]
    assert "masking key" not in names
    assert fields(UNMASKED_HELLO)[-1] == ("payload", "48 65 6c 6c 6f", "5 bytes: 'Hello'")


def test_a_fragmented_message_says_more_fragments_follow_then_continuation() -> None:
    first, last = fields(FRAGMENTED_HEL), fields(FRAGMENTED_LO)
    assert first[0] == ("FIN", "0", "0: more fragments follow")
    assert first[4][2] == "0x1 TEXT: a text frame"
    assert last[0][2] == "1: the final fragment"
    assert last[4] == ("opcode", "0000", "0x0 CONT: a continuation frame")


def test_ping_and_masked_pong_are_control_frames() -> None:
    assert fields(UNMASKED_PING)[4][2] == "0x9 PING: a ping"
    pong = annotate_frame(MASKED_PONG)
    assert pong.span("opcode").value == "0xa PONG: a pong"
    assert dict(pong.decoded)["unmasked payload"] == "'Hello'"


def test_the_16_bit_length_form_is_its_own_span() -> None:
    a = annotate_frame(BINARY_256)
    assert a.span("payload length").value == "126: the length follows in 2 bytes"
    ext = a.span("extended payload length (16-bit)")
    assert (ext.start, ext.end, ext.value, ext.role) == (16, 32, "256 bytes", Role.LENGTH)
    assert a.span("payload").byte_end - a.span("payload").byte_start == 256
    assert a.gaps_and_overlaps() == [] and a.problem is None


def test_the_64_bit_length_form_is_its_own_span() -> None:
    a = annotate_frame(BINARY_64K)
    assert a.span("payload length").value == "127: the length follows in 8 bytes"
    ext = a.span("extended payload length (64-bit)")
    assert (ext.start, ext.end, ext.value) == (16, 80, "65536 bytes")
    assert a.span("payload").start == 80 and a.span("payload").end == 8 * len(BINARY_64K)
    assert a.gaps_and_overlaps() == [] and a.problem is None


def test_a_close_frame_shows_its_status_code_and_reason() -> None:
    a = annotate_frame(bytes.fromhex("88 05 03 e8") + b"bye")
    assert a.span("close status code").value == "1000 NORMAL_CLOSURE"
    assert a.span("close reason").value == "'bye'"
    assert a.gaps_and_overlaps() == []


def test_a_compressed_frame_is_inflated_when_it_stands_alone() -> None:
    import zlib

    z = zlib.compressobj(wbits=-15)
    body = z.compress(b"Hello") + z.flush(zlib.Z_SYNC_FLUSH)
    raw = bytes([0xC1, len(body[:-4])]) + body[:-4]  # RFC 7692: drop 00 00 ff ff
    a = annotate_frame(raw)
    assert a.span("RSV1").value == "1: compressed (permessage-deflate)"
    assert dict(a.decoded)["inflated"] == "'Hello'"


def test_frames_from_an_independent_encoder_are_read_back() -> None:
    rng = random.Random(6455)
    for size in (0, 1, 125, 126, 127, 65535, 65536):
        data = bytes(rng.randrange(32, 127) for _ in range(size))
        raw = WsFrame(WsOpcode.TEXT, data).serialize(mask=True, extensions=[])
        a = annotate_frame(raw)
        assert a.gaps_and_overlaps() == [] and a.problem is None, size
        assert a.span("masking key").hex(raw) == raw[a.span("masking key").byte_start :][:4].hex(
            " "
        )
        if size:
            shown = dict(a.decoded)["unmasked payload"]
            assert shown.startswith(repr(data.decode())[:40]), size


# -- bad bytes are reported, never raised ---------------------------------------------


@pytest.mark.parametrize("cut", range(len(MASKED_HELLO)))
def test_a_truncated_frame_is_reported_with_every_byte_still_covered(cut: int) -> None:
    raw = MASKED_HELLO[:cut]
    a = annotate_frame(raw)
    assert a.gaps_and_overlaps() == []
    assert a.problem is not None and ("truncated" in a.problem or "no bytes" in a.problem)


def test_a_truncated_16_bit_length_is_reported() -> None:
    a = annotate_frame(BINARY_256[:3])
    assert a.problem == "truncated: the 16-bit extended length is cut short"
    assert a.spans[-1].role is Role.ERROR and a.gaps_and_overlaps() == []


def test_a_reserved_opcode_is_reported() -> None:
    a = annotate_frame(bytes.fromhex("83 00"))
    assert a.problem == "reserved opcode 0x3"
    assert a.span("opcode").value.startswith("0x3 reserved")
    assert "(damaged)" in a.title


def test_a_64_bit_length_with_its_top_bit_set_is_reported() -> None:
    a = annotate_frame(bytes.fromhex("82 7f 80 00 00 00 00 00 00 01") + b"xyz")
    assert a.problem == "64-bit payload length with its most significant bit set"
    assert a.gaps_and_overlaps() == []


def test_bytes_after_the_frame_are_an_error_span() -> None:
    a = annotate_frame(UNMASKED_HELLO + b"!!")
    assert a.problem == "2 bytes after the end of the frame"
    assert a.spans[-1].name == "bytes after the frame"


def test_a_corrupted_mask_bit_changes_what_the_frame_says() -> None:
    corrupted = bytes([MASKED_HELLO[0], MASKED_HELLO[1] & 0x7F]) + MASKED_HELLO[2:]
    a = annotate_frame(corrupted)
    assert a.span("MASK").value == "0: not masked"
    assert a.problem == "4 bytes after the end of the frame"  # the key is read as payload


def test_random_bytes_never_raise_and_are_always_covered() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        for layer in (Layer.WS, Layer.HTTP, Layer.EIO, Layer.SIO):
            a = annotate(layer, raw)
            assert a.gaps_and_overlaps() == [], (layer, raw)


# -- RFC 6455 1.3: the opening handshake ------------------------------------------------


def test_the_handshake_request_names_its_request_line_and_each_header() -> None:
    a = annotate_http(HANDSHAKE_REQUEST)
    assert [s.name for s in a.spans] == [
        "request line",
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Origin",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Version",
        "end of head",
    ]
    assert a.span("request line").value == "GET /chat HTTP/1.1"
    assert a.gaps_and_overlaps() == [] and a.problem is None
    assert dict(a.decoded)["expected Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in a.span("Sec-WebSocket-Key").note


def test_the_handshake_response_names_its_status_line_and_the_accept_header() -> None:
    a = annotate_http(HANDSHAKE_RESPONSE)
    assert a.span("status line").value == "HTTP/1.1 101 Switching Protocols"
    assert a.span("Sec-WebSocket-Accept").value == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert a.gaps_and_overlaps() == []


def test_a_head_without_its_blank_line_is_reported_as_truncated() -> None:
    a = annotate_http(HANDSHAKE_REQUEST[:-2])
    assert a.problem == "truncated: the head has no blank line (CRLF CRLF) at its end"
    assert a.gaps_and_overlaps() == []


def test_a_polling_body_is_cut_at_the_record_separator() -> None:
    body = b'40\x1e42["hi"]'
    raw = b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 10\r\n\r\n" + body
    a = annotate_http(raw)
    tail = [(s.name, s.value) for s in a.spans[-3:]]
    assert tail == [
        ("Engine.IO packet 1", "'40'"),
        ("record separator", "0x1e"),
        ("Engine.IO packet 2", "'42[\"hi\"]'"),
    ]


# -- Engine.IO and Socket.IO ------------------------------------------------------------


def test_an_engineio_open_packet_names_its_type_and_handshake_data() -> None:
    raw = b'0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    a = annotate(Layer.EIO, raw)
    assert (a.spans[0].name, a.spans[0].value) == ("packet type", "0 = OPEN")
    assert dict(a.decoded)["pingInterval"] == "25000"


def test_an_engineio_probe_and_an_unknown_type() -> None:
    assert annotate(Layer.EIO, b"2probe").title == "Engine.IO PING probe"
    bad = annotate(Layer.EIO, b"9x")
    assert bad.problem == "unknown Engine.IO packet type b'9'"


@pytest.mark.parametrize(
    ("kind", "namespace", "data", "ack"),
    [
        (sio_packet.EVENT, "/", ["send-message", {"roomId": "general", "text": "hi"}], None),
        (sio_packet.EVENT, "/admin", ["x", 1, "two"], 3),
        (sio_packet.ACK, "/", [{"ok": True, "seq": 7}], 12),
        (sio_packet.CONNECT, "/", {"token": "t"}, None),
        (sio_packet.CONNECT, "/trace", None, None),
        (sio_packet.DISCONNECT, "/", None, None),
    ],
)
def test_socketio_packets_from_python_socketio_are_read_back(
    kind: int, namespace: str, data: object, ack: int | None
) -> None:
    text = sio_packet.Packet(kind, data=data, namespace=namespace, id=ack).encode()
    a = annotate(Layer.SIO, text.encode())
    assert a.gaps_and_overlaps() == [] and a.problem is None, text
    decoded = dict(a.decoded)
    assert decoded["namespace"] == namespace
    assert decoded.get("ack id") == (None if ack is None else str(ack))
    assert a.span("packet type").value.startswith(str(kind))
    if kind == sio_packet.EVENT:
        assert decoded["event"] == data[0]  # type: ignore[index]


def test_a_socketio_packet_with_broken_json_is_reported() -> None:
    a = annotate(Layer.SIO, b'2["send-message",')
    assert a.problem is not None and a.problem.startswith("payload is not JSON")
    assert a.spans[-1].role is Role.ERROR and a.gaps_and_overlaps() == []


# -- every recorded unit ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in DIAGRAMS.glob("*.json")))
def test_every_unit_of_every_committed_trace_is_covered_without_a_problem(name: str) -> None:
    trace = Trace.from_json((DIAGRAMS / f"{name}.json").read_text(encoding="utf-8"))
    checked = 0
    for event in trace.events:
        if event.raw is None or event.kind == "error" or event.layer is Layer.APP:
            continue
        a = annotate(event.layer, event.raw)
        assert a.gaps_and_overlaps() == [], (event.label, a.gaps_and_overlaps())
        assert a.problem is None, (event.label, a.problem)
        checked += 1
    assert checked > 0
