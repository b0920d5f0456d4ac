"""Live components for a notebook: a real server and real clients in the kernel's loop.

A chapter notebook starts a [LiveChat][tutorial.lab.LiveChat] with top-level ``await``, plays with
it,
and closes it in its teardown cell (closing twice is harmless):

    chat = await LiveChat(users=("alice", "bob")).start()
    await chat.clients["alice"].send("general", "hi")
    await chat.close()

Widgets that show a live chat watch it
([LiveChat.watch][tutorial.lab.LiveChat.watch]): when it closes (the teardown cell ran,
perhaps from *Run All*) they say so and offer to start it again, which
``await chat.start()`` does with fresh clients of the same users.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutorial.chat.server import ChatServer, ServerConfig
from tutorial.client import Backoff, ChatClient, ChatError, ClientOptions

if TYPE_CHECKING:
    from tutorial.leftovers import Leftovers


def fast_options(**overrides: Any) -> ClientOptions:
    """Client options with short backoffs, so that a notebook cell finishes in seconds."""
    options = ClientOptions(backoff=Backoff(base=0.1, factor=2.0, cap=1.0), max_retries=6)
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


_RUNNING: list[LiveChat] = []


async def teardown() -> Leftovers:
    """Close every LiveChat this kernel started, then look for what is still running.

    It checks for real: child processes of this kernel (a server, nginx, redis-server)
    and TCP ports this process still listens on, besides the kernel's own. Safe to run
    twice. The report names anything it finds.
    """
    from tutorial.leftovers import find_leftovers

    closed = 0
    while _RUNNING:
        await _RUNNING.pop().close()
        closed += 1
    return find_leftovers(closed)


class LiveChat:
    """A demo-mode server on a free port plus one connected client per user."""

    def __init__(
        self,
        users: Iterable[str] = ("alice", "bob"),
        rooms: Iterable[str] = ("general",),
        options: ClientOptions | None = None,
        joins: Mapping[str, Iterable[str]] | None = None,
        **config: Any,
    ) -> None:
        """``users`` each connect and join every room of ``rooms``; then, for each room
        of ``joins``, the users it lists join it too (the seed's membership, say)."""
        self.users = tuple(users)
        self.rooms = tuple(rooms)
        self.joins = {room: tuple(members) for room, members in (joins or {}).items()}
        self.options = options or fast_options()
        self._dir = Path(tempfile.mkdtemp(prefix="tutorial-lab-"))
        self.config = ServerConfig.for_demo(self._dir, **config)
        self.server: ChatServer | None = None
        self.clients: dict[str, ChatClient] = {}
        self.port: int | None = None
        #: ``"new"``, ``"running"``, ``"server stopped"`` or ``"closed"``.
        self.status = "new"
        self._watchers: list[Callable[[LiveChat], Any]] = []

    def watch(self, callback: Callable[[LiveChat], Any]) -> None:
        """Call ``callback(chat)`` whenever ``status`` changes (widgets redraw)."""
        self._watchers.append(callback)

    def _set_status(self, status: str) -> None:
        self.status = status
        for callback in list(self._watchers):
            callback(self)

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LiveChat:
        """Start the server and connect every user.

        After [close][tutorial.lab.LiveChat.close], this starts a fresh chat (new port,
        empty store) with the same users and rooms."""
        if self.status == "running":
            return self
        if self.closed:
            self._dir = Path(tempfile.mkdtemp(prefix="tutorial-lab-"))
            self.config.db_url = f"sqlite:///{self._dir}/chat.db"
            self.config.port = 0
        self.server = ChatServer(self.config)
        self.port = await self.server.start()
        self.config.port = self.port  # a restart comes back on the same port
        _RUNNING.append(self)
        for user in self.users:
            await self.add_client(user)
        for room, members in self.joins.items():
            for user in members:
                await self.clients[user].join(room)
        self._set_status("running")
        return self

    async def add_client(self, user: str, password: str | None = None) -> ChatClient:
        client = ChatClient(self.url, user, password or user, options=self.options, name=user)
        await client.connect()
        for room in self.rooms:
            await client.join(room)
        self.clients[user] = client
        return client

    async def stop_server(self) -> None:
        """Stop the server (clients start reconnecting)."""
        if self.server is not None:
            await self.server.stop()
            self.server = None
            if not self.closed:
                self._set_status("server stopped")

    async def restart_server(self) -> None:
        """Start the server again on the same port and with the same data."""
        if self.closed:
            raise RuntimeError("this chat was closed (teardown): use `await chat.start()`")
        if self.server is None:
            self.server = ChatServer(self.config)
            await self.server.start()
            self._set_status("running")

    async def close(self) -> None:
        """Close every client and the server. Safe to call twice."""
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()
        was = self.status
        self.status = "closed"
        if self.server is not None:
            await self.server.stop()
            self.server = None
        shutil.rmtree(self._dir, ignore_errors=True)
        if self in _RUNNING:
            _RUNNING.remove(self)
        if was != "closed":
            self._set_status("closed")


async def attempt(awaitable: Awaitable[Any]) -> str:
    """Run a client request; return ``"ok"`` or the error code the server answered."""
    try:
        await awaitable
    except ChatError as err:
        return err.code or "network"
    return "ok"


async def connect_clients(
    url: str,
    users: Iterable[str],
    rooms: Iterable[str] = ("general",),
    spread: bool = True,
    options: ClientOptions | None = None,
) -> dict[str, ChatClient]:
    """Connect one client per user to ``url`` (a cluster's nginx entry, say).

    With ``spread``, client ``i`` binds the source address 127.0.0.(i+2), so that nginx's
    ``hash $remote_addr`` sticky sessions really spread them over the servers. An
    ``https://`` entry of a cluster started in this kernel is verified against that
    cluster's throwaway CA.
    """
    from tutorial.cluster.cluster import client_address, trust_for

    clients: dict[str, ChatClient] = {}
    rooms = tuple(rooms)
    for i, user in enumerate(users):
        local = client_address(i) if spread else None
        opts = options or fast_options()
        opts = ClientOptions(**{**vars(opts), "local_addr": local})
        if opts.ssl_context is None:
            opts.ssl_context = trust_for(url)
        client = ChatClient(url, user, user, options=opts, name=user)
        await client.connect()
        for room in rooms:
            await client.join(room)
        clients[user] = client
    return clients


async def close_clients(clients: dict[str, ChatClient]) -> None:
    for client in clients.values():
        with contextlib.suppress(Exception):
            await client.close()


@dataclass(frozen=True)
class KillReport:
    victim: str
    moved: tuple[str, ...]
    recovered_in: float
    ack_while_reconnecting: dict[str, Any]


async def kill_server_of(
    cluster: Any, clients: dict[str, ChatClient], user: str = "alice", room: str = "general"
) -> KillReport:
    """``kill -9`` the server ``user`` is on, send while its clients reconnect, and wait
    until they are CONNECTED again (through nginx, on a survivor)."""
    from tutorial.client import State

    distribution = await cluster.distribution()
    victim = distribution[user]
    moved = tuple(u for u, s in sorted(distribution.items()) if s == victim)
    index = next(i for i, s in enumerate(cluster.servers) if s.name == victim)
    cluster.kill(index)
    started = time.monotonic()
    sender = clients[user]
    await sender.wait_for_state(State.RECONNECTING, timeout=10)
    pending = sender.send(room, "sent while reconnecting")
    for name in moved:
        await clients[name].wait_for_state(State.CONNECTED, timeout=20)
    recovered_in = time.monotonic() - started
    return KillReport(victim, moved, recovered_in, await pending)


def same_order_everywhere(clients: dict[str, ChatClient], room: str = "general") -> bool:
    """Every client delivered the same messages in the same order."""
    return len({tuple(c.received(room)) for c in clients.values()}) == 1
