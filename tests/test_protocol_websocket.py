"""RFC 6455 frames: the RFC's own examples, split reads, hostile bytes, and wsproto."""

from __future__ import annotations

import random

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.events import Message as WsprotoMessage
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from tutorial.protocol.layers import DecodeError, Layer
from tutorial.protocol.websocket import (
    Close,
    CloseCode,
    Frame,
    FrameDecoder,
    Message,
    Opcode,
    PerMessageDeflate,
    accept_key,
    parse_extensions,
)

# RFC 6455 section 5.7, "Examples".
HELLO_UNMASKED = bytes.fromhex("81 05 48 65 6c 6c 6f")
HELLO_MASKED = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")
HELLO_FRAGMENTS = bytes.fromhex("01 03 48 65 6c") + bytes.fromhex("80 02 6c 6f")
PING_HELLO = bytes.fromhex("89 05 48 65 6c 6c 6f")
PONG_HELLO_MASKED = bytes.fromhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58")
BINARY_256 = bytes.fromhex("82 7e 01 00") + bytes(range(256))
BINARY_64K = bytes.fromhex("82 7f 00 00 00 00 00 01 00 00") + bytes(65536)
ALL_EXAMPLES = (
    HELLO_UNMASKED + HELLO_MASKED + HELLO_FRAGMENTS + PING_HELLO + PONG_HELLO_MASKED + BINARY_256
)


def frames(events: list) -> list[Frame]:
    return [e for e in events if isinstance(e, Frame)]


def messages(events: list) -> list[Message]:
    return [e for e in events if isinstance(e, Message)]


def errors(events: list) -> list[DecodeError]:
    return [e for e in events if isinstance(e, DecodeError)]


# --- 1.3 and 4.2.2: the opening handshake -----------------------------------------------


def test_accept_key_of_the_rfc_sample_nonce():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# --- 5.7: the RFC's examples, every header field -----------------------------------------


def test_single_frame_unmasked_text_message_has_every_field():
    frame, message = FrameDecoder().receive_data(HELLO_UNMASKED)
    assert frame == Frame(
        fin=True,
        rsv1=False,
        rsv2=False,
        rsv3=False,
        opcode=Opcode.TEXT,
        masked=False,
        payload_length=5,
        length_form=7,
        masking_key=None,
        payload=b"Hello",
        raw=HELLO_UNMASKED,
    )
    assert message == Message(Opcode.TEXT, "Hello", (frame,))


def test_single_frame_masked_text_message_is_unmasked():
    frame, message = FrameDecoder().receive_data(HELLO_MASKED)
    assert frame.masked and frame.masking_key == bytes.fromhex("37 fa 21 3d")
    assert (frame.fin, frame.opcode, frame.payload_length, frame.length_form) == (
        True,
        Opcode.TEXT,
        5,
        7,
    )
    assert frame.payload == b"Hello"
    assert frame.raw == HELLO_MASKED
    assert message.data == "Hello"


def test_fragmented_unmasked_text_message_is_reassembled():
    first, second, message = FrameDecoder().receive_data(HELLO_FRAGMENTS)
    assert (first.fin, first.opcode, first.payload) == (False, Opcode.TEXT, b"Hel")
    assert (second.fin, second.opcode, second.payload) == (True, Opcode.CONT, b"lo")
    assert message == Message(Opcode.TEXT, "Hello", (first, second))


def test_unmasked_ping_is_a_control_frame_with_its_body():
    [frame] = FrameDecoder().receive_data(PING_HELLO)
    assert frame.opcode is Opcode.PING and frame.opcode.is_control
    assert (frame.fin, frame.masked, frame.payload) == (True, False, b"Hello")


def test_masked_pong_is_unmasked():
    [frame] = FrameDecoder().receive_data(PONG_HELLO_MASKED)
    assert (frame.opcode, frame.masked, frame.payload) == (Opcode.PONG, True, b"Hello")


