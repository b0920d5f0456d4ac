"""The one seam between this package and the undocumented parts of the libraries it uses.

Everything else in ``tutorial/`` uses public, documented APIs. Where a library's private
or undocumented name is worth it, the access lives here, and nowhere else:

* [run_in_connection_thread][tutorial.compat.run_in_connection_thread] (aiosqlite
  ``Connection._execute``, ``._conn``): the SQLite group commit runs a whole
  transaction in one trip to the database thread.
* [install_engineio_hooks][tutorial.compat.install_engineio_hooks] (python-engineio
  ``AsyncServer._async``, ``async_drivers.aiohttp.WebSocket``, ``create_queue``): close
  cleanly on a frame engineio cannot decode, know each WebSocket's transport, bound each
  socket's send queue, see each client's own address, answer permessage-deflate offers.
* [engineio_socket_table][tutorial.compat.engineio_socket_table] and
  [socket_state][tutorial.compat.socket_state] (python-engineio ``AsyncServer.sockets``,
  ``AsyncSocket.closed``, ``.closing``, ``.upgraded``, ``.upgrading``, ``.last_ping``),
  with ``send_queue_of``: the broadcast fast path ([tutorial.chat.fanout][]) tells a
  WebSocket session it may write to from one it must queue for.
* [route_engineio_pings][tutorial.compat.route_engineio_pings],
  [ping_due][tutorial.compat.ping_due], [ping_sent][tutorial.compat.ping_sent],
  [pong_missing][tutorial.compat.pong_missing],
  [close_if_silent][tutorial.compat.close_if_silent] and
  [forget_if_closed][tutorial.compat.forget_if_closed] (python-engineio
  ``AsyncServer.start_background_task``, ``AsyncSocket._send_ping``, ``.last_ping``,
  ``.check_ping_timeout``, ``AsyncServer.sockets``): the ping wheel
  ([tutorial.chat.pingwheel][]) keeps every session's heartbeat with one timer.
* [fanout_manager][tutorial.compat.fanout_manager] (python-socketio ``AsyncManager.emit``'s
  argument handling, ``BaseManager.rooms``, and ``AsyncPubSubManager._handle_emit``
  delivering through ``super().emit``): a broadcast, local or from Redis, is encoded once
  and handed to the fast path.
* [engineio_sessions][tutorial.compat.engineio_sessions] (python-engineio
  ``AsyncServer.sockets``): close every session when the server stops.
* [engineio_socket][tutorial.compat.engineio_socket],
  [send_queue_of][tutorial.compat.send_queue_of] and
  [end_engineio_socket][tutorial.compat.end_engineio_socket] (python-engineio
  ``AsyncServer.sockets``, ``AsyncSocket.queue``, ``.closed``, ``.close``): the send-queue
  bound finds a session's queue and ends a session whose client does not read.
* [queue_packet][tutorial.compat.queue_packet] (python-engineio ``AsyncSocket.queue``,
  ``.closed``, ``.last_ping``): a broadcast encoded once and queued to each socket,
  one task less per delivery.
* [start_client_manager][tutorial.compat.start_client_manager] and
  [stop_redis_manager][tutorial.compat.stop_redis_manager] (python-socketio
  ``AsyncServer.manager_initialized``, ``AsyncPubSubManager.thread``,
  ``AsyncRedisManager.redis``): subscribe to Redis before the first client connects;
  release the listener on stop.
* [parse_redis_sentinel_url][tutorial.compat.parse_redis_sentinel_url] (python-socketio
  ``redis_manager.parse_redis_sentinel_url``): presence reads a Sentinel URL as the
  manager does.
* [sid_of_engineio][tutorial.compat.sid_of_engineio] and
  [engineio_of_sid][tutorial.compat.engineio_of_sid] (python-socketio
  ``BaseManager.sid_from_eio_sid``, ``eio_sid_from_sid``): the live view maps a page's
  Engine.IO session to its Socket.IO sid.
* [sample_websocket_key][tutorial.compat.sample_websocket_key] (the ``os`` reference
  of ``aiohttp.client``): deterministic traces send the RFC 6455 sample key.
* [argparse_actions][tutorial.compat.argparse_actions],
  [argparse_subcommands][tutorial.compat.argparse_subcommands] and
  [argparse_usage][tutorial.compat.argparse_usage] (the standard library's
  ``ArgumentParser._actions`` and ``_SubParsersAction``): ``docs/reference/cli.md`` is
  generated from the command's parser, which argparse offers no public way to read.

Each access is checked by ``tests/test_compat.py`` against the versions in
[CHECKED][tutorial.compat.CHECKED]: the test runs the access for real and fails, naming
the library and the function here, when an upgrade moves outside those versions or
breaks the access. The version bounds in ``pyproject.toml`` keep a fresh install inside
them. To add an access: write the function here, add its library's range to
[CHECKED][tutorial.compat.CHECKED], and a test beside the others.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from typing import Any, TypeVar

T = TypeVar("T")

CHECKED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "aiosqlite": ((0, 20), (0, 22)),
    "python-engineio": ((4, 13), (4, 15)),
    "python-socketio": ((5, 16), (5, 18)),
    "aiohttp": ((3, 9), (3, 14)),
    "python": ((3, 11), (3, 13)),  # argparse, in the standard library
}
"""The versions every access below was checked against: ``(first, last)`` inclusive, compared
on ``(major, minor)``. ``tests/test_compat.py`` fails outside them.
"""


def version_checked(distribution: str) -> bool:
    """Whether the installed ``distribution`` is within [CHECKED][tutorial.compat.CHECKED]."""
    first, last = CHECKED[distribution]
    if distribution == "python":
        major, minor = sys.version_info[:2]
        return first <= (major, minor) <= last
    major, minor = (int(x) for x in version(distribution).split(".")[:2])
    return first <= (major, minor) <= last


# -- aiosqlite ------------------------------------------------------------------------


async def run_in_connection_thread(db: Any, fn: Callable[..., T], *args: Any) -> T:
    """``fn(sqlite3_connection, *args)`` in aiosqlite's own database thread, one trip.

    aiosqlite sends every statement to its thread separately; the group commit runs a
    whole transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) as one function, queued
    behind the statements already sent, on the same ``sqlite3.Connection``.

    Reaches: ``aiosqlite.Connection._execute`` (queue a callable to the thread) and
    ``._conn`` (the ``sqlite3.Connection``); checked with aiosqlite 0.20-0.22.
    """
    result: T = await db._execute(fn, db._conn, *args)
    return result


# -- python-engineio ----------------------------------------------------------------------


def install_engineio_hooks(
    eio: Any,
    *,
    accept_frame: Callable[[Any], bool],
    on_websocket: Callable[[Any, Any, Any], None],
    translate: Callable[[Any, dict[str, Any]], None],
    queue_factory: Callable[..., Any],
    websocket_compression: bool = True,
) -> None:
    """Put the server's pieces into python-engineio (an ``AsyncServer`` in aiohttp mode).

    * WebSocket frames ``accept_frame(frame)`` refuses end the connection: python-engineio
      decodes each frame outside its error handling, and its aiohttp driver's
      ``WebSocket.wait()`` answering ``None`` makes it close the session at once and run
      ``disconnect``. On a WebSocket's first frame, ``on_websocket(socket, transport,
      response)`` gets the Engine.IO socket, the aiohttp transport under it and the
      ``aiohttp.web.WebSocketResponse``.
    * ``websocket_compression=False`` declines permessage-deflate (RFC 7692) when a client
      offers it, as Node's socket.io 4 does by default: the driver's ``__call__`` is the
      library's, with ``compress=False`` given to ``WebSocketResponse``.
    * ``translate(request, environ)`` completes every request's environ (the driver's
      ``translate_request`` writes ``127.0.0.1`` as everybody's address).
    * Every new socket's queue comes from ``queue_factory`` (``AsyncServer.create_queue``,
      a public method, replaced on this instance).

    Reaches: ``AsyncServer._async`` (the driver table: ``websocket``,
    ``translate_request``), ``engineio.async_drivers.aiohttp.WebSocket`` and its
    ``handler.__self__`` (the socket) and ``environ["aiohttp.request"]``; checked with
    python-engineio 4.13-4.15.
    """
    from aiohttp.web import WebSocketResponse
    from engineio.async_drivers import aiohttp as driver

    class GuardedWebSocket(driver.WebSocket):  # type: ignore[misc]
        _told = False

        async def __call__(self, environ: dict[str, Any]) -> Any:
            if websocket_compression:
                return await super().__call__(environ)
            # python-engineio 4.15's driver, with compress=False.
            request = environ["aiohttp.request"]
            self._sock = WebSocketResponse(
                max_msg_size=self.server.max_http_buffer_size, compress=False
            )
            await self._sock.prepare(request)
            self.environ = environ
            await self.handler(self)
            return self._sock

        async def wait(self) -> Any:
            if not self._told:
                self._told = True
                socket = getattr(self.handler, "__self__", None)
                request = getattr(self, "environ", {}).get("aiohttp.request")
                if socket is not None and request is not None:
                    on_websocket(socket, request.transport, self._sock)
            frame = await super().wait()
            return frame if accept_frame(frame) else None

    driver_translate = eio._async["translate_request"]

    def translate_request(request: Any) -> dict[str, Any]:
        environ: dict[str, Any] = driver_translate(request)
        translate(request, environ)
        return environ

    eio._async = {
        **eio._async,
        "websocket": GuardedWebSocket,
        "translate_request": translate_request,
    }
    eio.create_queue = queue_factory


def engineio_sessions(eio: Any) -> list[Any]:
    """Every open Engine.IO session of the server (``engineio.AsyncSocket`` objects).

    Reaches: ``AsyncServer.sockets``; checked with python-engineio 4.13-4.15.
    """
    return list(eio.sockets.values())


def engineio_socket(eio: Any, eio_sid: str) -> Any | None:
    """The open Engine.IO session ``eio_sid`` (an ``engineio.AsyncSocket``), or None.

    Reaches: ``AsyncServer.sockets``; checked with python-engineio 4.13-4.15.
    """
    return eio.sockets.get(eio_sid)


def engineio_socket_table(eio: Any) -> dict[str, Any]:
    """The live ``{eio_sid: engineio.AsyncSocket}`` table of the server (not a copy: for a
    loop over many sessions; do not change it).

    Reaches: ``AsyncServer.sockets``; checked with python-engineio 4.13-4.15.
    """
    table: dict[str, Any] = eio.sockets
    return table


WEBSOCKET = "websocket"
"""[socket_state][tutorial.compat.socket_state]: open, on its WebSocket (upgrade done)."""
POLLING = "polling"
"""[socket_state][tutorial.compat.socket_state]: open, on HTTP long-polling or upgrading."""


def socket_state(eio: Any, socket: Any, now: float) -> str:
    """Where a session stands for a sender: [GONE][tutorial.compat.GONE] (closed or
    closing), [SLOW][tutorial.compat.SLOW] (missed its pings: the library's send closes
    it), [POLLING][tutorial.compat.POLLING] or [WEBSOCKET][tutorial.compat.WEBSOCKET].

    Reaches: ``AsyncSocket.closed``, ``.closing``, ``.upgraded``, ``.upgrading`` and
    ``.last_ping``, and ``AsyncServer.ping_timeout``; checked with python-engineio
    4.13-4.15.
    """
    if socket.closed or socket.closing:
        return GONE
    last_ping = socket.last_ping
    if last_ping and now - last_ping > eio.ping_timeout:
        return SLOW
    if socket.upgraded and not socket.upgrading:
        return WEBSOCKET
    return POLLING


def send_queue_of(socket: Any) -> Any:
    """The queue an Engine.IO session's writer takes its packets from.

    Reaches: ``AsyncSocket.queue``; checked with python-engineio 4.13-4.15.
    """
    return getattr(socket, "queue", None)


async def end_engineio_socket(socket: Any, *, stop_writer: bool) -> None:
    """End one Engine.IO session now, without waiting for its client (it may not read).

    The session's CLOSE is queued (``close(wait=False, abort=False)``); with
    ``stop_writer`` (a WebSocket session) the writer's stop signal follows (``None`` on
    its queue): the writer sends what it has and closes with code 1000.

    Reaches: ``AsyncSocket.closed``, ``.close(wait=, abort=)``, ``.queue``; checked with
    python-engineio 4.13-4.15.
    """
    if not socket.closed:
        with contextlib.suppress(Exception):
            await socket.close(wait=False, abort=False)
    if stop_writer:
        socket.queue.put_nowait(None)


def route_engineio_pings(eio: Any, schedule: Callable[[Any], None]) -> None:
    """Hand each session's next ping to ``schedule(socket)`` instead of a task per ping.

    python-engineio starts one task per session per ping cycle (``schedule_ping`` starts
    ``AsyncSocket._send_ping``: sleep ``ping_interval``, then send PING), at connect and
    after each PONG. This server's ``start_background_task`` passes that one target to
    ``schedule`` and starts every other the library's way. The caller then sends the
    ping with [ping_sent][tutorial.compat.ping_sent] and the packet from
    [ping_packet][tutorial.compat.ping_packet].

    Reaches: ``AsyncServer.start_background_task`` (set on the instance: other servers
    in the process keep the library's), ``AsyncSocket._send_ping`` as
    ``schedule_ping``'s target; checked with python-engineio 4.13-4.15.
    """
    from engineio.async_socket import AsyncSocket

    send_ping = AsyncSocket._send_ping
    start = eio.start_background_task

    def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__func__", None) is send_ping and not args and not kwargs:
            schedule(target.__self__)
            return None
        return start(target, *args, **kwargs)

    eio.start_background_task = start_background_task


def engineio_sid(socket: Any) -> str:
    """An Engine.IO session's id.

    Reaches: ``AsyncSocket.sid``; checked with python-engineio 4.13-4.15.
    """
    sid: str = socket.sid
    return sid


def ping_packet() -> Any:
    """The Engine.IO PING packet (``2``), as ``AsyncSocket._send_ping`` sends it."""
    from engineio import packet

    return packet.Packet(packet.PING)


def ping_due(socket: Any) -> bool:
    """May this session get its ping now? Not when it is closing or closed (what
    ``_send_ping`` checks after its sleep).

    Reaches: ``AsyncSocket.closing``, ``.closed``; checked with python-engineio 4.13-4.15.
    """
    return not socket.closing and not socket.closed


def ping_sent(socket: Any) -> float:
    """Mark the ping as sent now (``last_ping``: the PONG clears it; without one, the
    session is closed ``ping_timeout`` later) and answer that time.

    Reaches: ``AsyncSocket.last_ping``; checked with python-engineio 4.13-4.15.
    """
    now = time.time()
    socket.last_ping = now
    return now


def pong_missing(socket: Any, sent: float) -> bool:
    """Is the ping sent at ``sent`` still unanswered (no PONG since, session open)?

    Reaches: ``AsyncSocket.last_ping``, ``.closing``, ``.closed``; checked with
    python-engineio 4.13-4.15.
    """
    return socket.last_ping == sent and ping_due(socket)


async def close_if_silent(socket: Any) -> None:
    """The library's own check: close a session whose ping went unanswered for
    ``ping_timeout`` (its ``disconnect`` runs as for any other close).

    Reaches: ``AsyncSocket.check_ping_timeout``; checked with python-engineio 4.13-4.15.
    """
    with contextlib.suppress(Exception):
        await socket.check_ping_timeout()


def forget_if_closed(eio: Any, socket: Any) -> None:
    """Drop a closed session from the server's table, as the library's service task
    (which this server does not start: ``monitor_clients=False``) would.

    Reaches: ``AsyncServer.sockets``, ``AsyncSocket.sid``, ``.closed``; checked with
    python-engineio 4.13-4.15.
    """
    if socket.closed and eio.sockets.get(socket.sid) is socket:
        del eio.sockets[socket.sid]


QUEUED = "queued"
"""[queue_packet][tutorial.compat.queue_packet] put the packet on the session's queue."""
GONE = "gone"
"""[queue_packet][tutorial.compat.queue_packet] found the session closed or unknown."""
SLOW = "slow"
"""[queue_packet][tutorial.compat.queue_packet] found a session that missed its pings."""


def queue_packet(eio: Any, eio_sid: str, packet: Any, now: float | None = None) -> str:
    """Put an encoded Engine.IO packet straight on one session's send queue.

    What python-engineio's own ``send_packet`` does for a healthy session, minus the
    task python-socketio creates per recipient. Answers [QUEUED][tutorial.compat.QUEUED];
    [GONE][tutorial.compat.GONE] when the session is closed or unknown (the library
    skips it too); [SLOW][tutorial.compat.SLOW] when it missed its pings, in which case
    nothing was queued and the caller should use ``eio.send_packet``, which closes it.

    Reaches: ``AsyncServer.sockets``, ``AsyncSocket.closed``, ``.last_ping`` and
    ``.queue``; checked with python-engineio 4.13-4.15.
    """
    socket = eio.sockets.get(eio_sid)
    if socket is None or socket.closed:
        return GONE
    last_ping = socket.last_ping
    if last_ping and (now if now is not None else time.time()) - last_ping > eio.ping_timeout:
        return SLOW
    socket.queue.put_nowait(packet)
    return QUEUED


# -- python-socketio ----------------------------------------------------------------------

Deliver = Callable[[str, list[str]], Awaitable[None]]
"""``deliver(encoded, eio_sids)``: send one encoded Socket.IO packet (the text after the
Engine.IO ``4``) to each of these Engine.IO sessions of this server."""


def fanout_manager(redis_url: str | None, deliver: Deliver) -> Any:
    """A python-socketio client manager whose broadcasts go to ``deliver``.

    ``AsyncManager`` (one server) or ``AsyncRedisManager`` (``redis_url``), subclassed so
    that the local half of every ``emit`` without a callback (``sio.emit(..., room=r)``,
    and, with Redis, each message another server published) encodes the Socket.IO
    packet once, exactly as ``AsyncManager.emit`` does, and hands it with the room's
    Engine.IO sessions here to ``deliver``. An emit with a callback or binary
    attachments, and everything else the manager does, is the library's.

    With Redis the subclass sits *below* ``AsyncPubSubManager`` in the method order:
    ``emit`` still publishes, and the pub/sub manager's ``_handle_emit`` (its own
    message, and every message from another server) delivers through ``super().emit``,
    which is this one.

    Reaches: ``AsyncManager.emit``'s argument handling (copied from python-socketio
    5.18), ``BaseManager.rooms``, ``AsyncServer.packet_class`` and
    ``AsyncPubSubManager._handle_emit``'s ``super().emit``; checked with python-socketio
    5.16-5.18.
    """
    import socketio
    from socketio import packet as sio_packet

    class FanoutEmit(socketio.AsyncManager):  # type: ignore[misc]
        async def emit(
            self,
            event: str,
            data: Any,
            namespace: str,
            room: Any = None,
            skip_sid: Any = None,
            callback: Any = None,
            to: Any = None,
            **kwargs: Any,
        ) -> None:
            kwargs.pop("ignore_queue", None)  # AsyncServer.emit passes it; a Redis matter
            if callback is not None or kwargs:
                await super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)
                return
            room = to or room
            if namespace not in self.rooms:
                return
            args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
            encoded = self.server.packet_class(
                sio_packet.EVENT, namespace=namespace, data=[event, *args]
            ).encode()
            if not isinstance(encoded, str):  # binary attachments: the library's way
                await super().emit(event, data, namespace, room, skip_sid, callback, to)
                return
            skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
            eio_sids = [e for sid, e in self.get_participants(namespace, room) if sid not in skip]
            if eio_sids:
                await deliver(encoded, eio_sids)

    if redis_url is None:
        return FanoutEmit()

    class FanoutRedisManager(socketio.AsyncRedisManager, FanoutEmit):  # type: ignore[misc]
        pass

    return FanoutRedisManager(redis_url)


