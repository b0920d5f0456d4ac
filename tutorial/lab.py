"""Live components for a notebook: a real server and real clients in the kernel's loop.

A chapter notebook starts a :class:`LiveChat` with top-level ``await``, plays with it,
and closes it in its teardown cell (closing twice is harmless)::

    chat = await LiveChat(users=("alice", "bob")).start()
    await chat.clients["alice"].send("general", "hi")
    await chat.close()
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Awaitable, Iterable
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
        self.config = ServerConfig(
            host="127.0.0.1", port=0, db_url=f"sqlite:///{self._dir}/chat.db", demo=True
        )
        for key, value in config.items():
            setattr(self.config, key, value)
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
