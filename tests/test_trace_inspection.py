"""A trace, step by step: links between layers found from the bytes, and the sentence
each step gets from the story marks and the event catalog."""

from __future__ import annotations

import zlib
from pathlib import Path

from tutorial.protocol import catalog
from tutorial.protocol.layers import Layer
from tutorial.protocol.websocket import SAMPLE_MASKING_KEY, decode_one_frame
from tutorial.trace.inspection import family, inspect_events, inspect_trace
from tutorial.trace.model import Trace

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def committed(name: str) -> Trace:
    return Trace.from_json((DIAGRAMS / f"{name}.json").read_text(encoding="utf-8"))


def frame(
    payload: bytes, *, masked: bool, opcode: int = 0x1, fin: bool = True, rsv1: bool = False
) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    key = SAMPLE_MASKING_KEY if masked else None
    header = bytes([first, (0x80 if masked else 0) | n])
    if key is None:
        return header + payload
    from tutorial.protocol.websocket import apply_mask

    return header + key + apply_mask(payload, key)


def wire(trace: Trace, source: str, target: str, packet: bytes, *, masked: bool) -> None:
    """Record one WebSocket frame and the Engine.IO + Socket.IO packets it carries."""
    raw = frame(packet, masked=masked)
    parsed = decode_one_frame(raw)
    assert parsed is not None
    trace.record(source, target, Layer.WS, str(parsed), raw=raw, fields={"opcode": "TEXT"})
    kind = "MESSAGE" if packet[:1] == b"4" else "PING"
    trace.record(source, target, Layer.EIO, "eio", raw=packet, fields={"type": kind})
    if kind == "MESSAGE":
        trace.record(source, target, Layer.SIO, "sio", raw=packet[1:], fields={"type": "EVENT"})


def two_party() -> Trace:
    trace = Trace()
    trace.add_lifeline("alice", "alice", "client")
    trace.add_lifeline("server", "Server", "server")
    return trace


# -- links ------------------------------------------------------------------------------


def test_each_frame_of_the_handshake_carries_its_packets() -> None:
    steps = inspect_trace(committed("handshake"))
    layers = [s.layer.value for s in steps]
    opening = ["tcp", "http", "http", "ws", "eio", "ws", "eio", "sio", "ws", "eio", "sio"]
    closing = ["ws", "ws", "tcp", "tcp"]  # the closing handshake: two close frames, two FINs
    assert layers == opening + closing
    assert [s.carries for s in steps[-4:-2]] == [(), ()]  # a close frame carries no packet
    assert steps[3].carries == (4,) and steps[4].carried_by == (3,)
    assert steps[5].carries == (6,) and steps[6].carries == (7,)
    assert family(steps, 7) == [5, 6, 7]
    assert family(steps, 5) == [5, 6, 7]
    assert family(steps, 1) == [1]


def test_every_packet_of_every_committed_trace_has_its_carrier() -> None:
    for path in sorted(DIAGRAMS.glob("*.json")):
        steps = inspect_trace(Trace.from_json(path.read_text(encoding="utf-8")))
        loose = [
            s.index
            for s in steps
            if s.layer in (Layer.EIO, Layer.SIO) and s.event.kind != "error" and not s.carried_by
        ]
        assert loose == [], path.name


def test_a_frame_whose_payload_was_corrupted_carries_nothing() -> None:
    trace = two_party()
    wire(trace, "alice", "server", b'42["send-message",{"text":"hi"}]', masked=True)
    events = list(trace.events)
    bad = bytearray(events[0].raw or b"")
    bad[-2] ^= 0x01  # one bit of the payload flipped on the way
    corrupted = Trace(
        trace.lifelines,
        [events[0].__class__(**{**events[0].__dict__, "raw": bytes(bad)}), *events[1:]],
    )
    steps = inspect_trace(corrupted)
    assert steps[0].carries == ()
    assert steps[1].carried_by == ()
    assert steps[2].carried_by == (1,)  # the packet inside still knows its Engine.IO message