def parse_redis_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str | None, dict[str, Any]]:
    """Split a ``redis+sentinel://`` URL the way python-socketio's Redis manager does.

    Returns ``(sentinels, service, connection options)``, so that presence and the
    manager name the same master for one URL.

    Reaches: ``socketio.redis_manager.parse_redis_sentinel_url`` (undocumented); checked
    with python-socketio 5.16-5.18.
    """
    from socketio.redis_manager import parse_redis_sentinel_url as parse

    sentinels, service, options = parse(url)
    return sentinels, service, options


def start_client_manager(sio: Any) -> None:
    """Initialise the server's client manager now (a Redis manager subscribes).

    python-socketio initialises it when the first client connects; a scenario that
    wants every server listening before anything is published starts it early.

    Reaches: ``AsyncServer.manager_initialized``; checked with python-socketio 5.16-5.18.
    """
    if not sio.manager_initialized:
        sio.manager_initialized = True
        sio.manager.initialize()


async def stop_redis_manager(sio: Any) -> None:
    """Cancel a Redis manager's listener task and close its Redis client (no-op otherwise).

    Reaches: ``AsyncPubSubManager.thread`` and ``AsyncRedisManager.redis``; checked with
    python-socketio 5.16-5.18.
    """
    import asyncio

    listener = getattr(sio.manager, "thread", None)
    if isinstance(listener, asyncio.Task):
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    redis_client = getattr(sio.manager, "redis", None)
    if redis_client is not None:
        with contextlib.suppress(Exception):
            await redis_client.aclose()


