"""The one seam between this package and the undocumented parts of the libraries it uses.

Everything else in ``tutorial/`` uses public, documented APIs. Where a library's private
or undocumented name is worth it, the access lives here, and nowhere else:

* [run_in_connection_thread][tutorial.compat.run_in_connection_thread] (aiosqlite
  ``Connection._execute``, ``._conn``): the SQLite group commit runs a whole
  transaction in one trip to the database thread.
* [install_engineio_hooks][tutorial.compat.install_engineio_hooks] (python-engineio
  ``AsyncServer._async``, ``async_drivers.aiohttp.WebSocket``, ``create_queue``): close
  cleanly on a frame engineio cannot decode, know each WebSocket's transport, bound each
  socket's send queue, see each client's own address.
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
from collections.abc import Callable, Iterator
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
    on_websocket: Callable[[Any, Any], None],
    translate: Callable[[Any, dict[str, Any]], None],
    queue_factory: Callable[..., Any],
) -> None:
    """Put the server's pieces into python-engineio (an ``AsyncServer`` in aiohttp mode).

    * WebSocket frames ``accept_frame(frame)`` refuses end the connection: python-engineio
      decodes each frame outside its error handling, and its aiohttp driver's
      ``WebSocket.wait()`` answering ``None`` makes it close the session at once and run
      ``disconnect``. On a WebSocket's first frame, ``on_websocket(socket, transport)``
      gets the Engine.IO socket and the aiohttp transport under it.
    * ``translate(request, environ)`` completes every request's environ (the driver's
      ``translate_request`` writes ``127.0.0.1`` as everybody's address).
    * Every new socket's queue comes from ``queue_factory`` (``AsyncServer.create_queue``,
      a public method, replaced on this instance).

    Reaches: ``AsyncServer._async`` (the driver table: ``websocket``,
    ``translate_request``), ``engineio.async_drivers.aiohttp.WebSocket`` and its
    ``handler.__self__`` (the socket) and ``environ["aiohttp.request"]``; checked with
    python-engineio 4.13-4.15.
    """
    from engineio.async_drivers import aiohttp as driver

    class GuardedWebSocket(driver.WebSocket):  # type: ignore[misc]
        _told = False

        async def wait(self) -> Any:
            if not self._told:
                self._told = True
                socket = getattr(self.handler, "__self__", None)
                request = getattr(self, "environ", {}).get("aiohttp.request")
                if socket is not None and request is not None:
                    on_websocket(socket, request.transport)
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
    "QUEUED",
    "SAMPLE_NONCE",
    "SLOW",
    "argparse_actions",
    "argparse_subcommands",
    "argparse_usage",
    "engineio_of_sid",
    "engineio_sessions",
    "install_engineio_hooks",
    "queue_packet",
    "run_in_connection_thread",
    "sample_websocket_key",
    "sid_of_engineio",
    "start_client_manager",
    "stop_redis_manager",
    "version_checked",
]
