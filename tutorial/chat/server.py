"""The teaching chat server: python-socketio's ``AsyncServer`` on aiohttp.

Each handler follows the steps of the seed's diagrams, and the steps are named in the
code so that a trace can show them:

* ``send-message`` (diagram 3): 1. receive, 2. validate message and add metadata,
  persist, 3. broadcast to the room, 4-6. ``new-message`` to everybody in it, the
  sender included.
* ``join-room`` (diagram 4): 1. validate room, 2. leave old room (optional),
  3. join new room, 4. update member list, 5. confirm with ``room-joined``,
  6. notify the others with ``user-joined``.

Every payload is checked against the event catalog
([tutorial.protocol.catalog][tutorial.protocol.catalog]);
every failure answers ``error {code, message, event}`` and an ack ``{ok: false, ...}``.

What keeps one server up under abuse (docs/explanation/limits.md) is spread over small
modules: [httpguard][tutorial.chat.httpguard] (origins, forwarded headers, polling bodies,
``/stats``), [sendqueue][tutorial.chat.sendqueue] (bytes held per connection),
[ratelimit][tutorial.chat.ratelimit] (events, login attempts, strikes) and
[presence][tutorial.chat.presence] (presence per user, across the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import socketio
from aiohttp import web

from tutorial import compat
from tutorial.chat import auth, demo
from tutorial.chat.fanout import MAX_CORK_SECONDS, Fanout, fanout_supported
from tutorial.chat.httpguard import HttpGuard
from tutorial.chat.packets import (
    MALFORMED_EVENT,
    DefensivePacket,
    broadcast,
    install_engineio_hooks,
)
from tutorial.chat.pingwheel import PingWheel
from tutorial.chat.presence import Presence, RedisPresence, reach_redis
from tutorial.chat.ratelimit import LoginThrottle, RateLimiter, Strikes, TokenBucket
from tutorial.chat.sendqueue import DEFAULT_MAX_SEND_QUEUE, MIN_SEND_QUEUE, SendQueuePolicy
from tutorial.chat.store import Store, StoreUnavailable, new_secret, open_store
from tutorial.protocol.catalog import (
    CLIENT_EVENTS,
    ROOM_ID_PATTERN,
    ErrorCode,
    Event,
    PayloadError,
    validate,
)
from tutorial.protocol.limits import (
    MAX_HTTP_BUFFER_SIZE,
    MAX_PROTOCOL_STRIKES,
    MAX_TEXT_LENGTH,
)
from tutorial.protocol.spans import Span, SpanHook, SpanKind

log = logging.getLogger("tutorial.chat")

STATIC_DIR = Path(__file__).parent / "static"

# Two ways a connection gets cut off, both only reached by a client that keeps on
# regardless of what it is told:
# * protocol strikes: unreadable packets and unknown events, MAX_PROTOCOL_STRIKES of
#   them within STRIKE_WINDOW seconds (no correct client sends one);
# * refusals of well-formed events (rate_limited, not_in_room, auth_failed, ...): a
#   budget of REFUSAL_BURST that comes back at REFUSAL_RATE a second. A client that
#   waits `retryAfter` never runs out; a flood of refused events does in milliseconds.
# (MAX_PROTOCOL_STRIKES is in the table of limits, protocol/limits.py.)
STRIKE_WINDOW = 60.0
REFUSAL_BURST = 20.0
REFUSAL_RATE = 2.0

SERVING: contextvars.ContextVar[str | None] = contextvars.ContextVar("serving", default=None)
"""The Socket.IO sid whose event the running handler serves (each handler has its task)."""


class Front(Protocol):
    """A listener put in front of the app (the live view's wiretap).

    With a front, [ChatServer.start][tutorial.chat.server.ChatServer.start] binds the
    app to a free port on 127.0.0.1 and the front listens on the configured address,
    relaying to it; [ChatServer.stop][tutorial.chat.server.ChatServer.stop] stops the
    front first.
    """

    async def start(self, host: str, port: int, upstream_port: int) -> int:
        """Listen on ``host:port`` (0: a free one) in front of ``upstream_port``; the port."""
        ...

    async def stop(self) -> None: ...


def find_socketio_client(start: Path | None = None) -> Path | None:
    """``node_modules/socket.io-client/dist``, looked for from the package dir upwards."""
    here = (start or Path(__file__)).resolve()
    for directory in [here, *here.parents]:
        dist = directory / "node_modules" / "socket.io-client" / "dist"
        if (dist / "socket.io.min.js").is_file():
            return dist
    return None


@dataclass
class ServerConfig:
    """Everything ``tutorial serve`` can set. Defaults suit a learner's laptop."""

    host: str = "127.0.0.1"
    port: int = 3000
    db_url: str = "sqlite:///.data/chat.db"
    demo: bool = False
    # Browser origins allowed besides the same origin under an IP or localhost host
    # (``--origin``); ``["*"]`` allows any (unsafe with credentials).
    cors_allowed_origins: list[str] | str | None = None
    max_text_length: int = MAX_TEXT_LENGTH
    max_http_buffer_size: int = MAX_HTTP_BUFFER_SIZE
    rate_capacity: float = 20.0
    rate_per_second: float = 10.0
    # -- limits under abuse (docs/explanation/limits.md) --
    # Seconds a client has to send a request's head, and a polling POST's body.
    read_timeout: float = 10.0
    # Bytes the server holds for one connection that does not read (sendqueue.py).
    max_send_queue: int = DEFAULT_MAX_SEND_QUEUE
    # Connections one user may have open on this server at once.
    max_connections_per_user: int = 10
    # Rooms one connection may be in (join-room, or CONNECT offsets).
    max_rooms_per_connection: int = 16
    # Password checks: (burst, per second) per user name and per source address.
    login_per_name: tuple[float, float] = (5.0, 5.0 / 60)
    login_per_address: tuple[float, float] = (20.0, 20.0 / 60)
    # Proxies whose X-Forwarded-* headers are believed (IPs or networks).
    trusted_proxies: list[str] = field(default_factory=list)
    # /stats answers loopback clients, or this bearer token.
    stats_token: str | None = None
    # -- fan-out (docs/explanation/performance.md) --
    # Broadcasts write one pre-built frame to each WebSocket recipient (chat/fanout.py);
    # False: python-socketio's own emit.
    fast_fanout: bool = True
    # How long its frames may wait corked while broadcasts keep coming turn after turn
    # (then they share one write per connection); 0: one write per turn of the loop.
    fanout_max_cork: float = MAX_CORK_SECONDS
    # Accept permessage-deflate when a client offers it (Node's socket.io 4 does not by
    # default; compressed connections cannot share a frame, so they take the queue).
    websocket_compression: bool = False

    def check(self) -> None:
        """Raise ValueError, naming the option, for a limit that cannot work."""
        if not self.read_timeout > 0:
            raise ValueError(f"--read-timeout must be above 0 seconds, not {self.read_timeout}")
        if self.max_send_queue < MIN_SEND_QUEUE:
            raise ValueError(
                f"--max-send-queue must be at least {MIN_SEND_QUEUE} bytes, "
                f"not {self.max_send_queue}"
            )
        if self.max_connections_per_user < 1:
            raise ValueError("--max-connections-per-user must be at least 1")

    token_ttl: int = 3600
    secret: str | None = None
    history_limit: int = 50
    redis_url: str | None = None
    # PostgreSQL hot standbys of db_url: history is read from them (chat/replicas.py).
    db_read_urls: list[str] = field(default_factory=list)
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    name: str = "server"
    static_dir: Path | None = field(default=None)

    @classmethod
    def for_demo(cls, directory: str | Path, **overrides: Any) -> ServerConfig:
        """The demo configuration the tests, scenarios, notebooks and drills run: the
        seed's cast, 127.0.0.1, a free port, a SQLite file in ``directory``."""
        config = cls(host="127.0.0.1", port=0, db_url=f"sqlite:///{directory}/chat.db", demo=True)
        return replace(config, **overrides)


@dataclass
class Session:
    """What the server knows about one connection."""

    sid: str
    user: str | None = None
    rooms: set[str] = field(default_factory=set)
    strikes: Strikes = field(default_factory=lambda: Strikes(MAX_PROTOCOL_STRIKES, STRIKE_WINDOW))
    refusals: TokenBucket = field(default_factory=lambda: TokenBucket(REFUSAL_BURST, REFUSAL_RATE))
    address: str | None = None  # the client's address (through a trusted proxy: its own)
    cut_off: bool = False


class ChatServer:
    """The chat server: build with a config (and optionally a store), then ``start()``."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        store: Store | None = None,
        span: SpanHook | None = None,
        front: Front | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.store = store or open_store(self.config.db_url, self.config.db_read_urls)
        # Observers of the server's own steps (spans): none by default, at no cost.
        self.span_hooks: list[SpanHook] = [span] if span is not None else []
        self.front = front
        """A listener in front of the app (None: the app listens itself)."""
        config = self.config
        config.check()
        # The fan-out fast path, when the installed libraries are the ones the seam was
        # checked against; python-socketio's own emit otherwise.
        self.fanout: Fanout | None = None
        fast = config.fast_fanout and fanout_supported()
        if config.fast_fanout and not fast:
            log.warning("fan-out fast path off: libraries outside the versions checked")
        manager: Any = None
        if fast:
            manager = compat.fanout_manager(config.redis_url, self._deliver)
        elif config.redis_url:
            manager = socketio.AsyncRedisManager(config.redis_url)
        origins = config.cors_allowed_origins
        self.guard = HttpGuard(
            origins=[origins] if isinstance(origins, str) else (origins or []),
            trusted_proxies=config.trusted_proxies,
            stats_token=config.stats_token,
            max_body=config.max_http_buffer_size,
            read_timeout=config.read_timeout,
            close_session=self._close_eio_session,
        )
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=manager,
            serializer=DefensivePacket,
            cors_allowed_origins=self.guard.origin_allowed,
            max_http_buffer_size=config.max_http_buffer_size,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            # With the fast path, the ping wheel keeps the heartbeats (chat/pingwheel.py)
            # and sweeps closed sessions: python-engineio's service task is not needed.
            monitor_clients=not fast,
            logger=False,
            engineio_logger=False,
        )
        # Each connection's send queue is bounded (sendqueue.py); undecodable Engine.IO
        # frames close the connection cleanly (GuardedWebSocket).
        self.send_policy = SendQueuePolicy(config.max_send_queue, on_overflow=self._on_overflow)
        install_engineio_hooks(
            self.sio.eio, self.send_policy, websocket_compression=config.websocket_compression
        )
        self.pings: PingWheel | None = None
        if fast:
            self.fanout = Fanout(self.sio.eio, self.send_policy, config.fanout_max_cork)
            self.pings = PingWheel(self.sio.eio, config.ping_interval, config.ping_timeout)
            self.pings.install()
        self.app = web.Application(
            middlewares=[self.guard.middleware], client_max_size=config.max_http_buffer_size
        )
        self.sio.attach(self.app)
        self.sessions: dict[str, Session] = {}
        self._user_sids: dict[str, set[str]] = {}
        self.limiter = RateLimiter(config.rate_capacity, config.rate_per_second)
        self.logins = LoginThrottle(config.login_per_name, config.login_per_address)
        self.presence: Presence = (
            RedisPresence(config.redis_url, announce_left=self._announce_left)
            if config.redis_url
            else Presence()
        )
        self._stopping = False
        self.cut_offs = 0
        self.logins_throttled = 0
        self.tokens: auth.TokenSigner | None = None
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._register()
        self._add_routes()

    # -- lifecycle ---------------------------------------------------------------

    async def open_store(self) -> None:
        await self.store.open()
        if self.config.demo:
            await demo.seed_demo(self.store)
        secret = self.config.secret or await self.store.setting("token_secret", new_secret())
        self.tokens = auth.TokenSigner(secret, self.config.token_ttl)

    async def start(self) -> int:
        """Open the store, reach Redis (if any), listen, and return the bound port
        (``port=0`` picks a free one).

        Raises StoreUnavailable, RedisUnavailable or OSError (an address in use or not
        on this machine) having undone what it had started, so nothing keeps running.
        """
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> int:
        await self.open_store()
        if self.config.redis_url:
            await reach_redis(self.config.redis_url)
        await self.presence.start()
        # keepalive_timeout is also the header-read timeout: aiohttp closes a connection
        # that has not completed a request head within it (slowloris), and idle
        # keep-alive connections after it.
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            shutdown_timeout=0.25,
            keepalive_timeout=self.config.read_timeout,
            # A response sent before its request's body was read (413, 408): the rest of
            # the body is read and dropped for at most this long, then the connection
            # closes (closing at once could reset it before the client reads the answer).
            lingering_time=self.config.read_timeout,
        )
        await self._runner.setup()
        front = self.front
        # With a front, the app listens inside and the front on the public address.
        host, port = ("127.0.0.1", 0) if front else (self.config.host, self.config.port)
        await web.TCPSite(self._runner, host, port).start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.config.port
        if front is not None:
            self.port = await front.start(self.config.host, self.config.port, self.port)
        return self.port

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def stop(self) -> None:
        """Disconnect every client, stop listening, close the store. Safe to call twice."""
        if self._runner is not None:
            self._stopping = True
            # 1. Stop listening, so that reconnecting clients go elsewhere.
            if self.front is not None:
                await self.front.stop()
            for site in list(self._runner.sites):
                await site.stop()
            # 2. Presence: the users who leave with this server, announced once each to
            # the other servers' clients (not once per connection to everybody here).
            await self._withdraw_presence()
            # 3. Close every Engine.IO session: clients see "transport close" and may
            # reconnect elsewhere (a Socket.IO DISCONNECT would tell them not to).
            # wait=False: a half-open session would wait forever for its queue to drain.
            for eio_session in compat.engineio_sessions(self.sio.eio):
                with contextlib.suppress(Exception):
                    await eio_session.close(wait=False)
            with contextlib.suppress(Exception):
                await self.sio.shutdown()
            if self.pings is not None:
                self.pings.stop()
            await self._runner.cleanup()
            self._runner = None
        await self.presence.stop()
        await self.store.close()

    async def __aenter__(self) -> ChatServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- wiring ------------------------------------------------------------------

    def _register(self) -> None:
        on = self.sio.on
        on("connect", self.on_connect)
        on(Event.DISCONNECT, self.on_disconnect)
        handlers: dict[str, Callable[[Session, dict[str, Any]], Awaitable[Any]]] = {
            Event.AUTHENTICATE: self.authenticate,
            Event.JOIN_ROOM: self.join_room,
            Event.LEAVE_ROOM: self.leave_room,
            Event.SEND_MESSAGE: self.send_message,
            Event.TYPING_START: self.typing_start,
            Event.TYPING_STOP: self.typing_stop,
        }
        assert set(handlers) | {Event.DISCONNECT} == set(CLIENT_EVENTS), (
            "catalog and handlers differ"
        )
        for name, handler in handlers.items():
            on(name, self._guarded(name, handler))
        on(MALFORMED_EVENT, self.on_malformed)
        on("*", self.on_unknown)

    def _add_routes(self) -> None:
        static = self.config.static_dir or STATIC_DIR
        if (static / "index.html").exists():
            index = static / "index.html"

            async def page(_: web.Request) -> web.FileResponse:
                return web.FileResponse(index)

            self.app.router.add_get("/", page)
            self.app.router.add_static("/static/", static)

        # The browser page loads the official Socket.IO client from npm (``make setup``).
        vendor = find_socketio_client()
        if vendor is not None:
            self.app.router.add_static("/vendor/", vendor)
        else:

            async def missing(_: web.Request) -> web.Response:
                return web.Response(
                    status=404,
                    text="socket.io-client is not installed: run make setup\n",
                    content_type="text/plain",
                )

            self.app.router.add_get("/vendor/socket.io.min.js", missing)

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"ok": True, "name": self.config.name})

        self.app.router.add_get("/healthz", health)

        async def stats(_: web.Request) -> web.Response:
            """Who is connected to this server: the cluster's ``distribution()`` reads it."""
            rooms: dict[str, set[str]] = {}
            for s in self.sessions.values():
                for room_id in s.rooms if s.user else ():
                    rooms.setdefault(room_id, set()).add(s.user)  # type: ignore[arg-type]
            users = sorted({s.user for s in self.sessions.values() if s.user is not None})
            return web.json_response(
                {
                    "name": self.config.name,
                    "users": users,
                    "rooms": {r: sorted(m) for r, m in sorted(rooms.items())},
                    "connections": len(self.sessions),
                    "limits": self.limit_counters(),
                    "fanout": asdict(self.fanout.counters) if self.fanout else None,
                    "pings": (
                        {"sent": self.pings.pings, "timeouts": self.pings.timeouts}
                        if self.pings
                        else None
                    ),
                    **({"store": reads} if (reads := self.store.read_stats()) else {}),
                }
            )

        self.app.router.add_get("/stats", stats)

    def _guarded(
        self, event: str, handler: Callable[[Session, dict[str, Any]], Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Wrap a handler: session lookup, auth check, rate limit, validation, errors."""
        spec = CLIENT_EVENTS[event]

        async def run(sid: str, *args: Any) -> Any:
            SERVING.set(sid)
            session = self.sessions.get(sid)
            if session is None:
                return None
            if session.cut_off:
                return None
            try:
                if spec.requires_auth and session.user is None:
                    raise PayloadError(ErrorCode.UNAUTHENTICATED, f"log in before {event}")
                wait = self.limiter.take(session.user or f"sid:{sid}")
                if wait > 0:
                    return await self._fail(
                        sid, event, ErrorCode.RATE_LIMITED, "slow down", retry_after=wait
                    )
                payload = validate(event, args)
                return await handler(session, payload)
            except PayloadError as err:
                return await self._fail(sid, event, err.code, err.message)
            except StoreUnavailable as exc:
                log.warning("store unavailable during %s: %s", event, exc)
                return await self._fail(
                    sid, event, ErrorCode.STORE_UNAVAILABLE, "the message store is unavailable"
                )

        run.__name__ = f"on_{event.replace('-', '_')}"
        return run

    async def _fail(
        self,
        sid: str,
        event: str | None,
        code: ErrorCode,
        message: str,
        retry_after: float | None = None,
    ) -> dict[str, Any]:
        """Refuse: ``error`` to the client, the ack to return, and a strike.

        Every refusal but ``store_unavailable`` (the server's fault) counts: unreadable
        packets and unknown events as protocol strikes, other refusals against the
        connection's refusal budget (see ``REFUSAL_BURST``). Either exhausted, the
        connection is cut off, so a flood of refused events ends.
        """
        error: dict[str, Any] = {"code": code.value, "message": message, "event": event}
        if retry_after is not None:
            error["retryAfter"] = round(max(retry_after, 0.001), 3)
        self._trace("error", f"error {code.value}", target=sid, fields=error)
        await self.sio.emit(Event.ERROR, error, to=sid)
        if code is not ErrorCode.STORE_UNAVAILABLE:
            await self._strike(sid, protocol=code in _PROTOCOL_ERRORS)
        return {"ok": False, "error": error}

    async def _strike(self, sid: str, protocol: bool) -> None:
        session = self.sessions.get(sid)
        if session is None or session.cut_off:
            return
        if protocol:
            if not session.strikes.add():
                return
        elif session.refusals.take() == 0.0:
            return
        session.cut_off = True
        self.cut_offs += 1
        log.warning(
            "cutting off %s (%s): too many refused events", sid, session.user or "anonymous"
        )
        # The client learns why (Socket.IO DISCONNECT: do not reconnect at once), then
        # the connection ends: Engine.IO CLOSE, and the TCP connection within a grace
        # period even if the client reads nothing.
        eio_sid = compat.engineio_of_sid(self.sio, sid, "/")
        self.sio.start_background_task(self._cut_off, sid, eio_sid)

    async def _cut_off(self, sid: str, eio_sid: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect(sid)
        await self._close_eio_session(eio_sid)

    async def _close_eio_session(self, eio_sid: str | None) -> None:
        """End an Engine.IO session without waiting for its client (it may not read)."""
        if eio_sid:
            await self.send_policy.end_session(eio_sid)

    def _on_overflow(self, eio_sid: str, dropped: int) -> None:
        """The send-queue bound closed a connection (see sendqueue.py)."""
        self._trace(
            "error", "send queue over the bound", fields={"eio": eio_sid, "dropped": dropped}
        )

    async def _deliver(self, encoded: str, eio_sids: list[str]) -> None:
        """The client manager's broadcasts, to the fast path (chat/fanout.py)."""
        if self.fanout is not None:
            await self.fanout.deliver(encoded, eio_sids)

    def limit_counters(self) -> dict[str, Any]:
        """What the limits refused or cut off so far (``/stats``)."""
        return {
            "send_queue_overflows": self.send_policy.overflows,
            "cut_off_for_strikes": self.cut_offs,
            "http_refused": dict(sorted(self.guard.refused.items())),
            "login_throttled": self.logins_throttled,
            "rate_buckets": len(self.limiter),
            "login_buckets": len(self.logins.names) + len(self.logins.addresses),
        }

    def add_span_hook(self, hook: SpanHook) -> Callable[[], None]:
        """Call ``hook(span)`` at every inner step from now on; returns its remover."""
        self.span_hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self.span_hooks.remove(hook)

        return remove

    def _trace(
        self,
        kind: Literal["step", "rooms", "error", "app"],
        label: str,
        *,
        step: int | None = None,
        target: str | None = None,
        fields: dict[str, Any] | None = None,
        reply: bool = False,
    ) -> None:
        if self.span_hooks:
            span = Span(SpanKind(kind), label, step, target, fields or {}, reply, SERVING.get())
            for hook in list(self.span_hooks):
                hook(span)

    # -- connection --------------------------------------------------------------

    @staticmethod
    def _refuse(
        code: ErrorCode, message: str, retry_after: float | None = None
    ) -> socketio.exceptions.ConnectionRefusedError:
        """A CONNECT_ERROR: ``{"message": message, "data": {"code", "message", "retryAfter"?}}``."""
        data: dict[str, Any] = {"code": code.value, "message": message}
        if retry_after is not None:
            data["retryAfter"] = round(max(retry_after, 0.001), 3)
        return socketio.exceptions.ConnectionRefusedError(message, data)

    def _user_full(self, user: str) -> bool:
        return len(self._user_sids.get(user, ())) >= self.config.max_connections_per_user

    def _too_many_text(self, user: str) -> str:
        return (
            f"{user} has {self.config.max_connections_per_user} connections to this server "
            "already; close one and retry"
        )

    async def on_connect(self, sid: str, environ: dict[str, Any], auth_data: Any = None) -> None:
        """CONNECT: anonymous, or logged in with ``auth = {token}`` / ``{username, password}``.

        ``auth`` may also carry ``offsets: {roomId: lastSeq}``: the server then re-joins
        those rooms and replays what the client missed (reconnection without loss).
        """
        SERVING.set(sid)
        session = Session(sid, address=environ.get("REMOTE_ADDR") or None)
        if self._stopping:
            raise self._refuse(ErrorCode.STORE_UNAVAILABLE, "the server is shutting down")
        if auth_data is None:
            self.sessions[sid] = session
            return
        if not isinstance(auth_data, dict) or MALFORMED_EVENT in auth_data:
            raise self._refuse(ErrorCode.INVALID_PAYLOAD, "auth must be a JSON object")
        offsets = auth_data.get("offsets") or {}
        if not isinstance(offsets, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in offsets.items()
        ):
            raise self._refuse(ErrorCode.INVALID_PAYLOAD, "offsets must be {roomId: seq}")
        if len(offsets) > self.config.max_rooms_per_connection:
            raise self._refuse(
                ErrorCode.TOO_MANY_ROOMS,
                f"offsets name {len(offsets)} rooms; "
                f"a connection may be in {self.config.max_rooms_per_connection}",
            )
        credentials = {k: v for k, v in auth_data.items() if k != "offsets"}
        if not credentials:
            self.sessions[sid] = session
            return
        try:
            payload = validate(Event.AUTHENTICATE, (credentials,))
        except PayloadError as err:
            raise self._refuse(err.code, err.message) from None
        try:
            user = await self._check_credentials(payload, session.address)
        except StoreUnavailable:
            raise self._refuse(ErrorCode.STORE_UNAVAILABLE, "store unavailable") from None
        except LoginThrottled as throttled:
            raise self._refuse(
                ErrorCode.RATE_LIMITED, throttled.message, retry_after=throttled.retry_after
            ) from None
        if user is None:
            raise self._refuse(ErrorCode.AUTH_FAILED, "wrong credentials or token")
        if self._user_full(user):
            raise self._refuse(ErrorCode.TOO_MANY_CONNECTIONS, self._too_many_text(user))
        # Re-joining rooms through offsets costs what join-room events would (at most a
        # full bucket, so that a long list can always get in once the bucket is full).
        cost = min(float(len(offsets)), self.limiter.capacity)
        wait = self.limiter.bucket(user).wait(cost) if offsets else 0.0
        if wait > 0:
            raise self._refuse(
                ErrorCode.RATE_LIMITED,
                f"too many rooms re-joined too fast; retry in {wait:.1f} s",
                retry_after=wait,
            )
        if offsets:
            self.limiter.take(user, cost)
        session.user = user
        self.sessions[sid] = session
        self._user_sids.setdefault(user, set()).add(sid)
        rooms = await self._rooms_for(user)
        # The CONNECT reply is queued when this handler returns, before this task runs.
        self.sio.start_background_task(self._after_login, session, rooms, dict(offsets))

    async def _after_login(
        self, session: Session, rooms: list[str], offsets: dict[str, int]
    ) -> None:
        await self._confirm(session, rooms)
        for room_id, since in sorted(offsets.items()):
            if self._stopping or self.sessions.get(session.sid) is not session:
                return  # gone meanwhile: nothing to re-join
            try:
                payload = validate(Event.JOIN_ROOM, ({"roomId": room_id, "since": since},))
                await self.join_room(session, payload)
            except PayloadError as err:
                await self._fail(session.sid, Event.JOIN_ROOM, err.code, err.message)
            except StoreUnavailable:
                await self._fail(
                    session.sid, Event.JOIN_ROOM, ErrorCode.STORE_UNAVAILABLE, "store unavailable"
                )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        SERVING.set(sid)
        session = self.sessions.pop(sid, None)
        self.limiter.forget(f"sid:{sid}")  # an anonymous connection's bucket goes with it
        if session is None or session.user is None:
            return
        sids = self._user_sids.get(session.user)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._user_sids[session.user]
        for room_id in sorted(session.rooms):
            await self._presence_leave(session, room_id)

    async def on_malformed(self, sid: str, *args: Any) -> dict[str, Any] | None:
        SERVING.set(sid)
        session = self.sessions.get(sid)
        if session is None or session.cut_off:
            return None
        reason = args[0] if args and isinstance(args[0], str) else "malformed packet"
        return await self._fail(sid, None, ErrorCode.INVALID_PAYLOAD, reason)

    async def on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any] | None:
        session = self.sessions.get(sid)
        if session is None or session.cut_off:
            return None
        return await self._fail(
            sid, event[:40], ErrorCode.UNKNOWN_EVENT, f"unknown event {event[:40]!r}"
        )

    # -- authenticate ------------------------------------------------------------

    async def _check_credentials(
        self, payload: dict[str, Any], address: str | None = None
    ) -> str | None:
        """The user the credentials prove, or None. Raises
        [LoginThrottled][tutorial.chat.server.LoginThrottled].

        A password check is throttled per user name and per source address before the
        (deliberately slow) scrypt runs; a right password gives its attempt back. A token
        is an HMAC check: cheap, and not a password guess.
        """
        assert self.tokens is not None
        if "token" in payload:
            user = self.tokens.verify(payload["token"])
            if user is None or await self.store.get_user(user) is None:
                return None
            return user
        name = payload["username"]
        wait = self.logins.reserve(name, address)
        if wait > 0:
            self.logins_throttled += 1
            raise LoginThrottled(wait)
        record = await self.store.get_user(name)
        if record is None:
            # Spend the same time as a real check, so timing does not reveal user names.
            await asyncio.to_thread(auth.hash_password, payload["password"])
            return None
        ok = await asyncio.to_thread(auth.check_password, record, payload["password"])
        if ok:
            self.logins.succeeded(name, address)
        return record.name if ok else None

    async def authenticate(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """``authenticate``: ack ``{ok, user, token}``, then ``connect-confirmed``."""
        try:
            user = await self._check_credentials(payload, session.address)
        except LoginThrottled as throttled:
            return await self._fail(
                session.sid,
                Event.AUTHENTICATE,
                ErrorCode.RATE_LIMITED,
                throttled.message,
                retry_after=throttled.retry_after,
            )
        if user is None:
            return await self._fail(
                session.sid, Event.AUTHENTICATE, ErrorCode.AUTH_FAILED, "wrong credentials or token"
            )
        if user != session.user and self._user_full(user):
            return await self._fail(
                session.sid,
                Event.AUTHENTICATE,
                ErrorCode.TOO_MANY_CONNECTIONS,
                self._too_many_text(user),
            )
        if session.user is not None and session.user != user:
            for room_id in sorted(session.rooms):
                await self._leave(session, room_id)
            self._user_sids.get(session.user, set()).discard(session.sid)
        session.user = user
        self._user_sids.setdefault(user, set()).add(session.sid)
        assert self.tokens is not None
        rooms = await self._rooms_for(user)
        # The ack is queued when this handler returns, before this task runs.
        self.sio.start_background_task(self._confirm, session, rooms)
        return {"ok": True, "user": user, "token": self.tokens.issue(user)}

    async def _rooms_for(self, user: str) -> list[str]:
        return [r.id for r in await self.store.list_rooms() if r.admits(user)]

    async def _confirm(self, session: Session, rooms: list[str]) -> None:
        """``connect-confirmed``; emitted first thing, so it follows the CONNECT or ack."""
        assert session.user is not None
        self._trace("app", "connect-confirmed", target=session.sid, fields={"user": session.user})
        assert self.tokens is not None
        confirmed = {
            "user": session.user,
            "sid": session.sid,
            "rooms": rooms,
            "token": self.tokens.issue(session.user),
        }
        await self.sio.emit(Event.CONNECT_CONFIRMED, confirmed, to=session.sid)

    # -- rooms -------------------------------------------------------------------

    def members(self, room_id: str) -> list[str]:
        """Users connected to this server who are in the room, sorted."""
        return self.presence.local_members(room_id)

    async def join_room(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """``join-room``: the six steps of seed diagram 4."""
        room_id: str = payload["roomId"]
        user = session.user
        assert user is not None
        # 1. Validate room
        room = await self.store.get_room(room_id)
        if room is None:
            raise PayloadError(ErrorCode.ROOM_NOT_FOUND, f"no room {room_id!r}")
        if not room.admits(user):
            raise PayloadError(ErrorCode.FORBIDDEN, f"{room_id} is private")
        self._trace("step", "Validate room", step=1, fields={"roomId": room_id})
        # 2. Leave old room (only when asked: several rooms at once is the default)
        if payload.get("leaveOthers"):
            old_rooms = sorted(session.rooms - {room_id})
            self._trace("step", "Leave old room", step=2, fields={"rooms": old_rooms})
            for old in old_rooms:
                await self._leave(session, old)
        # 3. Join new room
        already = room_id in session.rooms
        if not already and len(session.rooms) >= self.config.max_rooms_per_connection:
            raise PayloadError(
                ErrorCode.TOO_MANY_ROOMS,
                f"a connection may be in {self.config.max_rooms_per_connection} rooms; "
                "leave one first",
            )
        if self.sessions.get(session.sid) is not session:
            # Disconnected while the room was being checked: joining now would leave a
            # member behind that nobody removes.
            return {"ok": False, "roomId": room_id}
        await self.sio.enter_room(session.sid, room_id)
        session.rooms.add(room_id)
        # Presence is per user: only her first connection in the room (across the
        # cluster) is announced.
        announce = self.presence.add(room_id, user, session.sid) and (
            await self.presence.joined(room_id, user)
        )
        self._trace("rooms", "Join new room", step=3, fields={"roomId": room_id, "user": user})
        # 4. Update member list (every server's members, with Redis)
        members = await self.presence.members(room_id)
        self._trace(
            "rooms",
            "Update room member list",
            step=4,
            reply=True,
            fields={"members": members},
        )
        # 5. room-joined confirmation, with history (or what was missed since `since`)
        # Read from a replica when there are some; atLeast (the client's read-your-writes
        # token) sends the read to the primary if that replica lags behind it.
        history = await self.store.history(
            room_id,
            since=payload.get("since"),
            limit=self.config.history_limit,
            at_least=payload.get("atLeast"),
        )
        await self.sio.emit(
            Event.ROOM_JOINED,
            {"roomId": room_id, "members": members, "history": [m.to_event() for m in history]},
            to=session.sid,
        )
        self._trace("app", "room-joined confirmation", step=5, target=session.sid)
        # 6. Notify others (unless she left meanwhile: then user-left went out already)
        if announce and self.sessions.get(session.sid) is session:
            await broadcast(
                self.sio,
                Event.USER_JOINED,
                {"roomId": room_id, "user": user},
                room_id,
                skip_sid=session.sid,
            )
            self._trace("app", "Notify others 'user-joined'", step=6, fields={"roomId": room_id})
        return {"ok": True, "roomId": room_id, "members": members}

    async def leave_room(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        room_id: str = payload["roomId"]
        if room_id not in session.rooms:
            raise PayloadError(ErrorCode.NOT_IN_ROOM, f"not in {room_id!r}")
        await self._leave(session, room_id)
        return {"ok": True, "roomId": room_id}

    async def _leave(self, session: Session, room_id: str) -> None:
        await self.sio.leave_room(session.sid, room_id)
        session.rooms.discard(room_id)
        await self._presence_leave(session, room_id)

    async def _presence_leave(self, session: Session, room_id: str) -> None:
        """``user-left`` when the user's last connection in the room (cluster-wide) goes."""
        user = session.user
        if user is None or not self.presence.remove(room_id, user, session.sid):
            return
        if self._stopping or not await self.presence.left(room_id, user):
            return
        await broadcast(
            self.sio,
            Event.USER_LEFT,
            {"roomId": room_id, "user": user},
            room_id,
            skip_sid=session.sid,
        )

    async def _announce_left(self, room_id: str, user: str) -> None:
        """A user left with a server that died (its presence was reaped)."""
        await broadcast(self.sio, Event.USER_LEFT, {"roomId": room_id, "user": user}, room_id)

    async def _withdraw_presence(self) -> None:
        """Shutting down: tell the other servers' clients who leaves, once per user."""
        try:
            gone = await asyncio.wait_for(self.presence.withdraw(), 2.0)
        except (TimeoutError, Exception) as exc:  # Redis away: others reap us
            log.warning("presence not withdrawn on shutdown: %s", exc)
            return
        for room_id, user in gone:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.sio.emit(Event.USER_LEFT, {"roomId": room_id, "user": user}, room=room_id),
                    1.0,
                )

    # -- messages ----------------------------------------------------------------

    async def send_message(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """``send-message``: validate, add metadata, persist, broadcast (seed diagram 3)."""
        room_id: str = payload["roomId"]
        text: str = payload["text"]
        user = session.user
        assert user is not None
        # 2. Validate message ...
        if room_id not in session.rooms:
            raise PayloadError(ErrorCode.NOT_IN_ROOM, f"join {room_id!r} before sending to it")
        if len(text) > self.config.max_text_length:
            raise PayloadError(
                ErrorCode.MESSAGE_TOO_LONG,
                f"text is {len(text)} characters; the limit is {self.config.max_text_length}",
            )
        if not text.strip():
            raise PayloadError(ErrorCode.INVALID_PAYLOAD, "text is empty")
        # ... add metadata (id, seq, ts, user) and persist, then 3. broadcast to room.
        # A pipeline: the append starts now (the store gives appends begun in turn
        # increasing seqs, and commits waiting ones together), then the room's lock,
        # taken first come first served right after it, broadcasts in that same order.
        # So broadcasts keep seq order although every event runs in its own task
        # (python-socketio's async_handlers), and message n + 1 is persisted while
        # message n is still being broadcast.
        lock = self._room_locks.get(room_id)
        if lock is None:
            lock = self._room_locks[room_id] = asyncio.Lock()
        pending = self.store.begin_append(room_id, user, text, payload["clientMsgId"])
        async with lock:  # no await between begin_append and queueing on the lock
            result = await pending
            message = result.message
            self._trace(
                "step",
                "validate message / add metadata",
                step=2,
                fields={
                    "length": len(text),
                    "id": message.id,
                    "seq": message.seq,
                    "duplicate": result.duplicate,
                },
            )
            if not result.duplicate:
                self._trace("step", "broadcast to room", step=3, fields={"roomId": room_id})
                # Encoded once, queued to every socket of the room (same bytes as emit).
                await broadcast(self.sio, Event.NEW_MESSAGE, message.to_event(), room_id)
        return {"ok": True, "id": message.id, "seq": message.seq, "duplicate": result.duplicate}

    async def typing_start(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """``typing-start``: relay to the other members of the room."""
        return await self._relay_typing(Event.TYPING_START, session, payload)

    async def typing_stop(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """``typing-stop``: relay to the other members of the room."""
        return await self._relay_typing(Event.TYPING_STOP, session, payload)

    async def _relay_typing(
        self, event: str, session: Session, payload: dict[str, Any]
    ) -> dict[str, Any]:
        room_id: str = payload["roomId"]
        if room_id not in session.rooms:
            raise PayloadError(ErrorCode.NOT_IN_ROOM, f"not in {room_id!r}")
        await broadcast(
            self.sio,
            event,
            {"roomId": room_id, "user": session.user},
            room_id,
            skip_sid=session.sid,
        )
        return {"ok": True}

    # -- snapshot for diagrams -----------------------------------------------------

    async def rooms_snapshot(self) -> dict[str, Any]:
        """Live membership (users and their sockets per room), for the rooms diagram."""
        rooms: dict[str, Any] = {
            r.id: {"private": r.private, "members": {}} for r in await self.store.list_rooms()
        }
        for session in sorted(self.sessions.values(), key=lambda s: s.sid):
            if session.user is None:
                continue
            for room_id in session.rooms:
                entry = rooms.setdefault(room_id, {"private": False, "members": {}})
                entry["members"].setdefault(session.user, []).append(session.sid)
        return {"namespace": "/", "rooms": dict(sorted(rooms.items()))}


# Refusals that only a broken or hostile client earns: protocol strikes.
_PROTOCOL_ERRORS = frozenset({ErrorCode.INVALID_PAYLOAD, ErrorCode.UNKNOWN_EVENT})


class LoginThrottled(Exception):
    """Too many password checks for this user name or address: wait ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.message = f"too many login attempts; retry in {retry_after:.0f} s"
        super().__init__(self.message)


__all__ = ["ROOM_ID_PATTERN", "ChatServer", "LoginThrottled", "ServerConfig", "Session"]
