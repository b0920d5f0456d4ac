"""HTTP/1.1 through h11: requests, responses, keep-alive, and the switch to WebSocket."""

from __future__ import annotations

import random

from tutorial.protocol.http import (
    HttpConnectionDecoder,
    HttpRequest,
    HttpResponse,
    RequestDecoder,
)
from tutorial.protocol.layers import DecodeError, Direction, Layer

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
POLL = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n\r\n"
POST = (
    b"POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\n"
    b"Host: localhost\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 2\r\n\r\n40"
)
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n40{\r\n2\r\n}!\r\n0\r\n\r\n"
SERVER_FRAME = b"\x81\x02hi"
CLIENT_FRAME = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")


def test_request_line_headers_and_raw_bytes_are_kept():
    [request] = HttpConnectionDecoder().client_data(UPGRADE_REQUEST)
    assert request.method == "GET"
    assert request.target == "/socket.io/?EIO=4&transport=websocket"
    assert request.headers[0] == ("Host", "localhost:8000")
    assert request.raw == UPGRADE_REQUEST
    assert str(request) == "GET /socket.io/?EIO=4&transport=websocket"


def test_header_lookup_ignores_case():
    [request] = HttpConnectionDecoder().client_data(UPGRADE_REQUEST)
    assert request.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert request.header("SEC-WEBSOCKET-VERSION") == "13"
    assert request.header("cookie") is None


def test_query_of_the_target_is_parsed():
    [request] = HttpConnectionDecoder().client_data(POLL)
    assert request.query == {"EIO": "4", "transport": "polling"}


def test_request_body_is_collected_by_content_length():
    [request] = HttpConnectionDecoder().client_data(POST)
    assert request.body == b"40" and request.raw == POST


def test_response_waits_for_the_request_it_answers():
    http = HttpConnectionDecoder()
    assert http.server_data(OK) == []
    request, response = http.client_data(POLL)
    assert isinstance(request, HttpRequest) and isinstance(response, HttpResponse)


def test_chunked_response_body_is_collected_and_raw_keeps_the_chunks():
    http = HttpConnectionDecoder()
    http.client_data(POLL)
    [response] = http.server_data(CHUNKED)
    assert (response.status, response.reason, response.body) == (200, "OK", b"40{}!")
    assert response.raw == CHUNKED
    assert str(response) == "200 OK"


def test_keep_alive_connection_carries_several_cycles():
    http = HttpConnectionDecoder()
    events = []
    for request in (POLL, POST, POLL):
        events += http.client_data(request)
        events += http.server_data(OK)
    assert [str(e) for e in events] == [
        "GET /socket.io/?EIO=4&transport=polling",
        "200 OK",
        "POST /socket.io/?EIO=4&transport=polling&sid=abc",
        "200 OK",
        "GET /socket.io/?EIO=4&transport=polling",
        "200 OK",
    ]


def test_pipelined_request_is_read_once_the_previous_response_is_seen():
    http = HttpConnectionDecoder()
    assert [str(e) for e in http.client_data(POLL + POST)] == [
        "GET /socket.io/?EIO=4&transport=polling"
    ]
    response, request = http.server_data(OK)
    assert (response.status, request.body) == (200, b"40")


def test_events_come_with_their_direction():
    http = HttpConnectionDecoder()
    http.client_data(POLL + POST)
    pairs = http.receive(Direction.SERVER_TO_CLIENT, OK)
    assert [d for d, _ in pairs] == [Direction.SERVER_TO_CLIENT, Direction.CLIENT_TO_SERVER]


def test_response_split_byte_by_byte_decodes_the_same():
    http = HttpConnectionDecoder()
    http.client_data(POLL)
    events = [e for i in range(len(CHUNKED)) for e in http.server_data(CHUNKED[i : i + 1])]
    assert [e.raw for e in events] == [CHUNKED]


def test_101_switches_and_hands_over_the_bytes_that_follow():
    http = HttpConnectionDecoder()
    http.client_data(UPGRADE_REQUEST + CLIENT_FRAME)
    assert not http.switched
    [response] = http.server_data(SWITCHING + SERVER_FRAME)
    assert (response.status, response.raw) == (101, SWITCHING)
    assert http.switched
    assert http.take_trailing_data() == (CLIENT_FRAME, SERVER_FRAME)
    assert http.take_trailing_data() == (b"", b"")


def test_bytes_after_the_switch_are_kept_for_the_frame_decoder():
    http = HttpConnectionDecoder()
    http.client_data(UPGRADE_REQUEST)
    http.server_data(SWITCHING)
    assert http.client_data(CLIENT_FRAME) == []
    assert http.take_trailing_data() == (CLIENT_FRAME, b"")


def test_upgrade_refused_with_400_stays_http():
    http = HttpConnectionDecoder()
    http.client_data(UPGRADE_REQUEST)
    refusal = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    [response] = http.server_data(refusal)
    assert response.status == 400 and not http.switched
    assert [str(e) for e in http.client_data(POLL)] == ["GET /socket.io/?EIO=4&transport=polling"]


def test_101_that_answers_no_upgrade_request_is_a_decode_error():
    http = HttpConnectionDecoder()
    http.client_data(POLL)
    [error] = http.server_data(SWITCHING)
    assert isinstance(error, DecodeError) and error.layer is Layer.HTTP
    assert not http.switched


def test_body_read_until_close_ends_at_end_of_file():
    http = HttpConnectionDecoder()
    http.client_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http.server_data(b"HTTP/1.0 200 OK\r\n\r\nhello") == []
    [(direction, response)] = http.eof(Direction.SERVER_TO_CLIENT)
    assert direction is Direction.SERVER_TO_CLIENT and response.body == b"hello"


def test_end_of_file_inside_a_request_is_a_decode_error():
    http = HttpConnectionDecoder()
    http.client_data(POST[:-1])
    [(_, error)] = http.eof(Direction.CLIENT_TO_SERVER)
    assert isinstance(error, DecodeError) and error.raw == POST[:-1]


def test_garbage_request_is_a_decode_error_and_the_direction_stops():
    http = HttpConnectionDecoder()
    [error] = http.client_data(b"\x16\x03\x01 not http\r\n\r\n")
    assert error.layer is Layer.HTTP and error.raw == b"\x16\x03\x01 not http\r\n\r\n"
    assert http.client_data(POLL) == []


def test_garbage_response_is_a_decode_error():
    http = HttpConnectionDecoder()
    http.client_data(POLL)
    [error] = http.server_data(b"HTTP/9 nope\r\n\r\n")
    assert isinstance(error, DecodeError)


def test_request_decoder_alone_reads_one_request():
    [request] = RequestDecoder().receive_data(POST)
    assert request.body == b"40"


def test_random_bytes_never_raise():
    rng = random.Random(9112)
    for _ in range(300):
        http = HttpConnectionDecoder()
        http.client_data(POLL if rng.random() < 0.5 else UPGRADE_REQUEST)
        junk = rng.randbytes(rng.randrange(1, 120))
        if rng.random() < 0.5:
            junk = b"HTTP/1.1 " + junk
        events = http.server_data(junk) + http.client_data(rng.randbytes(30))
        events += [e for _, e in http.eof(Direction.SERVER_TO_CLIENT)]
        assert all(isinstance(e, HttpRequest | HttpResponse | DecodeError) for e in events)