def test_256_byte_binary_message_uses_the_16_bit_length():
    frame, message = FrameDecoder().receive_data(BINARY_256)
    assert (frame.opcode, frame.payload_length, frame.length_form) == (Opcode.BINARY, 256, 16)
    assert message.data == bytes(range(256))
    assert frame.raw == BINARY_256


def test_64_kib_binary_message_uses_the_64_bit_length():
    frame, message = FrameDecoder().receive_data(BINARY_64K)
    assert (frame.payload_length, frame.length_form, frame.raw) == (65536, 64, BINARY_64K)
    assert message.data == bytes(65536)


def test_frame_label_shows_opcode_fin_mask_and_length():
    assert str(FrameDecoder().receive_data(HELLO_MASKED)[0]) == "TEXT fin=1 mask=1 len=5"


# --- split reads ---------------------------------------------------------------------


def test_frames_split_at_every_byte_offset_decode_to_the_same_events():
    whole = FrameDecoder().receive_data(ALL_EXAMPLES)
    for offset in range(len(ALL_EXAMPLES) + 1):
        decoder = FrameDecoder()
        events = decoder.receive_data(ALL_EXAMPLES[:offset])
        events += decoder.receive_data(ALL_EXAMPLES[offset:])
        assert events == whole, offset


def test_frames_fed_one_byte_at_a_time_decode_to_the_same_events():
    decoder = FrameDecoder()
    events = [
        e for i in range(len(ALL_EXAMPLES)) for e in decoder.receive_data(ALL_EXAMPLES[i : i + 1])
    ]
    assert events == FrameDecoder().receive_data(ALL_EXAMPLES)


def test_control_frame_between_fragments_does_not_break_the_message():
    data = bytes.fromhex("01 03 48 65 6c") + PING_HELLO + bytes.fromhex("80 02 6c 6f")
    events = FrameDecoder().receive_data(data)
    assert [str(e) for e in events] == [
        "TEXT fin=0 mask=0 len=3",
        "PING fin=1 mask=0 len=5",
        "CONT fin=1 mask=0 len=2",
        "TEXT 'Hello'",
    ]


# --- 5.5.1: close frames --------------------------------------------------------------


def test_close_frame_carries_its_status_code_and_reason():
    frame, close = FrameDecoder().receive_data(b"\x88\x05\x03\xe8bye")
    assert close == Close(CloseCode.NORMAL_CLOSURE, "bye", frame)
    assert str(close) == "CLOSE 1000 NORMAL_CLOSURE 'bye'"


def test_empty_close_frame_means_no_status_received():
    _, close = FrameDecoder().receive_data(b"\x88\x00")
    assert close.code is CloseCode.NO_STATUS_RCVD


def test_application_close_code_is_kept_as_a_number():
    _, close = FrameDecoder().receive_data(b"\x88\x02\x0f\xa0")
    assert close.code == 4000 and not isinstance(close.code, CloseCode)


@pytest.mark.parametrize("body", [b"\x03", b"\x03\xed", b"\x03\xe7", b"\x07\xd0", b"\x03\xe8\xff"])
def test_bad_close_body_is_a_decode_error(body):
    # one byte; 1005 (must not be sent); 999; 2000 (reserved); reason not UTF-8
    events = FrameDecoder().receive_data(bytes([0x88, len(body)]) + body)
    assert isinstance(events[0], Frame) and isinstance(events[1], DecodeError)


# --- hostile bytes ---------------------------------------------------------------------


