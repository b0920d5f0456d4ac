"""The teaching client: python-socketio's ``AsyncClient`` inside the seed's state machine.

What this adds to the library, and why each part exists:

* **An explicit state machine** ([tutorial.protocol.states][tutorial.protocol.states]).
python-socketio's own
  reconnection is off; this class runs its own loop (exponential backoff with jitter,
  a retry limit, then FAILED), so every transition is real and recorded in
  ``ChatClient.history``.
* **Error classification** ([tutorial.client.recovery][tutorial.client.recovery]): a network
failure is
  retried, an auth failure ends in ERROR → DISCONNECTED with ``login_required`` set,
  a server rejection is handed to the caller, a rate limit pauses the outbox.
* **An outbox**: [ChatClient.send][tutorial.client.client.ChatClient.send] while not CONNECTED
queues; the queue flushes
  in order once connected. Each message has a ``clientMsgId``, so a resend after a lost
  ack is stored and delivered once (the server deduplicates).
* **Offsets**: the last contiguous ``seq`` seen per room. They ride in the CONNECT
  ``auth`` of every reconnection; the server re-joins those rooms and replays the rest.
  Messages are delivered to the application once each, in ``seq`` order per room.
* **Read-your-writes**: the highest ``seq`` the client knows exists per room (its own
  acked messages, messages held back behind a gap). When a history answer stops short
  of it (the server read a lagging replica), the client asks again with
  ``join-room {since, atLeast}``, and the server reads the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from tutorial.client.recovery import Backoff, Classification, RecoveryPattern, classify
from tutorial.protocol.catalog import ErrorCode, Event
from tutorial.protocol.states import INITIAL_STATE, State, Trigger, transition

Callback = Callable[..., Any]


@dataclass(frozen=True)
class TransitionRecord:
    """One move of the state machine, as it happened."""

    time: float
    source: State
    target: State
    trigger: Trigger
    cause: str


@dataclass(frozen=True)
class ClientError:
    """An error the client met, with what the seed's recovery table says to do."""

    time: float
    code: str | None
    message: str
    event: str | None
    pattern: RecoveryPattern


@dataclass
class OutboxItem:
    room_id: str
    text: str
    client_msg_id: str
    acked: asyncio.Future[dict[str, Any]]
    attempts: int = 0


class ChatError(Exception):
    """A failure reported to the caller, classified as the seed's diagram 5 does."""

    def __init__(
        self,
        code: str | None,
        message: str,
        pattern: RecoveryPattern,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code or 'network'}: {message}")
        self.code = code
        self.message = message
        self.pattern = pattern
        self.retry_after = retry_after


class LoginRequired(ChatError):
    """Auth failure: the user must log in again (ERROR → DISCONNECTED)."""


@dataclass
class ClientOptions:
    transports: tuple[str, ...] = ("websocket",)
    max_retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    connect_timeout: float = 5.0
    ack_timeout: float = 5.0
    socketio_path: str = "socket.io"
    local_addr: str | None = None  # bind to a source address, e.g. 127.0.0.2
    # Verify an https:// / wss:// server against this context (a cluster's throwaway CA:
    # ``Cluster.ssl_context``). None: the system's trust store.
    ssl_context: ssl.SSLContext | None = None
    gap_timeout: float = 0.5  # wait this long for a missing seq before asking for it
    seed: int | None = None  # for reproducible jitter


QUICK_BACKOFF = Backoff(base=0.05, factor=2.0, cap=0.4, jitter=0.0)
"""Short waits, no jitter: a scenario or a test finishes in seconds, the same way twice."""


def fast_options(**overrides: Any) -> ClientOptions:
    """The client options of the scenarios and the tests.

    [QUICK_BACKOFF][tutorial.client.client.QUICK_BACKOFF], a fixed seed, 2 s connect and
    ack timeouts; ``overrides`` set other fields.
    """
    values: dict[str, Any] = {
        "backoff": QUICK_BACKOFF,
        "seed": 1,
        "connect_timeout": 2.0,
        "ack_timeout": 2.0,
    }
    return ClientOptions(**{**values, **overrides})


