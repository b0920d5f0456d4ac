"""One connection through every layer: a hand-written recorded conversation, polling,
and a permessage-deflate conversation produced by wsproto."""

from __future__ import annotations

import random

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from tutorial.protocol.engineio import EioPacket, EioPacketType
from tutorial.protocol.layers import DecodeError, Direction, Layer
from tutorial.protocol.socketio import SioPacket, SioPacketType
from tutorial.protocol.stream import ConnectionDecoder, WireEvent
from tutorial.protocol.websocket import Close, CloseCode, Frame, Opcode, apply_mask

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
HTTP, WS, EIO, SIO = Layer.HTTP, Layer.WS, Layer.EIO, Layer.SIO

OPEN = b'{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
UPGRADE_REQUEST = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)
KEY = bytes.fromhex("37 fa 21 3d")  # RFC 6455 5.7's masking key


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + KEY + apply_mask(payload, KEY)


# The recorded conversation: (who sent it, the bytes).
CONVERSATION = [
    (C2S, UPGRADE_REQUEST),
    (S2C, SWITCHING),
    (S2C, server_frame(b"0" + OPEN)),
    (C2S, client_frame(b"40")),
    (S2C, server_frame(b'40{"sid":"xyz"}')),
    (C2S, client_frame(b'42["send-message",{"text":"hi"}]')),
]


def play(conversation: list[tuple[Direction, bytes]]) -> list[WireEvent]:
    decoder = ConnectionDecoder()
    events: list[WireEvent] = []
    for direction, data in conversation:
        if direction is C2S:
            events += decoder.client_data(data)
        else:
            events += decoder.server_data(data)
    return events


def test_recorded_conversation_decodes_outer_layer_first():
    events = play(CONVERSATION)
    assert [(e.direction, e.layer) for e in events] == [
        (C2S, HTTP),
        (S2C, HTTP),
        (S2C, WS),
        (S2C, EIO),
        (C2S, WS),
        (C2S, EIO),
        (C2S, SIO),
        (S2C, WS),
        (S2C, EIO),
        (S2C, SIO),
        (C2S, WS),
        (C2S, EIO),
        (C2S, SIO),
    ]


def test_recorded_conversation_labels_read_as_a_diagram():
    assert [str(e) for e in play(CONVERSATION)] == [
        "GET /socket.io/?EIO=4&transport=websocket",
        "101 Switching Protocols",
        "TEXT fin=1 mask=0 len=90",
        "eio OPEN sid=abc",
        "TEXT fin=1 mask=1 len=2",
        "eio MESSAGE 0",
        "sio CONNECT",
        "TEXT fin=1 mask=0 len=15",
        'eio MESSAGE 0{"sid":"xyz"}',
        'sio CONNECT {"sid":"xyz"}',
        "TEXT fin=1 mask=1 len=32",
        'eio MESSAGE 2["send-message",{"text":"hi"}]',
        'sio EVENT ["send-message",{…}]',
    ]


def test_raw_bytes_are_the_unit_at_each_layer():
    events = play(CONVERSATION)
    assert events[0].raw == UPGRADE_REQUEST
    assert events[1].raw == SWITCHING
    assert events[10].raw == client_frame(b'42["send-message",{"text":"hi"}]')
    assert events[11].raw == b'42["send-message",{"text":"hi"}]'
    assert events[12].raw == b'2["send-message",{"text":"hi"}]'


def test_decoded_event_carries_its_name_and_arguments():
    sio = play(CONVERSATION)[-1].event
    assert isinstance(sio, SioPacket)
    assert (sio.event_name, sio.args) == ("send-message", [{"text": "hi"}])


def test_frames_in_the_same_read_as_the_101_are_decoded():
    decoder = ConnectionDecoder()
    decoder.client_data(UPGRADE_REQUEST)
    events = decoder.server_data(SWITCHING + server_frame(b"0" + OPEN) + server_frame(b"2"))
    assert [str(e) for e in events][1:] == [
        "TEXT fin=1 mask=0 len=90",
        "eio OPEN sid=abc",
        "TEXT fin=1 mask=0 len=1",
        "eio PING",
    ]
    assert decoder.is_websocket


def test_conversation_fed_one_byte_at_a_time_decodes_the_same():
    bytewise = [(d, data[i : i + 1]) for d, data in CONVERSATION for i in range(len(data))]
    assert play(bytewise) == play(CONVERSATION)


def test_binary_attachment_completes_its_socketio_packet():
    header = b'451-["upload",{"_placeholder":true,"num":0}]'
    events = play(
        [*CONVERSATION[:2], (C2S, client_frame(header)), (C2S, client_frame(b"\x01\x02", 0x2))]
    )
    sio = [e for e in events if e.layer is SIO]
    assert len(sio) == 1 and sio[0].raw == header[1:]
    assert sio[0].event.type is SioPacketType.BINARY_EVENT
    assert sio[0].event.args == [b"\x01\x02"]


def test_close_frame_is_a_websocket_event():
    close = client_frame(b"\x03\xe8", 0x8)
    events = play([*CONVERSATION[:2], (C2S, close)])
    assert isinstance(events[-1].event, Close) and events[-1].raw == close
    assert events[-1].event.code is CloseCode.NORMAL_CLOSURE


def test_bad_packets_inside_good_frames_are_decode_errors_at_their_layer():
    bad = [(C2S, client_frame(b"x")), (C2S, client_frame(b"42[]")), (C2S, client_frame(b"42{"))]
    errors = [e for e in play(CONVERSATION[:2] + bad) if isinstance(e.event, DecodeError)]
    assert [e.layer for e in errors] == [EIO, SIO, SIO]


