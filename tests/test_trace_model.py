"""The Trace model: recording, JSON in and out, normalisation, filtering."""

from __future__ import annotations

import json

import pytest

from tutorial.protocol.layers import Layer
from tutorial.trace.model import FORMAT, VERSION, Lifeline, Trace, TraceEvent
from tutorial.trace.normalise import (
    FIXED_DATE,
    NORMALISATION_RULES,
    SAMPLE_WS_ACCEPT,
    SAMPLE_WS_KEY,
)

# RFC 6455 section 5.7: a masked "Hello" frame. Not UTF-8, so kept byte for byte.
MASKED_HELLO = bytes.fromhex("818537fa213d7f9f4d5158")


def make_trace(sid_e: str, sid_s: str, msg_id: str, port: int, ts: int, date: str) -> Trace:
    """One scenario's trace; arguments are what changes from one run to the next."""
    clock = iter([10.0, 10.5, 10.75, 11.0, 11.5, 12.0, 12.25, 13.0])
    trace = Trace(clock=lambda: next(clock))
    trace.add_lifeline("client", "Client", "client")
    trace.add_lifeline("server", f"Server 127.0.0.1:{port}", "server")
    request = (
        f"GET /socket.io/?EIO=4&transport=websocket&sid={sid_e} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n"
    ).encode()
    trace.record("client", "server", Layer.HTTP, "GET /socket.io/", raw=request, phase="http")
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\nDate: {date}\r\n\r\n"
    ).encode()
    trace.record("server", "client", Layer.HTTP, "101", raw=response, phase="http", status="ok")
    opened = f'0{{"sid":"{sid_e}","upgrades":[],"pingInterval":25000}}'
    trace.record(
        "server",
        "client",
        Layer.EIO,
        f"open {opened[1:]}",
        raw=opened.encode(),
        fields={"type": "open", "sid": sid_e},
    )
    trace.record(
        "server",
        "client",
        Layer.SIO,
        f'CONNECT {{"sid":"{sid_s}"}}',
        raw=f'40{{"sid":"{sid_s}"}}'.encode(),
        fields={"data": {"sid": sid_s}},
        status="ok",
    )
    trace.record("client", "server", Layer.WS, "text frame (masked)", raw=MASKED_HELLO)
    trace.note("server", f"add metadata id={msg_id}", fields={"id": msg_id, "ts": ts}, step=2)
    event = f'42["new-message",{{"id":"{msg_id}","ts":{ts},"user":"alice"}}]'
    trace.record(
        "server",
        "client",
        Layer.SIO,
        f"new-message for {sid_s}",
        raw=event.encode(),
        fields={"event": "new-message", "headers": [["Host", f"localhost:{port}"]]},
    )
    return trace


RUN_1 = (
    "Vs9C_w3tHNiAAAAB4xYz",
    "Kq1rT8pLm2Zx0aBcDeFg",
    "3f2a" * 8,
    41234,
    1712345678901,
    "Mon, 01 Apr 2024 10:00:00 GMT",
)
RUN_2 = (
    "Zz9Y_a1bCdEfGhIjKlMn",
    "Pp0oI9uY8tR7eW6qA5sD",
    "c0ffee00" * 4,
    52345,
    1712399999999,
    "Tue, 02 Apr 2024 11:11:11 GMT",
)


# -- recording -------------------------------------------------------------------------


def test_add_lifeline_is_idempotent_and_keeps_the_first_definition():
    trace = Trace()
    first = trace.add_lifeline("server", "Server", "server")
    again = trace.add_lifeline("server", "Other", "client")
    assert again is first
    assert trace.lifelines == (Lifeline("server", "Server", "server"),)


def test_lifeline_kind_must_be_known():
    with pytest.raises(ValueError, match="lifeline kind"):
        Lifeline("x", "X", "toaster")


def test_record_refuses_an_unknown_lifeline():
    trace = Trace()
    trace.add_lifeline("client", "Client")
    with pytest.raises(ValueError, match="unknown lifeline 'server'"):
        trace.record("client", "server", Layer.SIO, "CONNECT")


def test_record_takes_time_from_the_clock_relative_to_its_origin():
    ticks = iter([100.0, 100.25, 101.5])
    trace = Trace(clock=lambda: next(ticks))
    trace.add_lifeline("a", "A")
    assert trace.record("a", "a", "app", "one").t == 0.25
    assert trace.record("a", "a", "app", "two").t == 1.5


def test_record_accepts_an_explicit_time_and_a_layer_name():
    trace = Trace()
    trace.add_lifeline("a", "A")
    event = trace.record("a", "a", "sio", "x", t=3.5)
    assert event.t == 3.5 and event.layer is Layer.SIO


def test_note_is_a_self_step_of_kind_note_in_the_app_layer():
    trace = Trace()
    trace.add_lifeline("server", "Server", "server")
    note = trace.note("server", "validate message, add metadata", step=2)
    assert (note.source, note.target, note.kind, note.layer, note.step) == (
        "server",
        "server",
        "note",
        Layer.APP,
        2,
    )
    assert note.is_self


def test_event_fields_are_read_only():
    event = TraceEvent(0.0, "a", "b", Layer.APP, "x", fields={"k": 1})
    with pytest.raises(TypeError):
        event.fields["k"] = 2  # type: ignore[index]


def test_event_label_is_one_line():
    with pytest.raises(ValueError, match="one line"):
        TraceEvent(0.0, "a", "b", Layer.APP, "two\nlines")


