"""The Redis tap: a TCP proxy between one chat server and Redis that records the
Socket.IO adapter's traffic into a :class:`Trace` (seed diagram 6).

python-socketio's ``AsyncRedisManager`` carries every broadcast between servers on one
Redis pub/sub channel, ``socketio``: the server that emits ``PUBLISH``-es a JSON
message (``{"method": "emit", "event": ..., "room": ..., "data": ..., "host_id":
...}``), and Redis pushes it to every subscribed server as ``message socketio <json>``.
Each server then delivers it to its own clients in that room. A scenario puts one tap
in front of Redis per server, so every byte on tap *i* is server *i*'s::

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
replies) is not recorded, only counted in :attr:`RedisTap.skipped`. The decoder is
sans-I/O (:class:`RespDecoder`): bytes in, whole messages out, the same whatever the
chunking. Bytes are relayed first and unchanged; nothing that goes wrong while decoding
or recording can break the connection (a decoding failure becomes one ``error`` event
and switches decoding off for that connection).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tutorial.protocol.layers import Direction, Layer
from tutorial.trace.model import Trace
from tutorial.trace.proxy import LoopbackProxy

log = logging.getLogger("tutorial.trace.redistap")

CHUNK = 65536
C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
CHANNEL = "socketio"

# -- RESP: the Redis serialization protocol, sans I/O ------------------------------------


class RespProtocolError(ValueError):
    """Bytes that are not RESP."""


class SimpleString(str):
    """``+OK``: a simple string (a :class:`str`, told apart from a bulk string's bytes)."""


class RespError(str):
    """``-ERR ...``: an error reply."""


class Push(list):  # type: ignore[type-arg]
    """``>``: a RESP3 out-of-band push (pub/sub messages under ``HELLO 3``)."""


@dataclass(frozen=True)
class RespMessage:
    """One whole top-level RESP value and the exact bytes it came in."""

    value: Any
    raw: bytes


class _Incomplete(Exception):
    pass


_AGGREGATES = {ord("*"), ord(">"), ord("~"), ord("%"), ord("|")}
_MAX_LINE = 64 * 1024
_MAX_BULK = 512 * 1024 * 1024


class RespDecoder:
    """Feed bytes, get whole :class:`RespMessage` values back; split anywhere, same result.

    Values: bulk string → ``bytes`` (null bulk → ``None``), simple string →
    :class:`SimpleString`, error → :class:`RespError`, integer → ``int``, array →
    ``list`` (null array → ``None``), push → :class:`Push`, map → ``list`` of
    ``(key, value)`` pairs, null → ``None``, boolean → ``bool``, double → ``float``.
    A line that does not start with a type byte is an inline command (``PING\\r\\n``):
    a list of its words as ``bytes``.
    """

    def __init__(self, *, inline: bool = True) -> None:
        #: False: a line without a type byte is an error (Redis never sends inline).
        self.inline = inline
        #: Set when bytes that are not RESP arrived; the decoder then stops.
        self.error: RespProtocolError | None = None
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RespMessage]:
        """The whole messages completed by ``data``. Bytes that are not RESP end the
        stream: the messages before them are returned, :attr:`error` is set, and
        everything fed afterwards is ignored."""
        if self.error is not None:
            return []
        self._buffer += data
        out: list[RespMessage] = []
        while self._buffer:
            try:
                value, end = self._parse(0)
            except _Incomplete:
                break
            except RespProtocolError as exc:
                self.error = exc
                self._buffer.clear()
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[:end]
            out.append(RespMessage(value, raw))
        return out

    def _line(self, start: int) -> tuple[bytes, int]:
        end = self._buffer.find(b"\r\n", start)
        if end < 0:
            if len(self._buffer) - start > _MAX_LINE:
                raise RespProtocolError("line too long")
            raise _Incomplete
        return bytes(self._buffer[start:end]), end + 2

    def _int(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RespProtocolError(f"not an integer: {text[:40]!r}") from None

    def _parse(self, pos: int) -> tuple[Any, int]:
        if pos >= len(self._buffer):
            raise _Incomplete
        kind = self._buffer[pos]
        if kind in b"+-:_#,(":
            line, end = self._line(pos + 1)
            return self._simple(kind, line), end
        if kind in b"$=!":
            line, end = self._line(pos + 1)
            n = self._int(line)
            if n < 0:
                return None, end
            if n > _MAX_BULK:
                raise RespProtocolError(f"bulk string of {n} bytes")
            if len(self._buffer) < end + n + 2:
                raise _Incomplete
            if self._buffer[end + n : end + n + 2] != b"\r\n":
                raise RespProtocolError("bulk string not followed by CRLF")
            body = bytes(self._buffer[end : end + n])
            if kind == ord("!"):
                return RespError(body.decode("utf-8", "replace")), end + n + 2
            if kind == ord("="):  # verbatim string: "txt:" + text
                body = body[4:]
            return body, end + n + 2
        if kind in _AGGREGATES:
            line, pos = self._line(pos + 1)
            n = self._int(line)
            if n < 0:
                return None, pos
            pairs = kind in (ord("%"), ord("|"))
            items: list[Any] = []
            for _ in range(2 * n if pairs else n):
                item, pos = self._parse(pos)
                items.append(item)
            if pairs:
                value: Any = list(zip(items[::2], items[1::2], strict=True))
                if kind == ord("|"):  # an attribute: metadata before the real value
                    return self._parse(pos)
                return value, pos
            if kind == ord(">"):
                return Push(items), pos
            return items, pos
        if kind in b"\r\n" or not self.inline:
            raise RespProtocolError(f"unexpected byte {bytes([kind])!r}")
        # An inline command: words separated by spaces, one line.
        line, end = self._line(pos)
        return [w for w in line.split(b" ") if w], end

    def _simple(self, kind: int, line: bytes) -> Any:
        text = line.decode("utf-8", "replace")
        if kind == ord("+"):
            return SimpleString(text)
        if kind == ord("-"):
            return RespError(text)
        if kind in (ord(":"), ord("(")):
            return self._int(line)
        if kind == ord("_"):
            return None
        if kind == ord("#"):
            return text == "t"
        try:
            return float(text)
        except ValueError:
            raise RespProtocolError(f"not a double: {line[:40]!r}") from None


def encode_command(*args: bytes | str) -> bytes:
    """A command as a client sends it: a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8") if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def encode_push(*args: bytes | str, resp3: bool = True) -> bytes:
    """A pub/sub message as Redis pushes it: ``>`` under RESP3, ``*`` under RESP2."""
    data = encode_command(*args)
    return (b">" if resp3 else b"*") + data[1:]


def reencode(raw: bytes, change: Callable[[str], str]) -> bytes:
    """``raw`` (one array of bulk strings, command or push) with ``change`` applied to
    each bulk string's text, lengths recomputed; other bytes are returned unchanged."""
    messages = RespDecoder().feed(raw)
    if len(messages) != 1 or messages[0].raw != raw:
        return raw
    value = messages[0].value
    if not isinstance(value, list) or not all(isinstance(x, bytes) for x in value):
        return raw
    try:
        texts = [change(x.decode("utf-8")) for x in value]
    except UnicodeDecodeError:
        return raw
    out = encode_command(*texts)
    return (raw[:1] + out[1:]) if raw[:1] == b">" else out


# -- what the adapter says ---------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def adapter_fields(payload: str | None) -> dict[str, Any]:
    """method/event/room/namespace of an adapter message (``{}`` if it is not JSON)."""
    if payload is None:
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(data, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in ("method", "event", "room", "namespace"):
        if key in data and isinstance(data[key], str | int | float | bool | type(None)):
            out[key] = data[key]
    return out


def describe(fields: Mapping[str, Any]) -> str:
    """``emit new-message to room general`` (what the adapter message asks for)."""
    method = fields.get("method")
    if method is None:
        return "(not an adapter message)"
    words = [str(method)]
    if fields.get("event") is not None:
        words.append(str(fields["event"]))
    if "room" in fields:
        room = fields["room"]
        words.append("to everyone" if room is None else f"to room {room}")
    return " ".join(words)


# -- the tap -----------------------------------------------------------------------------


@dataclass
class RedisConnection:
    """One TCP connection through the tap (a server opens two: publish, subscribe)."""

    number: int
    to_redis: RespDecoder = field(default_factory=RespDecoder)
    from_redis: RespDecoder = field(default_factory=lambda: RespDecoder(inline=False))
    decoding: bool = True
    bytes_in: int = 0  # server -> Redis
    bytes_out: int = 0  # Redis -> server


class RedisTap(LoopbackProxy):
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
        #: False: keep relaying and counting, record nothing in the trace.
        self.recording = True
        self.connections: list[RedisConnection] = []
        #: Adapter payloads (JSON text) the server published / Redis pushed, in order,
        #: whether recording or not.
        self.published: list[str] = []
        self.pushed: list[str] = []
        #: Channels the server's subscription was confirmed for.
        self.subscribed: set[str] = set()
        #: What was left out of the trace: command names, "reply", "subscribe".
        self.skipped: Counter[str] = Counter()
        #: Exceptions caught while recording (the relayed bytes were not affected).
        self.failures: list[str] = []
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

    # -- relaying ----------------------------------------------------------------------

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = RedisConnection(len(self.connections) + 1)
        self.connections.append(conn)
        # Refused: the server sees its connection close, as if Redis were down.
        await self.relay_both_ways(
            reader, writer, lambda src, dst, direction: self._pump(conn, src, dst, direction)
        )

    async def _pump(
        self,
        conn: RedisConnection,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                dst.write(data)  # relay first, unchanged; recording cannot touch it
                self._observe(conn, direction, data)
                await dst.drain()
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()

    # -- recording ---------------------------------------------------------------------

    def _observe(self, conn: RedisConnection, direction: Direction, data: bytes) -> None:
        if direction is C2S:
            conn.bytes_in += len(data)
        else:
            conn.bytes_out += len(data)
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
        words = [_text(x) for x in value] if isinstance(value, list) else []
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


__all__ = [
    "CHANNEL",
    "Push",
    "RedisTap",
    "RespDecoder",
    "RespError",
    "RespMessage",
    "RespProtocolError",
    "SimpleString",
    "adapter_fields",
    "describe",
    "encode_command",
    "encode_push",
    "reencode",
]