class ChatClient:
    """A chat client for one user. Use ``async with ChatClient(url, ...)`` or call
    ``connect`` and ``close``."""

    def __init__(
        self,
        url: str | Callable[[], str],
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        options: ClientOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.username = username
        self._password = password
        self.token = token
        self.options = options or ClientOptions()
        self.name = name or username or "client"
        self.state: State = INITIAL_STATE
        self.history: list[TransitionRecord] = []
        self.errors: list[ClientError] = []
        self.user: str | None = None
        self.sid: str | None = None
        self.login_required = False
        # Application-visible chat state.
        self.offsets: dict[str, int] = {}  # roomId -> last contiguous seq delivered
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.members: dict[str, list[str]] = {}
        self.typing: dict[str, set[str]] = {}
        self.events: list[tuple[float, str, Any]] = []
        self.outbox: deque[OutboxItem] = deque()
        self.retry_delays: list[float] = []
        self._early: dict[str, dict[int, dict[str, Any]]] = {}
        self.known: dict[str, int] = {}  # roomId -> highest seq known to exist
        self._gap_tasks: dict[str, asyncio.Task[None]] = {}
        self.gap_repairs = 0
        self._listeners: dict[str, list[Callback]] = {}
        self._transition_listeners: list[Callback] = []
        self._changed = asyncio.Condition()
        self._sio: socketio.AsyncClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._closing = False
        self._rejoining: set[str] = set()
        self._paused_until = 0.0
        self._rng = random.Random(self.options.seed)
        self._msg_counter = itertools.count(1)
        self._t0 = time.monotonic()

    # -- observation -------------------------------------------------------------

    def on(self, event: str, callback: Callback) -> None:
        """Call ``callback(payload)`` for each chat event named ``event`` ("*": all, with
        ``callback(event, payload)``)."""
        self._listeners.setdefault(event, []).append(callback)

    def on_transition(self, callback: Callable[[TransitionRecord], Any]) -> None:
        self._transition_listeners.append(callback)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked after every change), or time out."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for_state(self, state: State, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.state is state, timeout)

    async def wait_for_event(self, event: str, count: int = 1, timeout: float = 5.0) -> Any:
        """Wait until ``count`` events named ``event`` have arrived; return the last one."""

        def seen() -> list[Any]:
            return [p for _, e, p in self.events if e == event]

        await self.wait_until(lambda: len(seen()) >= count, timeout)
        return seen()[count - 1]

    def received(self, room_id: str) -> list[str]:
        """Texts delivered in a room, in seq order."""
        return [m["text"] for m in self.messages.get(room_id, [])]

    def held_back(self, room_id: str) -> list[str]:
        """Texts received in a room but held back: each waits for a missing earlier seq."""
        return sorted(m["text"] for m in self._early.get(room_id, {}).values())

    @property
    def rejoining(self) -> bool:
        """True while rooms of the last session are being joined again after a reconnect."""
        return bool(self._rejoining)

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _move(self, target: State, cause: str) -> None:
        row = transition(self.state, target)  # raises on a move the table does not allow
        record = TransitionRecord(self._elapsed(), self.state, target, row.trigger, cause)
        self.state = target
        self.history.append(record)
        for callback in list(self._transition_listeners):
            result = callback(record)
            if asyncio.iscoroutine(result):
                await result
        await self._notify()

    async def _record_error(self, code: str | None, message: str, event: str | None) -> ClientError:
        error = ClientError(self._elapsed(), code, message, event, classify(code))
        self.errors.append(error)
        await self._emit_local("client-error", error)
        return error

    async def _emit_local(self, event: str, payload: Any) -> None:
        self.events.append((self._elapsed(), event, payload))
        calls: list[Callable[[], Any]] = [
            functools.partial(cb, payload) for cb in self._listeners.get(event, [])
        ]
        calls += [functools.partial(cb, event, payload) for cb in self._listeners.get("*", [])]
        for call in calls:
            result = call()
            if asyncio.iscoroutine(result):
                await result
        await self._notify()

    # -- connecting --------------------------------------------------------------

    def _auth(self) -> dict[str, Any]:
        """The CONNECT auth payload, rebuilt for every (re)connection."""
        auth: dict[str, Any] = {}
        if self.token:
            auth["token"] = self.token
        elif self.username is not None and self._password is not None:
            auth["username"] = self.username
            auth["password"] = self._password
        if self.offsets:
            auth["offsets"] = dict(self.offsets)
        # The server re-joins these rooms and answers room-joined for each.
        self._rejoining = set(self.offsets)
        return auth

    def _new_socket(self) -> socketio.AsyncClient:
        options = self.options
        if self._http is None and (options.local_addr or options.ssl_context):
            connector = aiohttp.TCPConnector(
                local_addr=(options.local_addr, 0) if options.local_addr else None,
                ssl=options.ssl_context if options.ssl_context is not None else True,
            )
            self._http = aiohttp.ClientSession(connector=connector)
        kwargs: dict[str, Any] = {"reconnection": False}
        if self._http is not None:
            kwargs["http_session"] = self._http
        sio = socketio.AsyncClient(**kwargs)
        sio.on("connect_error", self._on_connect_error)
        sio.on("disconnect", self._on_disconnect)
        sio.on("*", self._on_event)
        return sio

    async def _attempt(self) -> str | None:
        """One connection attempt. Returns None on success, else the refusal code
        (``"network"`` for a transport failure)."""
        self._refusal: dict[str, Any] | None = None
        sio = self._new_socket()
        self._sio = sio
        url = self.url() if callable(self.url) else self.url
        try:
            await sio.connect(
                url,
                auth=self._auth(),
                transports=list(self.options.transports),
                socketio_path=self.options.socketio_path,
                wait_timeout=self.options.connect_timeout,
            )
        except (TimeoutError, socketio.exceptions.ConnectionError, OSError) as exc:
            self._sio = None
            with contextlib.suppress(Exception):
                await sio.disconnect()
            refusal = self._refusal
            if refusal is not None:
                code = str(refusal.get("code") or "refused")
                await self._record_error(code, str(refusal.get("message", "")), "connect")
                return code
            await self._record_error(None, str(exc) or type(exc).__name__, "connect")
            return "network"
        self.sid = sio.get_sid()
        return None

    async def connect(self) -> None:
        """DISCONNECTED → CONNECTING → CONNECTED, or → ERROR → DISCONNECTED and raise.

        Raises [LoginRequired][tutorial.client.client.LoginRequired] for bad credentials,
        [ChatError][tutorial.client.client.ChatError] otherwise.
        """
        self._closing = False
        self.login_required = False
        await self._move(State.CONNECTING, "connect() called")
        code = await self._attempt()
        if code is None:
            await self._move(State.CONNECTED, "handshake successful")
            self._start_flush()
            return
        error = self.errors[-1]
        await self._move(State.ERROR, f"connection failed: {code}")
        await self._move(State.DISCONNECTED, f"error handled: {error.pattern.recovery}")
        if error.pattern.classification is Classification.USER_ACTION:
            self.login_required = True
            self.token = None
            raise LoginRequired(code, error.message, error.pattern)
        raise ChatError(None if code == "network" else code, error.message, error.pattern)

    async def _on_connect_error(self, data: Any = None) -> None:
        """CONNECT_ERROR: the server sends ``{"message", "data": {"code", "message"}}``."""
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            self._refusal = data["data"]
        elif isinstance(data, dict):
            self._refusal = data
        # A plain string is python-socketio reporting a transport failure, not the server.

    async def _on_disconnect(self, reason: Any = None) -> None:
        if self._closing or self.state is not State.CONNECTED:
            return
        self._sio = None
        # An ack in flight will never come on the dead connection: stop waiting for it.
        # The message stays first in the outbox and is resent (same clientMsgId) later.
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        await self._move(State.RECONNECTING, f"connection lost: {reason}")
        self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        """RECONNECTING: retry with backoff; CONNECTED on success, FAILED at the limit."""
        self.retry_delays = []  # this outage's delays only
        for attempt in range(self.options.max_retries):
            delay = self.options.backoff.delay(attempt, self._rng)
            self.retry_delays.append(delay)
            await asyncio.sleep(delay)
            if self._closing or self.state is not State.RECONNECTING:
                return
            code = await self._attempt()
            if self._closing:
                return
            if code is None:
                await self._move(State.CONNECTED, f"reconnected after {attempt + 1} attempt(s)")
                self._start_flush()
                return
            if code == ErrorCode.RATE_LIMITED.value:
                # Throttled (too many re-joins or logins): wait as told, then retry.
                wait = (self._refusal or {}).get("retryAfter")
                if isinstance(wait, int | float) and wait > 0:
                    await asyncio.sleep(min(float(wait), 60.0))
                continue
            if code != "network" and classify(code).classification is not Classification.TEMPORARY:
                # The server answered but refused us: retrying will not help.
                self.login_required = classify(code).classification is Classification.USER_ACTION
                await self._move(State.FAILED, f"server refused the reconnection: {code}")
                return
        await self._move(State.FAILED, f"max retries ({self.options.max_retries}) exceeded")

    async def reset(self) -> None:
        """FAILED → DISCONNECTED (the seed's manual reset); call ``connect`` next."""
        await self._move(State.DISCONNECTED, "manual reset")

    async def close(self) -> None:
        """Disconnect on purpose. Safe to call in any state and twice."""
        self._closing = True
        for task in (self._reconnect_task, self._flush_task, *self._gap_tasks.values()):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._sio is not None:
            with contextlib.suppress(Exception):
                await self._sio.disconnect()
            self._sio = None
        if self.state in (State.CONNECTED, State.RECONNECTING):
            await self._move(State.DISCONNECTED, "disconnect() called")
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- incoming events -----------------------------------------------------------

    async def _on_event(self, event: str, *args: Any) -> None:
        payload = args[0] if args else None
        if event == Event.CONNECT_CONFIRMED and isinstance(payload, dict):
            self.user = payload.get("user")
            self.token = payload.get("token") or self.token
        elif event == Event.ROOM_JOINED and isinstance(payload, dict):
            room_id = payload["roomId"]
            self._rejoining.discard(room_id)
            self.members[room_id] = list(payload.get("members", []))
            history = payload.get("history", [])
            if room_id not in self.offsets:
                self.offsets[room_id] = history[0]["seq"] - 1 if history else 0
                self.messages.setdefault(room_id, [])
            for message in history:
                await self._deliver(message)
            if self._behind(room_id):
                # The history stops short of what we know exists (a lagging replica).
                self._watch_gap(room_id)
        elif event == Event.NEW_MESSAGE and isinstance(payload, dict):
            await self._deliver(payload)
            return  # _deliver emits it, once, in order
        elif event == Event.USER_JOINED and isinstance(payload, dict):
            members = self.members.setdefault(payload["roomId"], [])
            if payload["user"] not in members:
                members.append(payload["user"])
                members.sort()
        elif event == Event.USER_LEFT and isinstance(payload, dict):
            members = self.members.setdefault(payload["roomId"], [])
            if payload["user"] in members:
                members.remove(payload["user"])
        elif event in (Event.TYPING_START, Event.TYPING_STOP) and isinstance(payload, dict):
            who = self.typing.setdefault(payload["roomId"], set())
            (who.add if event == Event.TYPING_START else who.discard)(payload["user"])
        elif event == Event.ERROR and isinstance(payload, dict):
            await self._record_error(
                payload.get("code"), payload.get("message", ""), payload.get("event")
            )
        await self._emit_local(event, payload)

    async def _deliver(self, message: dict[str, Any]) -> None:
        """Deliver each message once, in seq order; hold early ones until the gap fills."""
        room_id = message["roomId"]
        if room_id not in self.offsets:
            return  # not a room we joined (a late message after leaving)
        last = self.offsets[room_id]
        seq = int(message["seq"])
        self._saw(room_id, seq)
        if seq <= last:
            return  # a duplicate: already delivered
        early = self._early.setdefault(room_id, {})
        early[seq] = message
        if seq > last + 1:
            self._watch_gap(room_id)
        while last + 1 in early:
            last += 1
            ready = early.pop(last)
            self.offsets[room_id] = last
            self.messages.setdefault(room_id, []).append(ready)
            await self._emit_local(Event.NEW_MESSAGE, ready)

    def _saw(self, room_id: str, seq: Any) -> None:
        if isinstance(seq, int) and seq > self.known.get(room_id, 0):
            self.known[room_id] = seq

    def _behind(self, room_id: str) -> bool:
        """Seq ``known[room]`` exists, but delivery has not reached it."""
        offset = self.offsets.get(room_id)
        return offset is not None and self.known.get(room_id, 0) > offset

    def _watch_gap(self, room_id: str) -> None:
        """A seq gap: a message was lost on its way (a crashed server, Redis away).
        If it is still open after ``gap_timeout``, ask for the rest with ``join-room
        {since}``: the server answers from the store, which has every acked message."""
        task = self._gap_tasks.get(room_id)
        if task is None or task.done():
            self._gap_tasks[room_id] = asyncio.create_task(self._repair_gap(room_id))

    async def _repair_gap(self, room_id: str) -> None:
        await asyncio.sleep(self.options.gap_timeout)
        while (self._early.get(room_id) or self._behind(room_id)) and not self._closing:
            if self.state is State.CONNECTED:
                since = self.offsets.get(room_id)
                if since is None:
                    return
                self.gap_repairs += 1
                payload = {"roomId": room_id, "since": since, "atLeast": self.known[room_id]}
                with contextlib.suppress(ChatError):
                    await self.call(Event.JOIN_ROOM, payload)
            await asyncio.sleep(self.options.gap_timeout)

    # -- requests ------------------------------------------------------------------

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one event and wait for its ack. Raises ChatError on refusal."""
        if self._sio is None or self.state is not State.CONNECTED:
            pattern = classify(None)
            raise ChatError(None, f"not connected ({self.state})", pattern)
        try:
            ack = await self._sio.call(event, payload, timeout=self.options.ack_timeout)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as exc:
            raise ChatError(None, f"{event}: {type(exc).__name__}", classify(None)) from exc
        if not isinstance(ack, dict):
            raise ChatError(None, f"{event}: no ack", classify(None))
        if not ack.get("ok"):
            error = ack.get("error") or {}
            code = error.get("code")
            raise ChatError(code, error.get("message", ""), classify(code), error.get("retryAfter"))
        return ack

    async def authenticate(self, username: str, password: str) -> dict[str, Any]:
        ack = await self.call(Event.AUTHENTICATE, {"username": username, "password": password})
        self.username, self.token = username, ack.get("token")
        return ack

    async def join(self, room_id: str, leave_others: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {"roomId": room_id}
        if leave_others:
            payload["leaveOthers"] = True
            for other in list(self.offsets):
                if other != room_id:
                    self._forget(other)
        return await self.call(Event.JOIN_ROOM, payload)

    async def leave(self, room_id: str) -> dict[str, Any]:
        ack = await self.call(Event.LEAVE_ROOM, {"roomId": room_id})
        self._forget(room_id)
        return ack

    def _forget(self, room_id: str) -> None:
        self.offsets.pop(room_id, None)
        self._early.pop(room_id, None)
        self.known.pop(room_id, None)

    async def typing_start(self, room_id: str) -> dict[str, Any]:
        return await self.call(Event.TYPING_START, {"roomId": room_id})

    async def typing_stop(self, room_id: str) -> dict[str, Any]:
        return await self.call(Event.TYPING_STOP, {"roomId": room_id})

    def new_client_msg_id(self) -> str:
        return f"{self.name}-{next(self._msg_counter)}-{uuid.uuid4().hex[:8]}"

    def send(
        self, room_id: str, text: str, client_msg_id: str | None = None
    ) -> Awaitable[dict[str, Any]]:
        """Queue a message in the outbox; returns a future resolved with the ack.

        Works in any state: the outbox flushes, in order, whenever the client is
        CONNECTED. The future fails with [ChatError][tutorial.client.client.ChatError] if the
        server rejects the
        message for good (not in room, too long).
        """
        loop = asyncio.get_running_loop()
        item = OutboxItem(
            room_id, text, client_msg_id or self.new_client_msg_id(), loop.create_future()
        )
        self.outbox.append(item)
        if self.state is State.CONNECTED:
            self._start_flush()
        return item.acked

    async def send_many(self, room_id: str, texts: Iterable[str]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self.send(room_id, t) for t in texts)))

    def _start_flush(self) -> None:
        if self.outbox and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Send the outbox in order while CONNECTED; stop (keeping the rest) otherwise."""
        if self._rejoining:
            # After a reconnection, first let the server restore our rooms.
            with contextlib.suppress(TimeoutError):
                await self.wait_until(lambda: not self._rejoining, self.options.ack_timeout)
        while self.outbox and self.state is State.CONNECTED and not self._closing:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            item = self.outbox[0]
            item.attempts += 1
            payload = {"roomId": item.room_id, "text": item.text, "clientMsgId": item.client_msg_id}
            try:
                ack = await self.call(Event.SEND_MESSAGE, payload)
            except ChatError as err:
                kind = err.pattern.classification
                if err.code == ErrorCode.RATE_LIMITED.value:
                    # Queue & slow down: wait what the server asked, then resend.
                    self._paused_until = time.monotonic() + (err.retry_after or 1.0)
                    continue
                if kind is Classification.TEMPORARY:
                    if err.code is None:
                        if self.state is State.CONNECTED:
                            continue  # reconnected meanwhile: resend now
                        return  # connection trouble: keep the item; the reconnect resumes
                    await asyncio.sleep(
                        self.options.backoff.delay(min(item.attempts, 5), self._rng)
                    )
                    continue
                self.outbox.popleft()
                if not item.acked.done():
                    item.acked.set_exception(err)
                continue
            self.outbox.popleft()
            self._saw(item.room_id, ack.get("seq"))
            if not item.acked.done():
                item.acked.set_result(ack)
            await self._notify()
