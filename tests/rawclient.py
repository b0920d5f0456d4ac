"""Test helpers: clients that record what the chat server sends, without sleeping.

* :class:`Recorder` wraps a python-socketio ``AsyncClient`` and puts every event it
  receives (and its connect, connect_error, disconnect and acks) into one ordered log
  and one ``asyncio.Queue``. Tests wait with :meth:`Recorder.next`, which skips other
  events, and check absence with :meth:`Recorder.received` after a later positive
  event (a *marker*) has arrived: the server keeps per-connection order.
* :class:`RawSocket` speaks Engine.IO v4 / Socket.IO v5 by hand over a plain
  WebSocket (the ``websockets`` library), so tests can send packets that no
  well-behaved client library would produce.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 5.0
_ids = itertools.count(1)


def unique_id(prefix: str = "m") -> str:
    """A clientMsgId that no other message of this test run uses."""
    return f"{prefix}-{next(_ids)}"


Match = Callable[[Any], bool]


class Recorder:
    """A python-socketio client whose received events land in an ordered queue."""

    def __init__(self, url: str, name: str = "", transports: tuple[str, ...] = ("websocket",)):
        self.url = url
        self.name = name
        self.transports = list(transports)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.log: list[tuple[str, Any]] = []
        self.sio.on("*", self._on_any)
        self.sio.on("connect", self._on_connect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    # -- recording ---------------------------------------------------------------

    def _record(self, event: str, data: Any) -> None:
        self.log.append((event, data))
        self.queue.put_nowait((event, data))

    async def _on_any(self, event: str, *args: Any) -> None:
        self._record(event, args[0] if len(args) == 1 else list(args))

    async def _on_connect(self) -> None:
        self._record("connect", None)

    async def _on_connect_error(self, data: Any = None) -> None:
        self._record("connect_error", data)

    async def _on_disconnect(self, reason: Any = None) -> None:
        self._record("disconnect", reason)

    # -- connecting --------------------------------------------------------------

    async def connect(self, auth: Any = None) -> None:
        await self.sio.connect(
            self.url, transports=self.transports, auth=auth, wait_timeout=TIMEOUT
        )

    async def connect_refused(self, auth: Any) -> Any:
        """Connect with ``auth`` that the server must refuse; return the connect_error data."""
        try:
            await self.connect(auth)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError(f"{self.name}: the server accepted auth={auth!r}")
        return await self.next("connect_error")

    async def login(self, user: str, rooms: tuple[str, ...] = ()) -> dict[str, Any]:
        """Connect with the CONNECT auth (password = user name), then join ``rooms``."""
        await self.connect({"username": user, "password": user})
        confirmed = await self.next("connect-confirmed")
        for room in rooms:
            await self.join(room)
        return confirmed

    async def join(self, room: str, **extra: Any) -> dict[str, Any]:
        ack = await self.call("join-room", {"roomId": room, **extra})
        assert ack["ok"] is True, ack
        return await self.next("room-joined", match=lambda d: d["roomId"] == room)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        # The engineio client may still be shutting down a half-open transport.
        await self.sio.eio.disconnect()

    # -- talking -----------------------------------------------------------------

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    async def call(self, event: str, data: Any = None, timeout: float = TIMEOUT) -> Any:
        """Emit with an ack callback; the ack is also put in the log as ``("ack", ...)``."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            value = args[0] if len(args) == 1 else (list(args) if args else None)
            self._record("ack", {"event": event, "value": value})
            if not done.done():
                done.set_result(value)

        await self.sio.emit(event, data, callback=on_ack)
        return await asyncio.wait_for(done, timeout)

    async def say(self, room: str, text: str) -> dict[str, Any]:
        """Send a message and wait for its own echo: also a marker for absence checks."""
        msg_id = unique_id(self.name or "say")
        ack = await self.call("send-message", {"roomId": room, "text": text, "clientMsgId": msg_id})
        assert ack["ok"] is True, ack
        return await self.next("new-message", match=lambda d: d["clientMsgId"] == msg_id)

    # -- waiting -----------------------------------------------------------------

    async def next(self, event: str, timeout: float = TIMEOUT, match: Match | None = None) -> Any:
        """The data of the next ``event`` (that ``match`` accepts); other events are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no {event!r} within {timeout}s; got {self.names()}"
                )
            try:
                name, data = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                continue
            if name == event and (match is None or match(data)):
                return data

    async def nothing(self, event: str, within: float = 0.3) -> None:
        """Assert that no ``event`` arrives within a short, bounded time."""
        try:
            data = await self.next(event, timeout=within)
        except AssertionError:
            return
        raise AssertionError(f"{self.name}: unexpected {event!r}: {data!r}")

    def received(self, event: str) -> list[Any]:
        """Everything received so far under this event name, in order."""
        return [data for name, data in self.log if name == event]

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


class RawSocket:
    """Engine.IO v4 / Socket.IO v5 spoken by hand over a plain WebSocket."""

    def __init__(self, ws: ClientConnection, handshake: dict[str, Any]) -> None:
        self.ws = ws
        self.handshake = handshake
        self.frames: list[str | bytes] = []
        self.close_code: int | None = None
        """The code of the server's close frame, once :meth:`closed` has seen it."""

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        ws = await ws_connect(url, open_timeout=TIMEOUT, close_timeout=1)
        opening = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert isinstance(opening, str) and opening.startswith("0"), opening
        return cls(ws, json.loads(opening[1:]))

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next frame that is not an Engine.IO ping (pings are answered)."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            if frame == "2":
                await self.ws.send("3")
                continue
            self.frames.append(frame)
            return frame

    async def connect(self, auth: Any = None) -> str:
        """Send the Socket.IO CONNECT (``40`` or ``40{auth}``); return the reply packet."""
        await self.send("40" if auth is None else "40" + json.dumps(auth))
        while True:
            frame = await self.recv()
            if isinstance(frame, str) and frame.startswith(("40", "44")):
                return frame

    async def until(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """The next text frame that starts with ``prefix``; other frames are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(deadline - loop.time(), 0.001))
            if isinstance(frame, str) and frame.startswith(prefix):
                return frame

    async def event(self, name: str, timeout: float = TIMEOUT) -> Any:
        """The payload of the next Socket.IO EVENT ``name``; other frames are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(deadline - loop.time(), 0.001))
            if isinstance(frame, str) and frame.startswith("42["):
                decoded = json.loads(frame[2:])
                if decoded[0] == name:
                    return decoded[1] if len(decoded) == 2 else decoded[1:]

    async def ack(self, ack_id: int, timeout: float = TIMEOUT) -> Any:
        """The payload of the Socket.IO ACK numbered ``ack_id``."""
        prefix = f"43{ack_id}["
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(deadline - loop.time(), 0.001))
            if isinstance(frame, str) and frame.startswith(prefix):
                decoded = json.loads(frame[len(prefix) - 1 :])
                return decoded[0] if decoded else None

    async def call(self, ack_id: int, event: str, payload: Any) -> Any:
        await self.send(f"42{ack_id}" + json.dumps([event, payload]))
        return await self.ack(ack_id)

    async def closed(self, timeout: float = TIMEOUT) -> list[str | bytes]:
        """Read until the server closes the WebSocket; return the frames seen meanwhile."""
        seen: list[str | bytes] = []
        try:
            while True:
                seen.append(await self.recv(timeout))
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
            return seen

    def abort(self) -> None:
        """Drop the TCP connection at once: no close frame, no Engine.IO CLOSE."""
        self.ws.transport.abort()

    async def close(self) -> None:
        await self.ws.close()