def test_event_str_reads_as_a_log_line():
    event = TraceEvent(0.5, "client", "server", Layer.SIO, "CONNECT /")
    assert str(event) == " 0.500000 client → server [sio] CONNECT /"


# -- JSON ------------------------------------------------------------------------------


def test_json_round_trip_gives_an_equal_trace():
    trace = make_trace(*RUN_1)
    again = Trace.from_json(trace.to_json())
    assert again == trace
    assert again.to_json() == trace.to_json()


def test_json_carries_format_and_version_first_class():
    data = json.loads(make_trace(*RUN_1).to_json())
    assert data["format"] == FORMAT == "socketio-tutorial-trace"
    assert data["version"] == VERSION == 1
    assert sorted(data) == ["events", "format", "lifelines", "version"]
    assert data["lifelines"][0] == {"id": "client", "kind": "client", "label": "Client"}


def test_json_is_sorted_indented_and_ends_with_a_newline():
    text = make_trace(*RUN_1).to_json()
    assert text.endswith("}\n")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_raw_bytes_are_base64_with_a_text_copy_when_utf8():
    events = json.loads(make_trace(*RUN_1).to_json())["events"]
    connect = events[3]["raw"]
    assert connect["text"].startswith('40{"sid":')
    masked = events[4]["raw"]
    assert masked == {"base64": "gYU3+iE9f59NUVg="}  # no "text": not UTF-8


def test_raw_bytes_survive_the_round_trip_exactly():
    trace = make_trace(*RUN_1)
    again = Trace.from_json(trace.to_json())
    assert again.events[4].raw == MASKED_HELLO
    assert [e.raw for e in again.events] == [e.raw for e in trace.events]


def test_from_json_refuses_another_format_or_a_newer_version():
    data = json.loads(make_trace(*RUN_1).to_json())
    with pytest.raises(ValueError, match="version 2"):
        Trace.from_json(json.dumps({**data, "version": 2}))
    with pytest.raises(ValueError, match="not a trace"):
        Trace.from_json(json.dumps({**data, "format": "something-else"}))


# -- normalisation ---------------------------------------------------------------------


def test_two_runs_differing_in_sids_ids_times_ports_and_dates_normalise_identically():
    one, two = make_trace(*RUN_1), make_trace(*RUN_2)
    assert one.to_json() != two.to_json()
    assert one.normalised().to_json() == two.normalised().to_json()


def test_normalisation_numbers_sids_in_order_of_first_appearance():
    text = make_trace(*RUN_1).normalised().to_json()
    assert RUN_1[0] not in text and RUN_1[1] not in text
    assert text.index("sid-1") < text.index("sid-2")
    events = make_trace(*RUN_1).normalised().events
    assert "sid=sid-1" in events[0].raw.decode()
    assert events[2].fields["sid"] == "sid-1"
    assert events[3].label == 'CONNECT {"sid":"sid-2"}'
    assert events[3].fields == {"data": {"sid": "sid-2"}}
    assert events[6].label == "new-message for sid-2"  # a bare sid, replaced too


def test_normalisation_replaces_ids_timestamps_ports_dates_and_the_websocket_key():
    events = make_trace(*RUN_1).normalised().events
    request, response = events[0].raw.decode(), events[1].raw.decode()
    assert "Host: 127.0.0.1:PORT\r\n" in request
    assert f"Sec-WebSocket-Key: {SAMPLE_WS_KEY}\r\n" in request
    assert f"Sec-WebSocket-Accept: {SAMPLE_WS_ACCEPT}\r\n" in response
    assert f"Date: {FIXED_DATE}\r\n" in response
    assert events[5].fields == {"id": "msg-1", "ts": 0}
    assert events[5].label == "add metadata id=msg-1"
    assert events[6].raw == b'42["new-message",{"id":"msg-1","ts":0,"user":"alice"}]'
    assert events[6].fields["headers"] == [["Host", "localhost:PORT"]]
    assert make_trace(*RUN_1).normalised().lifelines[1].label == "Server 127.0.0.1:PORT"


def test_normalisation_replaces_times_by_milliseconds_of_the_index():
    events = make_trace(*RUN_1).normalised().events
    assert [e.t for e in events] == [0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006]


def test_normalisation_keeps_binary_raw_bytes_byte_for_byte():
    assert make_trace(*RUN_1).normalised().events[4].raw == MASKED_HELLO


def test_normalisation_is_idempotent():
    once = make_trace(*RUN_1).normalised()
    assert once.normalised().to_json() == once.to_json()


def test_normalisation_rules_are_a_documented_table():
    names = [rule.name for rule in NORMALISATION_RULES]
    assert len(names) == len(set(names))
    assert all(
        rule.description and rule.pattern.groupindex.get("value") for rule in NORMALISATION_RULES
    )
    assert {"sid-json", "sid-query", "ts-json", "date-header", "loopback-port"} <= set(names)


# -- views -----------------------------------------------------------------------------


def test_filter_keeps_the_chosen_layers_and_every_lifeline():
    trace = make_trace(*RUN_1)
    packets = trace.filter({Layer.EIO, "sio"})
    assert [e.layer for e in packets.events] == [Layer.EIO, Layer.SIO, Layer.SIO]
    assert packets.lifelines == trace.lifelines
    assert len(trace) == 7  # the original is untouched