def test_a_dropped_frame_does_not_lend_its_packet_to_the_next_frame() -> None:
    trace = two_party()
    wire(trace, "alice", "server", b'42["a"]', masked=True)
    wire(trace, "alice", "server", b'42["b"]', masked=True)
    events = list(trace.events)
    steps = inspect_trace(Trace(trace.lifelines, events[1:]))  # the first frame is lost
    assert steps[0].carried_by == ()  # 42["a"] has no frame
    assert steps[2].carries == (3,)  # the frame of 42["b"] carries 42["b"], not 42["a"]
    assert steps[3].carries == (4,)


def test_the_same_bytes_in_the_other_direction_are_not_a_carrier() -> None:
    trace = two_party()
    raw = frame(b"2", masked=False)
    trace.record("server", "alice", Layer.WS, "ping frame", raw=raw)
    trace.record("alice", "server", Layer.EIO, "eio PING", raw=b"2", fields={"type": "PING"})
    steps = inspect_trace(trace)
    assert steps[1].carried_by == ()


def test_a_fragmented_message_is_carried_by_all_its_frames() -> None:
    trace = two_party()
    packet = b'42["send-message",{"text":"fragmented"}]'
    head, tail = packet[:10], packet[10:]
    trace.record("alice", "server", Layer.WS, "f1", raw=frame(head, masked=True, fin=False))
    trace.record("alice", "server", Layer.WS, "f2", raw=frame(tail, masked=True, opcode=0x0))
    trace.record("alice", "server", Layer.EIO, "eio", raw=packet, fields={"type": "MESSAGE"})
    steps = inspect_trace(trace)
    assert steps[2].carried_by == (0, 1)
    assert family(steps, 0) == [0, 1, 2]


def test_compressed_messages_are_inflated_with_the_window_kept_across_messages() -> None:
    trace = two_party()
    deflate = zlib.compressobj(wbits=-15)
    packets = [
        b'42["new-message",{"text":"hello hello"}]',
        b'42["new-message",{"text":"hello hello"}]',
    ]
    for packet in packets:
        body = deflate.compress(packet) + deflate.flush(zlib.Z_SYNC_FLUSH)
        raw = frame(body[:-4], masked=False, rsv1=True)
        trace.record("server", "alice", Layer.WS, "deflated", raw=raw, fields={"rsv1": True})
        trace.record("server", "alice", Layer.EIO, "eio", raw=packet, fields={"type": "MESSAGE"})
    steps = inspect_trace(trace)
    assert steps[0].carries == (1,) and steps[2].carries == (3,)
    # The second message is mostly a back-reference into the first: alone it cannot inflate.
    second = steps[2].annotated
    assert second is not None
    assert dict(second.decoded)["inflated"].startswith('\'42["new-message"')


def test_a_polling_post_carries_each_packet_of_its_body() -> None:
    trace = two_party()
    body = b'40\x1e42["hi"]'
    raw = b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 10\r\n\r\n" + body
    fields = {"method": "POST", "target": "/socket.io/?EIO=4&transport=polling", "headers": []}
    trace.record("alice", "server", Layer.HTTP, "POST", raw=raw, fields=fields)
    trace.record("alice", "server", Layer.EIO, "40", raw=b"40", fields={"type": "MESSAGE"})
    trace.record("alice", "server", Layer.SIO, "0", raw=b"0", fields={"type": "CONNECT"})
    trace.record("alice", "server", Layer.EIO, "42", raw=b'42["hi"]', fields={"type": "MESSAGE"})
    trace.record("alice", "server", Layer.SIO, "2", raw=b'2["hi"]', fields={"type": "EVENT"})
    steps = inspect_trace(trace)
    assert steps[0].carries == (1, 3)
    assert steps[2].carried_by == (1,) and steps[4].carried_by == (3,)
    assert steps[0].annotated is not None
    assert "Engine.IO packet 2" in [s.name for s in steps[0].annotated.spans]
    # Asked for the first packet only, inspect_events gives the whole body's family:
    # the POST carries both packets, so both (and what they carry) come along.
    some = inspect_events(trace, [2])
    assert list(some) == [0, 1, 2, 3, 4]
    assert all(some[i] == steps[i] for i in some)


