"""The browser's live diagram, in Debian's chromium driven by Playwright.

alice and bob chat in two browser contexts against a ``live_trace=True`` demo server;
alice's panel shows the sequence diagram the server drew from the bytes its wiretap
relayed for her session, in the three layers. Waits are explicit; nothing sleeps.
Screenshots land in ``test-output/`` (gitignored).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from playwright.async_api import Browser, Page, async_playwright, expect

from tutorial.chat import server as server_module
from tutorial.chat.server import ChatServer

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000
HOSTILE = "<img src=x onerror=alert(1)>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: make setup"),
    pytest.mark.skipif(
        server_module.find_socketio_client(ROOT) is None,
        reason="needs node_modules/socket.io-client: make setup",
    ),
]

expect.set_options(timeout=WAIT_MS)


@dataclass
class ChatPage:
    page: Page
    name: str
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def svg(self) -> Any:
        return self.page.locator("#live-svg svg")

    async def login(self, user: str) -> None:
        await self.page.fill("#username", user)
        await self.page.fill("#password", user)
        await self.page.click("#login-button")
        await expect(self.page.locator("#chat-view")).to_be_visible()
        await expect(self.page.locator("#status")).to_have_attribute("data-state", "CONNECTED")

    async def join(self, room: str) -> None:
        await self.page.click(f'#room-list li[data-room="{room}"] .room-join')
        await expect(self.page.locator(f'#room-list li[data-room="{room}"]')).to_have_attribute(
            "data-joined", "true"
        )

    async def say(self, text: str) -> None:
        await self.page.fill("#message-input", text)
        await self.page.press("#message-input", "Enter")

    async def layer(self, value: str) -> None:
        await self.page.locator(f'#live-diagram input[value="{value}"]').check()
        await expect(self.page.locator("#live-svg")).to_have_attribute("data-layer", value)

    async def shot(self, name: str) -> Path:
        OUTPUT.mkdir(exist_ok=True)
        path = OUTPUT / name
        await self.page.screenshot(path=str(path))
        return path


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    srv = ChatServer(make_config(tmp_path, live_trace=True))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_chat(browser: Browser, url: str, name: str) -> ChatPage:
    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    chat = ChatPage(page, name)

    def on_console(message: Any) -> None:
        if message.type == "error":
            chat.console_errors.append(message.text)

    async def on_dialog(dialog: Any) -> None:
        chat.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: chat.console_errors.append(f"pageerror: {exc}"))
    page.on("dialog", on_dialog)
    await page.goto(f"{url}/")
    await expect(page.locator("#login-form")).to_be_visible()
    return chat


async def test_alices_live_diagram_shows_the_exchange(
    live_server: ChatServer, browser: Browser
) -> None:
    alice = await open_chat(browser, live_server.url, "alice")
    await expect(alice.page.locator("#live-status")).to_have_text("idle")
    await alice.login("alice")
    # Right after login the panel follows her session: the CONNECT is drawn.
    await expect(alice.page.locator("#live-status")).to_have_text("live")
    await expect(alice.svg).to_contain_text("connect-confirmed")
    await expect(alice.svg).to_contain_text("alice (you)")
    await alice.join("general")

    bob = await open_chat(browser, live_server.url, "bob")
    await bob.login("bob")
    await bob.join("general")
    await alice.say("Hello bob")
    await expect(bob.page.locator("#messages li.message").last).to_contain_text("Hello bob")
    await bob.say("Hi alice! How are you?")
    await bob.say(HOSTILE)
    await expect(alice.page.locator("#messages li.message").last).to_contain_text(HOSTILE)

    # alice's diagram: her send-message, its ack, the new-message echoes, bob's messages.
    await expect(alice.svg).to_contain_text("send-message #")
    await expect(alice.svg).to_contain_text('"text":"Hello bob"')
    await expect(alice.svg).to_contain_text('new-message {"user":"bob","text":"Hi alice!')
    await expect(alice.svg).to_contain_text('new-message {"user":"bob","text":"<img src=x')
    await expect(alice.svg).to_contain_text("user-joined")
    text = await alice.svg.text_content() or ""
    # Only her own session: bob's send-message travelled on his connection, not hers.
    assert '"text":"Hi alice!' not in text.split("new-message", 1)[0]
    assert "/trace" not in text and "diagram" not in text
    # The hostile text is text: no element came out of it, no handler ran.
    assert await alice.page.locator("#live-svg img, #live-svg script").count() == 0
    assert await alice.page.evaluate("document.querySelectorAll('img').length") == 0
    # Both ends of the panel: the meta line and the badge.
    await expect(alice.page.locator("#live-meta")).to_contain_text("recorded in all layers")
    path = await alice.shot("browser-live-diagram.png")
    assert path.stat().st_size > 10_000

    # The layer switch: packets (Engine.IO and Socket.IO), then frames (the bytes).
    chat_svg = await alice.page.inner_html("#live-svg")
    await alice.layer("packets")
    await expect(alice.svg).to_contain_text("eio MESSAGE")
    await expect(alice.svg).to_contain_text("sio EVENT")
    packets_svg = await alice.page.inner_html("#live-svg")
    assert packets_svg != chat_svg
    await alice.shot("browser-live-diagram-packets.png")
    await alice.layer("frames")
    await expect(alice.svg).to_contain_text("TEXT fin=1")
    assert await alice.page.inner_html("#live-svg") not in (chat_svg, packets_svg)
    await alice.shot("browser-live-diagram-frames.png")
    # A new message shows up in the frames view too (a masked client frame).
    before = int(await alice.page.get_attribute("#live-svg", "data-events") or 0)
    await alice.say("one more")
    await expect(bob.page.locator("#messages li.message").last).to_contain_text("one more")
    await expect(alice.page.locator("#live-svg")).not_to_have_attribute("data-events", str(before))
    await alice.layer("chat")
    await expect(alice.svg).to_contain_text('"text":"one more"')

    for chat in (alice, bob):
        assert chat.console_errors == []
        assert chat.dialogs == []
    # Logging out empties the panel.
    await alice.page.click("#logout")
    await expect(alice.page.locator("#live-status")).to_have_text("idle")
    await expect(alice.svg).to_have_count(0)


async def test_without_live_trace_the_panel_says_how_to_turn_it_on(
    server: ChatServer, browser: Browser
) -> None:
    alice = await open_chat(browser, server.url, "alice")
    await alice.login("alice")
    await expect(alice.page.locator("#live-status")).to_have_attribute("data-state", "off")
    await expect(alice.page.locator("#live-message")).to_contain_text("--live-trace")
    await expect(alice.svg).to_have_count(0)
    await alice.shot("browser-live-diagram-off.png")
    assert alice.console_errors == []


async def test_after_a_reconnect_the_panel_follows_the_new_session(
    live_server: ChatServer, browser: Browser
) -> None:
    alice = await open_chat(browser, live_server.url, "alice")
    await alice.login("alice")
    box = alice.page.locator("#live-svg")
    await expect(alice.svg).to_contain_text("connect-confirmed")
    first = await box.get_attribute("data-lifeline")
    assert first
    # Drop the chat's Engine.IO connection (once upgraded: closing in the middle of the
    # upgrade leaves a polling request to fail): socket.io-client reconnects, new session.
    await expect(alice.page.locator("#transport")).to_have_text("via websocket")
    await alice.page.evaluate("window.tutorialChat.socket.io.engine.close()")
    await expect(box).not_to_have_attribute("data-lifeline", first)
    await expect(alice.page.locator("#status")).to_have_attribute("data-state", "CONNECTED")
    await expect(alice.svg).to_contain_text("connect-confirmed")
    await expect(alice.svg).to_contain_text("1. sio CONNECT")  # the new session from its start
    await expect(alice.page.locator("#live-status")).to_have_text("live")
    assert alice.console_errors == []