def test_reserved_opcode_is_a_decode_error_and_decoding_goes_on():
    events = FrameDecoder().receive_data(b"\x83\x01x" + HELLO_UNMASKED)
    assert events[0] == DecodeError(Layer.WS, "reserved opcode 0x3", b"\x83\x01x")
    assert messages(events)[0].data == "Hello"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1\x01x", "RSV1 set but permessage-deflate was not negotiated"),
        (b"\xa1\x01x", "RSV2/RSV3 set but no extension defines them"),
        (b"\x89\x7e\x00\x7e" + bytes(126), "control frame payload over 125 bytes"),
        (b"\x09\x00", "fragmented control frame"),
        (b"\x81\x7e\x00\x05Hello", "length 5 not in its minimal encoding"),
    ],
)
def test_frame_that_breaks_a_rule_is_reported_after_the_frame(data, reason):
    events = FrameDecoder().receive_data(data + HELLO_UNMASKED)
    assert isinstance(events[0], Frame) and events[0].raw == data
    assert events[1] == DecodeError(Layer.WS, reason, data)
    assert messages(events)[0].data == "Hello"


def test_unmasked_frame_from_a_client_is_a_decode_error():
    events = FrameDecoder(client_to_server=True).receive_data(HELLO_UNMASKED)
    assert errors(events)[0].reason == "client frame is not masked"


def test_masked_frame_from_a_server_is_a_decode_error():
    events = FrameDecoder(client_to_server=False).receive_data(HELLO_MASKED)
    assert errors(events)[0].reason == "server frame is masked"


def test_continuation_frame_with_no_message_is_a_decode_error():
    events = FrameDecoder().receive_data(b"\x80\x02lo")
    assert errors(events)[0].reason == "continuation frame with no message"


def test_new_message_inside_a_fragmented_one_is_a_decode_error():
    events = FrameDecoder().receive_data(b"\x01\x03Hel" + HELLO_UNMASKED)
    assert errors(events)[0].reason == "new message before the last ended"
    assert messages(events)[0].data == "Hello"


def test_text_message_that_is_not_utf8_is_a_decode_error():
    events = FrameDecoder().receive_data(b"\x81\x02\xc3\x28")
    assert errors(events)[0].reason == "text message is not UTF-8"


def test_64_bit_length_with_its_top_bit_set_stops_the_direction():
    decoder = FrameDecoder()
    events = decoder.receive_data(b"\x82\xff" + b"\x80" + bytes(7) + HELLO_UNMASKED)
    assert len(events) == 1 and isinstance(events[0], DecodeError)
    assert decoder.stopped
    assert decoder.receive_data(HELLO_UNMASKED) == [
        DecodeError(Layer.WS, "not decoded: framing lost earlier", HELLO_UNMASKED)
    ]


def test_frame_over_the_size_limit_stops_the_direction():
    decoder = FrameDecoder(max_size=100)
    [error] = decoder.receive_data(BINARY_256)
    assert error.reason == "frame of 256 bytes is over the 100-byte limit"
    assert error.raw == BINARY_256


def test_end_of_stream_inside_a_frame_is_a_decode_error():
    decoder = FrameDecoder()
    assert decoder.receive_data(HELLO_MASKED[:4]) == []
    assert decoder.eof() == [
        DecodeError(Layer.WS, "connection closed in the middle of a frame", HELLO_MASKED[:4])
    ]


def test_random_bytes_never_raise():
    rng = random.Random(6455)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(1, 200))
        decoder = FrameDecoder(client_to_server=rng.choice([True, False, None]))
        cut = rng.randrange(len(data) + 1)
        events = decoder.receive_data(data[:cut]) + decoder.receive_data(data[cut:])
        events += decoder.eof()
        assert all(isinstance(e, Frame | Message | Close | DecodeError) for e in events)


def test_garbage_compressed_message_is_a_decode_error():
    decoder = FrameDecoder(deflate=PerMessageDeflate())
    events = decoder.receive_data(b"\xc1\x04\xff\xff\xff\xff")
    assert errors(events)[0].reason.startswith("cannot inflate message")


# --- RFC 7692: negotiating permessage-deflate -------------------------------------------


def test_extensions_header_without_deflate_means_no_compression():
    assert parse_extensions(None) is None
    assert parse_extensions("x-webkit-deflate-frame") is None