def sid_of_engineio(sio: Any, eio_sid: str, namespace: str = "/") -> str | None:
    """The Socket.IO sid of an Engine.IO session in ``namespace`` (None if not connected).

    Reaches: ``BaseManager.sid_from_eio_sid``; checked with python-socketio 5.16-5.18.
    """
    sid: str | None = sio.manager.sid_from_eio_sid(eio_sid, namespace)
    return sid


def engineio_of_sid(sio: Any, sid: str, namespace: str = "/") -> str | None:
    """The Engine.IO session of a Socket.IO sid in ``namespace`` (None if unknown).

    Reaches: ``BaseManager.eio_sid_from_sid``; checked with python-socketio 5.16-5.18.
    """
    with contextlib.suppress(Exception):
        eio_sid: str | None = sio.manager.eio_sid_from_sid(sid, namespace)
        return eio_sid
    return None


# -- aiohttp --------------------------------------------------------------------------------

SAMPLE_NONCE = b"the sample nonce"
"""RFC 6455 section 1.3: these 16 bytes, base64-encoded, are the sample key
``dGhlIHNhbXBsZSBub25jZQ==``, whose accept value is ``s3pPLMBiTxaQ9kYGzzhZRbK+xOo=``.
"""


class _SampleNonceOs(types.ModuleType):
    """Stands in for ``os`` inside ``aiohttp.client``: ``urandom(16)`` is the sample nonce."""

    def __init__(self) -> None:
        super().__init__("os")

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def urandom(n: int) -> bytes:
        return SAMPLE_NONCE if n == 16 else os.urandom(n)


