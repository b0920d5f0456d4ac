"""Shared fixtures: a real teaching server on loopback, port 0, with a fresh SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from skips import pytest_runtest_makereport  # noqa: F401  (TUTORIAL_NO_SKIPS=1: a skip fails)

from tutorial import live
from tutorial.chat.server import ChatServer, ServerConfig


def make_config(tmp_path: Path, **overrides: Any) -> ServerConfig:
    """The demo configuration, with its SQLite file in ``tmp_path``."""
    return ServerConfig.for_demo(tmp_path, **overrides)


def as_served(config: ServerConfig) -> ChatServer:
    """A chat server built as ``tutorial serve`` builds it: the live diagram off, so
    ``/trace`` says how to turn it on (what a browser page meets)."""
    srv = ChatServer(config)
    live.attach(srv, enabled=False)
    return srv


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    """A running demo server (the seed's cast and rooms), as ``tutorial serve --demo`` runs
    it: the live diagram off, so ``/trace`` says how to turn it on."""
    srv = as_served(make_config(tmp_path))
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


@pytest.fixture
async def custom_server(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory of demo servers with config overrides, each in its own directory."""
    started: list[ChatServer] = []

    async def make(**overrides: object) -> ChatServer:
        srv = ChatServer(make_config(tmp_path / f"custom{len(started)}", **overrides))
        await srv.start()
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in started:
            await srv.stop()