def test_random_bytes_after_the_switch_never_raise():
    rng = random.Random(101)
    for _ in range(200):
        decoder = ConnectionDecoder()
        decoder.client_data(UPGRADE_REQUEST)
        decoder.server_data(SWITCHING)
        events = decoder.client_data(rng.randbytes(rng.randrange(1, 100)))
        events += decoder.server_data(rng.randbytes(rng.randrange(1, 100)))
        events += decoder.client_eof() + decoder.server_eof()
        assert all(isinstance(e, WireEvent) for e in events)


def test_garbage_instead_of_http_is_a_decode_error_in_its_direction():
    [event] = ConnectionDecoder().client_data(b"\x16\x03\x01\x02\x00 TLS hello\r\n\r\n")
    assert (event.direction, event.layer) == (C2S, HTTP)
    assert isinstance(event.event, DecodeError)


# --- HTTP long-polling --------------------------------------------------------------


def get(sid: str = "") -> bytes:
    query = f"EIO=4&transport=polling{'&sid=' + sid if sid else ''}"
    return f"GET /socket.io/?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def post(body: bytes, sid: str) -> bytes:
    return (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        f"Host: localhost\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def ok(body: bytes) -> bytes:
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


POLLING = [
    (C2S, get()),
    (S2C, ok(b"0" + OPEN)),
    (C2S, post(b"40", "abc")),
    (S2C, ok(b"ok")),
    (C2S, get("abc")),
    (S2C, ok(b'40{"sid":"xyz"}\x1e42["new-message",{"text":"hi"}]')),
]


def test_polling_exchange_decodes_bodies_as_engineio_payloads():
    assert [(e.direction, e.layer, str(e)) for e in play(POLLING)] == [
        (C2S, HTTP, "GET /socket.io/?EIO=4&transport=polling"),
        (S2C, HTTP, "200 OK"),
        (S2C, EIO, "eio OPEN sid=abc"),
        (C2S, HTTP, "POST /socket.io/?EIO=4&transport=polling&sid=abc"),
        (C2S, EIO, "eio MESSAGE 0"),
        (C2S, SIO, "sio CONNECT"),
        (S2C, HTTP, "200 OK"),
        (C2S, HTTP, "GET /socket.io/?EIO=4&transport=polling&sid=abc"),
        (S2C, HTTP, "200 OK"),
        (S2C, EIO, 'eio MESSAGE 0{"sid":"xyz"}'),
        (S2C, SIO, 'sio CONNECT {"sid":"xyz"}'),
        (S2C, EIO, 'eio MESSAGE 2["new-message",{"text":"hi"}]'),
        (S2C, SIO, 'sio EVENT ["new-message",{…}]'),
    ]


def test_polling_packets_keep_their_own_raw_text():
    eio = [e.raw for e in play(POLLING) if e.layer is EIO]
    assert eio[-2:] == [b'40{"sid":"xyz"}', b'42["new-message",{"text":"hi"}]']


def test_polling_error_response_is_not_read_as_a_payload():
    refused = b'HTTP/1.1 400 Bad Request\r\nContent-Length: 18\r\n\r\n{"message":"nope"}'
    events = play([(C2S, get("gone")), (S2C, refused)])
    assert [e.layer for e in events] == [HTTP, HTTP]


def test_binary_polling_packet_decodes_from_base64():
    events = play([(C2S, get("abc")), (S2C, ok(b"bAQI="))])
    packet = next(e.event for e in events if e.layer is EIO)
    assert isinstance(packet, EioPacket) and packet.data == b"\x01\x02"


# --- an independent implementation: wsproto, with permessage-deflate ----------------------


def test_wsproto_conversation_with_permessage_deflate_decodes_through_every_layer():
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    request = client.send(
        Request(
            host="localhost",
            target="/socket.io/?EIO=4&transport=websocket",
            extensions=[PerMessageDeflate()],
        )
    )
    server.receive_data(request)
    next(server.events())
    response = server.send(AcceptConnection(extensions=[PerMessageDeflate()]))
    client.receive_data(response)
    next(client.events())
    conversation = [
        (C2S, request),
        (S2C, response),
        (S2C, server.send(TextMessage((b"0" + OPEN).decode()))),
        (C2S, client.send(TextMessage("40"))),
        (S2C, server.send(TextMessage('40{"sid":"xyz"}'))),
        (C2S, client.send(TextMessage('42["send-message",{"text":"hi"}]'))),
        (C2S, client.send(TextMessage('42["send-message",{"text":"hi"}]'))),
        (
            C2S,
            client.send(
                TextMessage('452-["up",{"_placeholder":true,"num":0},', message_finished=False)
            ),
        ),
        (C2S, client.send(TextMessage('{"_placeholder":true,"num":1}]'))),
        (C2S, client.send(BytesMessage(b"\x00" * 300))),
        (C2S, client.send(BytesMessage(b"\x01"))),
        (S2C, server.send(CloseConnection(1000))),
    ]
    events = play(conversation)
    assert not [e for e in events if isinstance(e.event, DecodeError)]
    frames = [e.event for e in events if isinstance(e.event, Frame)]
    # RFC 7692 6.1: RSV1 marks the first frame of each compressed message
    assert all(f.rsv1 for f in frames if f.opcode in (Opcode.TEXT, Opcode.BINARY))
    sio = [e.event for e in events if e.layer is SIO]
    assert [(p.type.name, p.event_name) for p in sio] == [
        ("CONNECT", None),
        ("CONNECT", None),
        ("EVENT", "send-message"),
        ("EVENT", "send-message"),
        ("BINARY_EVENT", "up"),
    ]
    assert sio[-1].args == [b"\x00" * 300, b"\x01"]
    assert isinstance(events[-1].event, Close)
    assert events[3].event.open_payload.sid == "abc"
    assert events[3].event.type is EioPacketType.OPEN
