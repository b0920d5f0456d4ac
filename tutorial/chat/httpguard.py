"""What every HTTP request meets before Socket.IO or a page handler sees it.

An aiohttp middleware (``HttpGuard.middleware``) and an origin check
([origin_allowed][tutorial.chat.httpguard.HttpGuard.origin_allowed], python-engineio's
``cors_allowed_origins`` callable):

* **Forwarded headers only from a trusted proxy.** ``X-Forwarded-For``, ``-Proto`` and
  ``-Host`` are believed only when the TCP peer is one of ``--trusted-proxy``; then the
  request carries the client's address, scheme and host from them. From anyone else
  they are removed before python-engineio reads them (it would otherwise take
  ``X-Forwarded-Host`` as this server's own name in its same-origin check).
* **Browser origins from a list.** An ``Origin`` is accepted when it is one of
  ``--origin``, or when it is this request's own ``scheme://host`` *and* that host is
  an IP address or ``localhost``. A DNS name is never trusted from the ``Host`` header
  alone: with DNS rebinding an attacker's name can point at 127.0.0.1, and the browser
  then sends ``Host`` and ``Origin`` that agree. Behind a proxy or under a DNS name,
  list the page's public origin with ``--origin``.
* **No JSONP.** Engine.IO's JSONP polling (``?j=``) is refused: it exists for browsers
  without CORS and lets any page read the responses.
* **Polling bodies within a bound, in time.** A POST to Engine.IO must say its
  ``Content-Length`` (411 otherwise); over ``max_body`` it gets 413 at once, without
  reading the body, and its Engine.IO session is closed; the body must arrive within
  ``read_timeout`` seconds (408 otherwise). The connection is closed after either. A
  body holding a record Engine.IO cannot decode gets 400 and its session is closed,
  as a WebSocket that sent it would be.
* **/stats for operators only:** from a loopback address under an IP or ``localhost``
  host, or with ``Authorization: Bearer <--stats-token>``. Behind the live wiretap
  (``--live-trace``) every request comes from 127.0.0.1, so only the token opens it.

The header-read timeout itself is aiohttp's ``keepalive_timeout`` (see
[tutorial.chat.server.ChatServer][tutorial.chat.server.ChatServer]): a connection that has not
sent a complete
request head within ``read_timeout`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from tutorial.protocol.engineio import decode_payload
from tutorial.protocol.layers import DecodeError

log = logging.getLogger("tutorial.chat.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (``127.0.0.1``, ``10.0.0.0/8``, ``::1``) as networks."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy {value!r} is not an IP address or network") from None
    return tuple(networks)


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash or path."""
    text = origin.strip().rstrip("/").lower()
    if text == "*":
        return text
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        raise ValueError(f"--origin {origin!r} must look like http://host:port or https://host")
    return text


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def host_name(host: str) -> str:
    """The name in a ``Host`` value: ``127.0.0.1:3000`` → ``127.0.0.1``, ``[::1]:80`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_literal_host(host: str) -> bool:
    """True for an IP address or ``localhost``: names DNS rebinding cannot take over."""
    name = host_name(host)
    return name == "localhost" or _ip(name) is not None


class HttpGuard:
    """The HTTP-level limits of one chat server (see the module docstring)."""

    def __init__(
        self,
        *,
        origins: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        stats_token: str | None = None,
        max_body: int = 64 * 1024,
        read_timeout: float = 10.0,
        socketio_path: str = "/socket.io/",
        close_session: Callable[[str], Awaitable[None]] | None = None,
        loopback_means_local: bool = True,
    ) -> None:
        self.origins = frozenset(normalize_origin(o) for o in origins)
        self.any_origin = "*" in self.origins
        self.trusted = parse_networks(trusted_proxies)
        self.stats_token = stats_token or None
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.socketio_path = socketio_path
        self.close_session = close_session
        # False when every request arrives through a local relay (the live wiretap):
        # then a loopback peer says nothing about the client, and /stats needs the token.
        self.loopback_means_local = loopback_means_local
        self.refused: dict[str, int] = {}

    # -- who is asking ---------------------------------------------------------------------

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.trusted)

    def _forwarded(self, request: web.Request) -> web.Request:
        """The request as the client sent it: forwarded headers applied or removed."""
        present = [h for h in FORWARDED_HEADERS if h in request.headers]
        peer = request.remote
        if not self.trusts(peer):
            if not present:
                return request
            headers = request.headers.copy()
            for name in present:
                del headers[name]
            return request.clone(headers=headers)
        changes: dict[str, Any] = {}
        chain = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
        # The client is the last address that is not one of our proxies (rightmost first:
        # addresses left of a proxy we do not trust could be made up by anybody).
        for address in reversed([a for a in chain if a]):
            if not self.trusts(address):
                if _ip(address) is not None:
                    changes["remote"] = address
                break
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        forwarded_host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if forwarded_host:
            changes["host"] = forwarded_host
        return request.clone(**changes) if changes else request

    # -- origins ----------------------------------------------------------------------------

    def origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """python-engineio's ``cors_allowed_origins`` callable (an ``Origin`` was sent)."""
        if origin is None:
            return True
        wanted = origin.strip().rstrip("/").lower()
        if self.any_origin or wanted in self.origins:
            return True
        host = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST") or ""
        host = host.split(",")[0].strip()
        scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme") or "http"
        scheme = scheme.split(",")[0].strip().lower()
        if is_literal_host(host) and wanted == f"{scheme}://{host.lower()}":
            return True
        self._count("origin")
        return False

    def host_allowed(self, request: web.Request) -> bool:
        """Whether the ``Host`` names this server: an IP, localhost, or a listed origin."""
        host = request.host or ""
        if is_literal_host(host):
            return True
        return any(
            host_name(o.partition("://")[2]) == host_name(host) for o in self.origins if o != "*"
        )

    # -- the middleware ------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.refused[what] = self.refused.get(what, 0) + 1

    @staticmethod
    def _refuse(status: int, text: str, close: bool = False) -> web.Response:
        response = web.Response(status=status, text=text + "\n", content_type="text/plain")
        if close:
            response.force_close()
        return response

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request = self._forwarded(request)
        if request.path.startswith(self.socketio_path):
            refusal = await self._check_engineio(request)
            if refusal is not None:
                return refusal
        elif request.path == "/stats" and not self.stats_allowed(request):
            self._count("stats")
            return self._refuse(403, "/stats answers loopback clients or a bearer token")
        return await handler(request)

    async def _check_engineio(self, request: web.Request) -> web.Response | None:
        if "j" in request.query:
            self._count("jsonp")
            return self._refuse(400, "JSONP polling is off")
        if request.method != "POST":
            return None
        sid = request.query.get("sid", "")
        length = request.content_length
        if length is None:
            self._count("length_required")
            return self._refuse(411, "a polling POST must send Content-Length", close=True)
        if length > self.max_body:
            self._count("body_too_large")
            if sid and self.close_session is not None:
                await self.close_session(sid)
            return self._refuse(
                413, f"a polling POST may carry {self.max_body} bytes at most", close=True
            )
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await request.read()
        except TimeoutError:
            self._count("body_timeout")
            if sid and self.close_session is not None:
                await self.close_session(sid)
            return self._refuse(
                408, f"the body did not arrive within {self.read_timeout:g} s", close=True
            )
        # A record python-engineio cannot decode would end in its own traceback: the
        # session is closed here, as a WebSocket sending it would be.
        problem = next((p for p in decode_payload(body) if isinstance(p, DecodeError)), None)
        if problem is not None:
            self._count("undecodable_body")
            if sid and self.close_session is not None:
                await self.close_session(sid)
            return self._refuse(400, f"undecodable Engine.IO packet: {problem.reason}")
        return None

    def stats_allowed(self, request: web.Request) -> bool:
        token = self.stats_token
        if token is not None:
            given = request.headers.get("Authorization", "")
            if given.startswith("Bearer ") and hmac.compare_digest(
                given.removeprefix("Bearer ").strip().encode(), token.encode()
            ):
                return True
        if not self.loopback_means_local:
            return False
        ip = _ip(request.remote)
        return ip is not None and ip.is_loopback and self.host_allowed(request)


def body_reader(request: Any) -> Any:
    """``environ["wsgi.input"]`` for python-engineio: the body the guard already read."""

    class _Body:
        async def read(self, n: int = -1) -> bytes:
            with contextlib.suppress(Exception):
                return bytes(await request.read())
            return b""

    return _Body()
