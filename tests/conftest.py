"""Shared fixtures: a real teaching server on loopback, port 0, with a fresh SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium through Playwright (see ``tests/browser.py``)."""
    from browser import CHROMIUM, CHROMIUM_ARGS
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


# The site checks need a built site (`make site-build`); `make site-test` runs them.
# The real-JupyterLab suite runs in a pytest of its own (`make lab-test`): its sync
# Playwright keeps an event loop running in the main thread, which the async tests of
# the rest of the suite cannot share.
collect_ignore = [] if os.environ.get("TUTORIAL_SITE_TESTS") else ["site"]
if not os.environ.get("TUTORIAL_LAB_TESTS"):
    collect_ignore.append("jupyterlab")
