"""Live components for a notebook: a real server and real clients in the kernel's loop.

A chapter notebook starts a [LiveChat][tutorial.lab.LiveChat] with top-level ``await``, plays with
it,
and closes it in its teardown cell (closing twice is harmless):

    chat = await LiveChat(users=("alice", "bob")).start()
    await chat.clients["alice"].send("general", "hi")
    await chat.close()
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutorial.chat.server import ChatServer, ServerConfig
from tutorial.client import Backoff, ChatClient, ChatError, ClientOptions


def fast_options(**overrides: Any) -> ClientOptions:
    """Client options with short backoffs, so that a notebook cell finishes in seconds."""
    options = ClientOptions(backoff=Backoff(base=0.1, factor=2.0, cap=1.0), max_retries=6)
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


_RUNNING: list[LiveChat] = []


async def teardown() -> None:
    """Close every LiveChat this kernel started. Safe to run twice."""
    closed = 0
    while _RUNNING:
        await _RUNNING.pop().close()
        closed += 1
    print(f"closed {closed} live chat(s); nothing is left running")


class LiveChat:
    """A demo-mode server on a free port plus one connected client per user."""

    def __init__(
        self,
        users: Iterable[str] = ("alice", "bob"),
        rooms: Iterable[str] = ("general",),
        options: ClientOptions | None = None,
        **config: Any,
    ) -> None:
        self.users = tuple(users)
        self.rooms = tuple(rooms)
        self.options = options or fast_options()
        self._dir = Path(tempfile.mkdtemp(prefix="tutorial-lab-"))
        self.config = ServerConfig.for_demo(self._dir, **config)
        self.server: ChatServer | None = None
        self.clients: dict[str, ChatClient] = {}
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LiveChat:
        self.server = ChatServer(self.config)
        self.port = await self.server.start()
        self.config.port = self.port  # a restart comes back on the same port
        _RUNNING.append(self)
        for user in self.users:
            await self.add_client(user)
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

    async def restart_server(self) -> None:
        """Start the server again on the same port and with the same data."""
        if self.server is None:
            self.server = ChatServer(self.config)
            await self.server.start()

    async def close(self) -> None:
        """Close every client and the server. Safe to call twice."""
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()
        await self.stop_server()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self in _RUNNING:
            _RUNNING.remove(self)


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
    ``hash $remote_addr`` sticky sessions really spread them over the servers.
    """
    from tutorial.cluster.cluster import client_address

    clients: dict[str, ChatClient] = {}
    rooms = tuple(rooms)
    for i, user in enumerate(users):
        local = client_address(i) if spread else None
        opts = options or fast_options()
        opts = ClientOptions(**{**vars(opts), "local_addr": local})
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