@contextlib.contextmanager
def sample_websocket_key() -> Iterator[None]:
    """While active, aiohttp's WebSocket client sends the RFC 6455 sample key.

    aiohttp draws the ``Sec-WebSocket-Key`` in ``aiohttp.client`` with
    ``base64.b64encode(os.urandom(16))``, and that is the only ``os.urandom(16)`` in
    that module; a key passed in ``headers`` is overwritten. We swap the module's
    ``os`` reference for a shim that answers ``urandom(16)`` with
    ``b"the sample nonce"`` and passes everything else to the real ``os``; nothing else
    (the server, the masking keys, other modules) is touched, and the reference is
    restored on exit. Not for production: a fixed key is exactly what RFC 6455
    section 10.3 asks clients not to send.

    Reaches: the ``os`` attribute of ``aiohttp.client``; checked with aiohttp 3.9-3.14.
    """
    import aiohttp.client as client_module

    namespace = vars(client_module)
    real = namespace["os"]
    namespace["os"] = _SampleNonceOs()
    try:
        yield
    finally:
        namespace["os"] = real


# -- argparse (the standard library) -----------------------------------------------------


def argparse_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every argument ``parser`` accepts, in the order they were added (help included).

    Reaches: ``ArgumentParser._actions``; checked with Python 3.11-3.13.
    """
    return list(parser._actions)


def argparse_subcommands(
    parser: argparse.ArgumentParser,
) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """``(name, parser, help)`` of each subcommand of ``parser``, in the order added.

    Reaches: ``argparse._SubParsersAction`` and its ``_choices_actions``; checked with
    Python 3.11-3.13.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return []


def argparse_usage(parser: argparse.ArgumentParser, width: int = 88) -> str:
    """``parser``'s usage line(s) at a fixed ``width`` (not the terminal's), without the
    ``usage:`` prefix.

    Reaches: ``ArgumentParser._actions`` and ``._mutually_exclusive_groups``; checked
    with Python 3.11-3.13.
    """
    formatter = argparse.HelpFormatter(parser.prog, width=width)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    usage = formatter.format_help().strip().removeprefix("usage: ")
    return "\n".join(line.removeprefix(" " * 7) for line in usage.split("\n"))


__all__ = [
    "CHECKED",
    "GONE",
    "POLLING",
    "QUEUED",
    "SAMPLE_NONCE",
    "SLOW",
    "WEBSOCKET",
    "Deliver",
    "argparse_actions",
    "argparse_subcommands",
    "argparse_usage",
    "engineio_of_sid",
    "engineio_sessions",
    "engineio_socket",
    "engineio_socket_table",
    "fanout_manager",
    "install_engineio_hooks",
    "queue_packet",
    "run_in_connection_thread",
    "sample_websocket_key",
    "sid_of_engineio",
    "socket_state",
    "start_client_manager",
    "stop_redis_manager",
    "version_checked",
]
