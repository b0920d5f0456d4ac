"""RESP, the Redis serialization protocol, sans I/O: bytes in, whole messages out.

python-socketio's ``AsyncRedisManager`` talks RESP to Redis: commands are arrays of
bulk strings (``*3\r\n$7\r\nPUBLISH\r\n$8\r\nsocketio\r\n$N\r\n<json>\r\n``),
and pub/sub messages come back as arrays (RESP2) or out-of-band pushes (RESP3, which
redis-py 5+ negotiates with ``HELLO 3``). From the spec
(https://redis.io/docs/latest/develop/reference/protocol-spec/), the first byte says the
type:

    +  simple string   -  error          :  integer        $  bulk string
    *  array           _  null           #  boolean        ,  double
    (  big number      !  bulk error     =  verbatim       %  map
    ~  set             |  attribute      >  push

A [RespDecoder][tutorial.protocol.resp.RespDecoder] takes bytes as they arrive and
returns every whole top-level value with the exact bytes it came in, the same whatever
the chunking. [encode_command][tutorial.protocol.resp.encode_command] and
[encode_push][tutorial.protocol.resp.encode_push] write the two shapes the lesson
needs; [reencode][tutorial.protocol.resp.reencode] rewrites the strings of one message
(deterministic traces) with the lengths recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tutorial.protocol.limits import MAX_RESP_BULK, MAX_RESP_LINE


class RespProtocolError(ValueError):
    """Bytes that are not RESP."""


class SimpleString(str):
    """``+OK``: a simple string (a ``str``, told apart from a bulk string's bytes)."""


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


class RespDecoder:
    """Feed bytes, get whole [RespMessage][tutorial.protocol.resp.RespMessage] values back; split
    anywhere, same result.

    Values: bulk string → ``bytes`` (null bulk → ``None``), simple string →
    [SimpleString][tutorial.protocol.resp.SimpleString], error →
    [RespError][tutorial.protocol.resp.RespError], integer → ``int``, array →
    ``list`` (null array → ``None``), push → [Push][tutorial.protocol.resp.Push], map → ``list`` of
    ``(key, value)`` pairs, null → ``None``, boolean → ``bool``, double → ``float``.
    A line that does not start with a type byte is an inline command (``PING\\r\\n``):
    a list of its words as ``bytes``.
    """

    def __init__(self, *, inline: bool = True) -> None:
        self.inline = inline
        """False: a line without a type byte is an error (Redis never sends inline)."""
        self.error: RespProtocolError | None = None
        """Set when bytes that are not RESP arrived; the decoder then stops."""
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RespMessage]:
        """The whole messages completed by ``data``. Bytes that are not RESP end the
        stream: the messages before them are returned, ``error`` is set, and
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
            if len(self._buffer) - start > MAX_RESP_LINE:
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
            if n > MAX_RESP_BULK:
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


__all__ = [
    "Push",
    "RespDecoder",
    "RespError",
    "RespMessage",
    "RespProtocolError",
    "SimpleString",
    "encode_command",
    "encode_push",
    "reencode",
]
