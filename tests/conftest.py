"""Shared fixtures: a real teaching server on loopback, port 0, with a fresh SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tutorial.chat.server import ChatServer, ServerConfig


def make_config(tmp_path: Path, **overrides: object) -> ServerConfig:
    config = ServerConfig(
        host="127.0.0.1", port=0, db_url=f"sqlite:///{tmp_path}/chat.db", demo=True
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    """A running demo server (the seed's cast and rooms)."""
    srv = ChatServer(make_config(tmp_path))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


# The site checks need a built site (`make site-build`); `make site-test` runs them.
collect_ignore = [] if os.environ.get("TUTORIAL_SITE_TESTS") else ["site"]
