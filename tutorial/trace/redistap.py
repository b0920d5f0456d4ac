"""The Redis tap: a TCP proxy between one chat server and Redis that records the
Socket.IO adapter's traffic into a [Trace][tutorial.trace.model.Trace] (seed diagram 6).

python-socketio's ``AsyncRedisManager`` carries every broadcast between servers on one
Redis pub/sub channel, ``socketio``: the server that emits ``PUBLISH``-es a JSON
message (``{"method": "emit", "event": ..., "room": ..., "data": ..., "host_id":
...}``), and Redis pushes it to every subscribed server as ``message socketio <json>``.
Each server then delivers it to its own clients in that room. A scenario puts one tap
in front of Redis per server, so every byte on tap *i* is server *i*'s:

    tap = RedisTap(trace, upstream=("127.0.0.1", redis.port), client_lifeline="server-1")
    await tap.start()
    server = ChatServer(ServerConfig(redis_url=tap.url, ...))
    ...
    await tap.stop()

What is recorded (layer ``app``, with the exact RESP bytes as ``raw``):

* ``PUBLISH socketio <json>`` from the server to Redis, labelled like
  ``PUBLISH socketio: emit new-message to room general``, with the JSON's ``method``,
  ``event``, ``room`` and ``namespace`` as fields;
* ``message socketio <json>`` pushed by Redis to the server, labelled likewise.

Connection housekeeping (``HELLO``, ``CLIENT SETINFO``, ``SUBSCRIBE``, ``PING``, the
replies) is not recorded, only counted in ``RedisTap.skipped``. The decoder is sans-I/O
([RespDecoder][tutorial.protocol.resp.RespDecoder]): bytes in, whole messages out, the
same whatever the chunking. Bytes are relayed first and unchanged
([LoopbackProxy][tutorial.trace.proxy.LoopbackProxy]); nothing that goes wrong while
decoding or recording can break the connection (a decoding failure becomes one
``error`` event and switches decoding off for that connection).

RESP2 is what the lesson needs (arrays of bulk strings, simple strings, integers,
errors); the RESP3 types redis-py 5+ negotiates with ``HELLO 3`` (maps, pushes ``>``,
null, booleans, doubles...) are decoded too, because that is what is on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tutorial.protocol.layers import C2S, Direction, Layer
from tutorial.protocol.pubsub import CHANNEL, adapter_fields, describe, payload_text
from tutorial.protocol.resp import RespDecoder, RespMessage, RespProtocolError
from tutorial.trace.model import Trace
from tutorial.trace.proxy import LoopbackProxy, Relayed

log = logging.getLogger("tutorial.trace.redistap")

# -- the tap -----------------------------------------------------------------------------


@dataclass
class RedisConnection(Relayed):
    """One TCP connection through the tap (a server opens two: publish, subscribe).

    ``bytes_in`` counts server → Redis, ``bytes_out`` Redis → server.
    """

    to_redis: RespDecoder = field(default_factory=RespDecoder)
    from_redis: RespDecoder = field(default_factory=lambda: RespDecoder(inline=False))
    decoding: bool = True


class RedisTap(LoopbackProxy[RedisConnection]):
    """An asyncio TCP proxy on ``host:port`` (port 0: a free one) in front of Redis."""

    def __init__(
        self,
        trace: Trace,
        upstream: tuple[str, int],
        lifeline: str = "redis",
        client_lifeline: str = "server-1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        label: str = "Redis",
        client_label: str | None = None,
        channel: str = CHANNEL,
    ) -> None:
        super().__init__(upstream, host, port)
        self.trace = trace
        self.lifeline = lifeline
        self.client_lifeline = client_lifeline
        self.channel = channel
        trace.add_lifeline(client_lifeline, client_label or client_lifeline, "server")
        trace.add_lifeline(lifeline, label, "redis")
        self.recording = True
        """False: keep relaying and counting, record nothing in the trace."""
        self.published: list[str] = []
        """Adapter payloads (JSON text) the server published / Redis pushed, in order,
        whether recording or not.
        """
        self.pushed: list[str] = []
        self.subscribed: set[str] = set()
        """Channels the server's subscription was confirmed for."""
        self.skipped: Counter[str] = Counter()
        """What was left out of the trace: command names, "reply", "subscribe"."""
        self.failures: list[str] = []
        """Exceptions caught while recording (the relayed bytes were not affected)."""
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """A ``redis://`` URL for the server: ``ServerConfig(redis_url=tap.url)``."""
        return f"redis://{self.host}:{self.port}/0"

    async def stop(self) -> None:
        """Stop listening and close every relayed connection. Safe to call twice."""
        self.recording = False
        await super().stop()
        for _, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()

    # -- waiting -----------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; it is checked after every decoded message."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Until Redis has confirmed the server's ``SUBSCRIBE`` to the channel."""
        await self.wait_until(lambda: self.channel in self.subscribed, timeout)

    def _wake(self) -> None:
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            try:
                if predicate():
                    future.set_result(None)
            except Exception as exc:  # a bad predicate fails its own waiter only
                future.set_exception(exc)

    # -- the relay's hooks -------------------------------------------------------------

    def opened(self, number: int, peer_port: int) -> RedisConnection:
        return RedisConnection(number)

    # -- recording ---------------------------------------------------------------------

    def received(self, conn: RedisConnection, direction: Direction, data: bytes) -> None:
        if not conn.decoding:
            return
        t = self.trace.elapsed()
        decoder = conn.to_redis if direction is C2S else conn.from_redis
        try:
            messages = decoder.feed(data)
        except Exception as exc:  # a decoder bug: stop decoding, keep relaying
            decoder.error = RespProtocolError(f"decoder failed: {type(exc).__name__}: {exc}")
            messages = []
        for message in messages:
            try:
                self._message(conn, direction, message, t)
            except Exception as exc:  # never let recording break the connection
                self._failed(exc)
        if messages:
            self._wake()
        if decoder.error is not None:
            error = decoder.error
            conn.decoding = False
            self._failed(error)
            if self.recording:
                with contextlib.suppress(Exception):
                    self._record(
                        direction,
                        f"not RESP: {error}",
                        {"connection": conn.number},
                        data,
                        t,
                        kind="error",
                    )

    def _failed(self, exc: BaseException) -> None:
        self.failures.append(f"{type(exc).__name__}: {exc}")
        log.debug("redis tap: recording failed", exc_info=exc)

    def _message(
        self, conn: RedisConnection, direction: Direction, message: RespMessage, t: float
    ) -> None:
        value = message.value
        words = [payload_text(x) for x in value] if isinstance(value, list) else []
        head = (words[0] or "").lower() if words else ""
        if direction is C2S:
            if head == "publish" and len(words) == 3 and words[1] is not None:
                channel, payload = words[1], words[2]
                if channel == self.channel and payload is not None:
                    self.published.append(payload)
                self._adapter(conn, direction, "PUBLISH", channel, payload, message.raw, t)
                return
            self.skipped[head.upper() or "?"] += 1
            return
        if head == "message" and len(words) == 3 and words[1] is not None:
            channel, payload = words[1], words[2]
            if channel == self.channel and payload is not None:
                self.pushed.append(payload)
            self._adapter(conn, direction, "message", channel, payload, message.raw, t)
            return
        if head == "subscribe" and len(words) == 3 and words[1] is not None:
            self.subscribed.add(words[1])
            self.skipped["subscribe"] += 1
            return
        self.skipped["reply"] += 1

    def _adapter(
        self,
        conn: RedisConnection,
        direction: Direction,
        verb: str,
        channel: str,
        payload: str | None,
        raw: bytes,
        t: float,
    ) -> None:
        if not self.recording:
            return
        fields = adapter_fields(payload) if channel == self.channel else {}
        label = f"{verb} {channel}: {describe(fields)}"
        fields = {"channel": channel, **fields, "connection": conn.number}
        self._record(direction, label, fields, raw, t)

    def _record(
        self,
        direction: Direction,
        label: str,
        fields: dict[str, Any],
        raw: bytes,
        t: float,
        kind: str = "message",
    ) -> None:
        source, target = (
            (self.client_lifeline, self.lifeline)
            if direction is C2S
            else (self.lifeline, self.client_lifeline)
        )
        self.trace.record(source, target, Layer.APP, label, fields=fields, raw=raw, kind=kind, t=t)

    # -- counters ----------------------------------------------------------------------

    def adapter_messages(self, direction: Direction) -> list[dict[str, Any]]:
        """The decoded JSON of every adapter message published (C2S) or pushed (S2C)."""
        out = []
        for payload in self.published if direction is C2S else self.pushed:
            with contextlib.suppress(ValueError):
                data = json.loads(payload)
                if isinstance(data, dict):
                    out.append(data)
        return out


__all__ = ["RedisConnection", "RedisTap"]