def test_inspecting_some_events_gives_the_same_steps_as_inspecting_all() -> None:
    for name in ("handshake", "event-flow", "state-machine"):
        trace = committed(name)
        steps = inspect_trace(trace)
        asked = [i for i, s in enumerate(steps) if s.layer is Layer.SIO][-3:]
        some = inspect_events(trace, asked)
        assert set(asked) <= set(some) and len(some) < len(steps), name
        for i, step in some.items():
            assert step == steps[i], (name, i)
            assert set(family(steps, i)) <= set(some), (name, i)
        assert all(Layer.WS in {steps[j].layer for j in family(steps, i)} for i in asked)


# -- sentences ------------------------------------------------------------------------


def test_the_broadcast_story_is_told_in_the_seeds_steps() -> None:
    steps = inspect_trace(committed("event-flow"))
    by_step = {s.event.step: s.sentence for s in steps if s.event.step is not None}
    assert by_step[3].startswith("Step 3: broadcast to room — Server, on its own")
    assert by_step[1].startswith('Step 1: send-message "Hello everyone!" — alice → Server')
    delivery = catalog.SERVER_EVENTS["new-message"].description.rstrip(".")
    assert by_step[4].startswith("Step 4: new-message (echo to sender) — Server → alice")
    assert delivery in by_step[4]
    sending = catalog.CLIENT_EVENTS["send-message"].description.rstrip(".")
    assert sending in by_step[1]


def test_the_handshake_sentences_say_what_each_unit_does() -> None:
    steps = inspect_trace(committed("handshake"))
    assert "switch this connection to WebSocket" in steps[1].sentence
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in steps[1].sentence
    assert "switch protocols" in steps[2].sentence
    assert "masked, as every client frame must be" in steps[5].sentence
    assert "the client asks to connect to namespace /" in steps[7].sentence
    assert "the server accepts the connection" in steps[10].sentence


def test_an_ack_names_the_event_it_answers() -> None:
    steps = inspect_trace(committed("event-flow"))
    acks = [s for s in steps if s.layer is Layer.SIO and s.event.fields.get("type") == "ACK"]
    assert acks and all(
        "the 'join-room' event" in a.sentence or "the 'send-message' event" in a.sentence
        for a in acks
    )
    assert any("the 'send-message' event with ack id" in a.sentence for a in acks)


def test_redaction_hides_a_password_in_the_bytes_and_the_text_but_keeps_every_field() -> None:
    from tutorial.render.stepper import bytes_json, secret_bytes
    from tutorial.trace.inspection import inspect_trace as steps_of

    trace = two_party()
    wire(trace, "alice", "server", b'40{"username":"alice","password":"s3cret"}', masked=True)
    frame_step, eio_step, sio_step = steps_of(trace)
    for step in (frame_step, eio_step, sio_step):
        assert step.annotated is not None
        plain = json_text(bytes_json(step.annotated))
        hidden = json_text(bytes_json(step.annotated, redact=True))
        assert "s3cret" in plain or step is frame_step
        assert "s3cret" not in hidden
        assert len(secret_bytes(step.annotated)) == len("s3cret")
        assert [s["name"] for s in bytes_json(step.annotated, redact=True)["spans"]] == [
            s.name for s in step.annotated.spans
        ]
    # The masked frame's hex hides the same six bytes, at the same place.
    spans = bytes_json(frame_step.annotated, redact=True)["spans"]  # type: ignore[arg-type]
    assert next(s for s in spans if s["name"] == "payload")["hex"].count("••") == 6


def json_text(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def test_a_reconnection_is_told_as_it_happened() -> None:
    trace = two_party()
    close = frame(b"\x03\xe8", masked=True, opcode=0x8)
    trace.record(
        "alice",
        "server",
        Layer.WS,
        "CLOSE fin=1 mask=1 len=2",
        raw=close,
        fields={"opcode": "CLOSE", "masked": True},
    )
    trace.record("alice", "server", Layer.TCP, "TCP close (client FIN)")
    trace.record("server", "alice", Layer.TCP, "TCP refused: Connect call failed", kind="error")
    trace.record("alice", "server", Layer.TCP, "TCP connect")
    said = [s.sentence for s in inspect_trace(trace)]
    assert "close frame, status 1000 NORMAL_CLOSURE: the connection ends" in said[0]
    assert "the client closes its half of the TCP connection (FIN)" in said[1]
    assert "refused: nothing listens on that port" in said[2] and "decoder" not in said[2]
    assert "a new TCP connection opens" in said[3]
