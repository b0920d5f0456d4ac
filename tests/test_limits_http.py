"""HTTP under abuse: every request answered or closed within a bound, origins from a list,
forwarded headers only from a trusted proxy, no JSONP, ``/stats`` for operators only.

Each test speaks raw HTTP/1.1 over a loopback socket to a real server (port 0), so it
can send what no client library would: a body that never comes, headers that never end.
The heavy versions (200 oversized POSTs at once, 1,100 slowloris connections under a
1,024-descriptor limit) are ``scripts/abuse_probes.py post`` and ``slowloris``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import make_config
from rawclient import RawSocket

from tutorial import live
from tutorial.chat.server import ChatServer

pytestmark = pytest.mark.timeout(60)

MakeServer = Callable[..., Awaitable[ChatServer]]
ANSWER_WITHIN = 5.0  # a bound far above the server's own timeouts in these tests


class Http:
    """One raw HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Http:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = ANSWER_WITHIN) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the next response."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        return status, headers, body

    async def closed_by_server(self, timeout: float = ANSWER_WITHIN) -> bool:
        """True once the server closes the connection (EOF), False if it stays open."""
        try:
            while await asyncio.wait_for(self.reader.read(4096), timeout):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.transport.abort()


async def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    http = await Http.open(port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        await http.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await http.response()
    finally:
        http.close()


async def polling_sid(port: int) -> str:
    status, _, body = await request(port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200, body
    return str(json.loads(body[1:])["sid"])


def post_head(port: int, sid: str, length: int) -> bytes:
    return (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


# -- every request answered or closed within a bound ------------------------------------


async def test_an_oversized_polling_post_gets_413_at_once_and_its_session_ends(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(read_timeout=0.5)
    sid = await polling_sid(srv.port)
    http = await Http.open(srv.port)
    try:
        started = time.monotonic()
        # 70,000 bytes announced (the limit is 64 KiB), 1,000 sent: answered at once.
        await http.send(post_head(srv.port, sid, 70_000) + b"4" * 1000)
        status, _, body = await http.response()
        assert status == 413, body
        assert b"65536" in body
        assert time.monotonic() - started < 2.0
        # The rest of the body is not waited for beyond the read timeout.
        assert await http.closed_by_server()
        assert time.monotonic() - started < 3.0
    finally:
        http.close()
    # Its Engine.IO session is closed: the next long-poll GET carries the CLOSE
    # packet or finds no session, at once.
    status, _, body = await request(
        srv.port, "GET", f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    )
    assert (status, body) in ((200, b"1"), (400, body)), (status, body)


async def test_a_polling_post_whose_body_never_arrives_gets_408_after_the_read_timeout(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(read_timeout=0.5)
    sid = await polling_sid(srv.port)
    http = await Http.open(srv.port)
    try:
        started = time.monotonic()
        await http.send(post_head(srv.port, sid, 100) + b"4")  # 1 of 100 bytes, then nothing
        status, _, body = await http.response()
        elapsed = time.monotonic() - started
        assert status == 408, body
        assert 0.4 < elapsed < 3.0
        assert await http.closed_by_server()
    finally:
        http.close()


async def test_a_polling_post_without_content_length_gets_411(server: ChatServer) -> None:
    sid = await polling_sid(server.port)
    http = await Http.open(server.port)
    try:
        await http.send(
            (
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n\r\n"
                "1\r\n4\r\n"
            ).encode()
        )
        status, _, _ = await http.response()
        assert status == 411
    finally:
        http.close()


async def test_a_connection_that_never_finishes_its_headers_is_closed_after_the_read_timeout(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(read_timeout=0.5)
    slow = [await Http.open(srv.port) for _ in range(20)]
    try:
        started = time.monotonic()
        for i, http in enumerate(slow):
            await http.send(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ".encode())
        # Meanwhile a normal client is served.
        status, _, body = await request(srv.port, "GET", "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        closed = await asyncio.gather(*(http.closed_by_server() for http in slow))
        assert all(closed)
        assert time.monotonic() - started < 3.0
    finally:
        for http in slow:
            http.close()


async def test_a_slow_header_sender_is_closed_even_while_it_keeps_sending(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(read_timeout=0.5)
    http = await Http.open(srv.port)
    try:
        await http.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        for i in range(40):  # a header line every 0.1 s: never a complete head
            try:
                await http.send(f"X-Drip-{i}: a\r\n".encode())
            except ConnectionError:
                closed = True
                break
            if await http.closed_by_server(timeout=0.1):
                closed = True
                break
        assert closed, "the server kept a never-ending request head open"
        assert time.monotonic() - started < 3.0
    finally:
        http.close()


# -- JSONP, origins, forwarded headers --------------------------------------------------


async def test_jsonp_polling_is_refused(server: ChatServer) -> None:
    status, _, body = await request(server.port, "GET", "/socket.io/?EIO=4&transport=polling&j=0")
    assert status == 400 and b"JSONP" in body


async def test_the_same_origin_under_an_ip_address_is_accepted(server: ChatServer) -> None:
    origin = f"http://127.0.0.1:{server.port}"
    status, headers, _ = await request(
        server.port, "GET", "/socket.io/?EIO=4&transport=polling", {"Origin": origin}
    )
    assert status == 200
    assert headers.get("access-control-allow-origin") == origin


async def test_a_dns_name_in_host_and_origin_is_refused_dns_rebinding(server: ChatServer) -> None:
    # An attacker's page at http://evil.example:PORT, its name rebound to 127.0.0.1:
    # the browser sends Host and Origin that agree with each other.
    http = await Http.open(server.port)
    try:
        await http.send(
            (
                "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                f"Host: evil.example:{server.port}\r\nOrigin: http://evil.example:{server.port}"
                "\r\n\r\n"
            ).encode()
        )
        status, _, body = await http.response()
    finally:
        http.close()
    assert status == 400 and b"not an accepted origin" in body


async def test_a_listed_origin_is_accepted_under_its_dns_name(custom_server: MakeServer) -> None:
    srv = await custom_server(cors_allowed_origins=["https://chat.example.org"])
    http = await Http.open(srv.port)
    try:
        await http.send(
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
            b"Host: chat.example.org\r\nOrigin: https://chat.example.org\r\n\r\n"
        )
        status, headers, _ = await http.response()
    finally:
        http.close()
    assert status == 200
    assert headers.get("access-control-allow-origin") == "https://chat.example.org"


async def test_x_forwarded_host_from_an_untrusted_peer_is_ignored(server: ChatServer) -> None:
    # python-engineio alone would add X-Forwarded-Host to the origins it accepts.
    status, _, _ = await request(
        server.port,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        {"Origin": "http://203.0.113.9", "X-Forwarded-Host": "203.0.113.9"},
    )
    assert status == 400


async def test_x_forwarded_headers_are_believed_from_a_trusted_proxy(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(trusted_proxies=["127.0.0.1"])
    # The proxy says the page is https://203.0.113.9 (an address: no rebinding risk).
    forwarded = {
        "Origin": "https://203.0.113.9",
        "X-Forwarded-Host": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "198.51.100.20",
    }
    status, _, _ = await request(srv.port, "GET", "/socket.io/?EIO=4&transport=polling", forwarded)
    assert status == 200
    # The client behind the proxy is 198.51.100.20: not loopback, so no /stats for it.
    status, _, _ = await request(srv.port, "GET", "/stats", {"X-Forwarded-For": "198.51.100.20"})
    assert status == 403


async def test_a_websocket_through_the_guard_still_chats(server: ChatServer) -> None:
    # The guard may rebuild the request (forwarded headers removed): the WebSocket
    # upgrade and the session on it work as before.
    raw = await RawSocket.open(server.port)
    try:
        reply = await raw.connect({"username": "alice", "password": "alice"})
        assert reply.startswith("40")
    finally:
        await raw.ws.close()


# -- /stats ------------------------------------------------------------------------------


async def test_stats_answers_a_loopback_client(server: ChatServer) -> None:
    status, _, body = await request(server.port, "GET", "/stats")
    assert status == 200 and json.loads(body)["connections"] == 0


async def test_stats_refuses_a_dns_name_host_and_an_untrusted_forwarded_client(
    custom_server: MakeServer,
) -> None:
    srv = await custom_server(trusted_proxies=["127.0.0.1"], stats_token="s3cret-token")
    http = await Http.open(srv.port)
    try:
        await http.send(b"GET /stats HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        status, _, _ = await http.response()
    finally:
        http.close()
    assert status == 403
    remote = {"X-Forwarded-For": "198.51.100.20"}
    assert (await request(srv.port, "GET", "/stats", remote))[0] == 403
    wrong = {**remote, "Authorization": "Bearer wrong"}
    assert (await request(srv.port, "GET", "/stats", wrong))[0] == 403
    right = {**remote, "Authorization": "Bearer s3cret-token"}
    status, _, body = await request(srv.port, "GET", "/stats", right)
    assert status == 200 and "rooms" in json.loads(body)


async def test_behind_the_live_wiretap_stats_needs_the_token(tmp_path: Path) -> None:
    # With --live-trace every request reaches the server through a wiretap on
    # 127.0.0.1: a loopback peer says nothing about who is asking.
    srv = ChatServer(make_config(tmp_path, stats_token="s3cret-token"))
    assert live.attach(srv) is not None
    await srv.start()
    try:
        assert (await request(srv.port, "GET", "/stats"))[0] == 403
        right = {"Authorization": "Bearer s3cret-token"}
        assert (await request(srv.port, "GET", "/stats", right))[0] == 200
    finally:
        await srv.stop()