def test_extensions_header_gives_the_deflate_parameters():
    header = "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"
    assert parse_extensions(header) == PerMessageDeflate(
        server_no_context_takeover=False,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=15,
    )


def test_no_context_takeover_applies_to_the_direction_of_its_sender():
    deflate = PerMessageDeflate(client_no_context_takeover=True)
    assert deflate.no_context_takeover(client_to_server=True)
    assert not deflate.no_context_takeover(client_to_server=False)


# --- an independent implementation: wsproto --------------------------------------------


def handshake(
    compress: bool = True, **options: bool
) -> tuple[WSConnection, WSConnection, PerMessageDeflate | None]:
    """A wsproto client and server after their opening handshake, and what they agreed."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    offer = [WsprotoDeflate(**options)] if compress else []
    server.receive_data(client.send(Request(host="localhost", target="/", extensions=offer)))
    assert isinstance(next(server.events()), Request)
    accept = [WsprotoDeflate(**options)] if compress else []
    response = server.send(AcceptConnection(extensions=accept))
    client.receive_data(response)
    assert isinstance(next(client.events()), AcceptConnection)
    header = next(
        (
            line.split(b":", 1)[1].decode()
            for line in response.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-extensions:")
        ),
        None,
    )
    return client, server, parse_extensions(header)


SENT: list[WsprotoMessage] = [
    TextMessage("40"),
    TextMessage('42["send-message",{"text":"hi"}]'),
    TextMessage('42["send-message",{"text":"hi"}]'),  # the same again: takeover shrinks it
    BytesMessage(b"\x00\x01\x02" * 100),
    TextMessage("é" * 70000),  # a 64-bit length
    TextMessage("frag", message_finished=False),
    TextMessage("mented"),
]


def as_received(sent: list[WsprotoMessage]) -> list[str | bytes]:
    out: list[str | bytes] = []
    pending: str | bytes | None = None
    for message in sent:
        pending = message.data if pending is None else pending + message.data
        if message.message_finished:
            out.append(pending)
            pending = None
    return out


@pytest.mark.parametrize("client_to_server", [True, False], ids=["client", "server"])
def test_wsproto_messages_without_compression_decode_to_the_same_data(client_to_server):
    client, server, deflate = handshake(compress=False)
    assert deflate is None
    wire = b"".join((client if client_to_server else server).send(m) for m in SENT)
    decoder = FrameDecoder(client_to_server=client_to_server, deflate=None)
    events = decoder.receive_data(wire)
    assert not errors(events)
    assert [m.data for m in messages(events)] == as_received(SENT)


@pytest.mark.parametrize("client_to_server", [True, False], ids=["client", "server"])
@pytest.mark.parametrize(
    "options",
    [{}, {"client_no_context_takeover": True, "server_no_context_takeover": True}],
    ids=["takeover", "no-takeover"],
)
def test_wsproto_compressed_messages_decode_to_the_same_data(client_to_server, options):
    client, server, deflate = handshake(**options)
    assert deflate is not None
    wire = b"".join((client if client_to_server else server).send(m) for m in SENT)
    events = FrameDecoder(client_to_server=client_to_server, deflate=deflate).receive_data(wire)
    assert not errors(events)
    assert [m.data for m in messages(events)] == as_received(SENT)
    assert all(m.compressed for m in messages(events))
    assert frames(events)[0].rsv1


def test_wsproto_control_frames_decode_as_ping_and_close():
    client, _, _ = handshake(compress=False)
    wire = client.send(Ping(b"hb")) + client.send(CloseConnection(1001, "bye"))
    events = FrameDecoder(client_to_server=True).receive_data(wire)
    assert frames(events)[0].opcode is Opcode.PING and frames(events)[0].payload == b"hb"
    assert events[-1].code is CloseCode.GOING_AWAY and events[-1].reason == "bye"
