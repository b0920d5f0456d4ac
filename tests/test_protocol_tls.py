"""TLS records (RFC 8446 5.1), checked against OpenSSL itself: Python's ``ssl`` runs a
real handshake between two in-memory endpoints, and the decoder reads the bytes."""

from __future__ import annotations

import contextlib
import ssl

import pytest
import trustme

from tutorial.protocol.layers import DecodeError
from tutorial.protocol.tls import ContentType, HandshakeType, RecordDecoder, TlsRecord


def handshake(hostname: str = "localhost") -> tuple[list[bytes], list[bytes], ssl.SSLObject]:
    """A TLS handshake between an ssl client and server in memory: the bytes each way."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    up: list[bytes] = []
    down: list[bytes] = []
    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        if chunk := c_out.read():
            up.append(chunk)
            s_in.write(chunk)
        if chunk := s_out.read():
            down.append(chunk)
            c_in.write(chunk)
    client.write(b'42["send-message",{"text":"secret"}]')
    up.append(c_out.read())
    return up, down, client


def records(chunks: list[bytes]) -> list[TlsRecord | DecodeError]:
    decoder = RecordDecoder()
    return [r for chunk in chunks for r in decoder.receive_data(chunk)]


def test_the_client_hello_is_readable_and_names_the_server() -> None:
    up, _, _ = handshake("localhost")
    first = records(up)[0]
    assert isinstance(first, TlsRecord)
    assert first.content_type is ContentType.HANDSHAKE
    assert first.handshake is HandshakeType.CLIENT_HELLO
    assert first.server_name == "localhost"
    assert str(first).startswith("TLS ClientHello (SNI localhost), ")


def test_the_server_answers_with_a_server_hello_then_ciphertext() -> None:
    _, down, _ = handshake()
    got = records(down)
    assert isinstance(got[0], TlsRecord) and got[0].handshake is HandshakeType.SERVER_HELLO
    assert any(isinstance(r, TlsRecord) and r.encrypted for r in got[1:])


def test_application_data_shows_only_its_length() -> None:
    up, _, client = handshake()
    last = records(up)[-1]
    assert isinstance(last, TlsRecord) and last.encrypted
    plaintext = b'42["send-message",{"text":"secret"}]'
    assert b"secret" not in last.raw
    if client.version() == "TLSv1.3":  # AEAD: one content-type byte and a 16-byte tag
        assert last.length == len(plaintext) + 1 + 16
    assert str(last) == f"TLS application data, {last.length} bytes (encrypted)"


def test_records_split_anywhere_decode_the_same() -> None:
    up, down, _ = handshake()
    for chunks in (up, down):
        whole = b"".join(chunks)
        byte_by_byte = records([whole[i : i + 1] for i in range(len(whole))])
        assert byte_by_byte == records([whole])
        assert sum(5 + r.length for r in byte_by_byte if isinstance(r, TlsRecord)) == len(whole)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"GET / HTTP/1.1\r\n\r\n", "not a TLS record header"),
        (bytes([23, 3, 3, 0xFF, 0xFF]), "record length 65535"),
    ],
)
def test_bytes_that_are_not_tls_stop_the_decoder(data: bytes, reason: str) -> None:
    decoder = RecordDecoder()
    got = decoder.receive_data(data)
    assert len(got) == 1 and isinstance(got[0], DecodeError) and reason in got[0].reason
    assert decoder.receive_data(bytes([23, 3, 3, 0, 1, 0])) == []


def test_the_inspector_names_every_byte_of_a_record() -> None:
    from tutorial.protocol.annotate import annotate
    from tutorial.protocol.layers import Layer

    up, _, _ = handshake("localhost")
    hello, data = records(up)[0], records(up)[-1]
    assert isinstance(hello, TlsRecord) and isinstance(data, TlsRecord)
    for record in (hello, data):
        annotated = annotate(Layer.TLS, record.raw)
        assert annotated.gaps_and_overlaps() == []
        assert annotated.span("length").value == f"{record.length} bytes"
    assert annotate(Layer.TLS, hello.raw).span("handshake type").value == "ClientHello"
    assert annotate(Layer.TLS, data.raw).span("ciphertext").note.startswith("encrypted")
    broken = annotate(Layer.TLS, data.raw[:-1])
    assert broken.problem == "not one whole TLS record" and broken.gaps_and_overlaps() == []