class RawPolling:
    """Engine.IO v4 over HTTP long-polling, spoken by hand with aiohttp: each POST carries
    packets joined by ``\\x1e``, each GET returns what the server queued."""

    def __init__(self, session: aiohttp.ClientSession, url: str, sid: str) -> None:
        self.session = session
        self.url = url
        self.sid = sid

    @classmethod
    async def open(cls, port: int) -> RawPolling:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
        async with session.get(url) as response:
            opening = await response.text()
        assert opening.startswith("0"), opening
        sid = json.loads(opening[1:])["sid"]
        return cls(session, f"{url}&sid={sid}", sid)

    async def post(self, *packets: str) -> int:
        """POST ``packets`` in one body; return the HTTP status."""
        async with self.session.post(self.url, data="\x1e".join(packets).encode()) as response:
            await response.read()
            return response.status

    async def get(self) -> tuple[int, list[str]]:
        """One long-poll GET: its status and the packets it carried."""
        async with self.session.get(self.url) as response:
            body = await response.text()
            return response.status, body.split("\x1e") if body else []

    async def until(self, prefix: str) -> str:
        """GET until a packet starting with ``prefix`` arrives (pings are answered)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while loop.time() < deadline:
            status, packets = await self.get()
            assert status == 200, status
            for packet in packets:
                if packet == "2":
                    await self.post("3")
                elif packet.startswith(prefix):
                    return packet
        raise AssertionError(f"no packet {prefix!r} within {TIMEOUT} s")

    async def close(self) -> None:
        await self.session.close()
