"""The browser's live diagram, in Debian's chromium driven by Playwright.

alice and bob chat in two browser contexts against a demo server with its live view
(``tutorial serve --live-trace``); alice's panel shows the sequence diagram the server
drew from the bytes its wiretap relayed for her session, in the three layers. Waits are
explicit; nothing sleeps. Screenshots land in ``test-output/`` (gitignored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import BROWSER_MARKS, ChatPage, open_chat
from conftest import make_config
from playwright.async_api import Browser, expect

from tutorial import live
from tutorial.chat.server import ChatServer

HOSTILE = "<img src=x onerror=alert(1)>"

pytestmark = BROWSER_MARKS


@dataclass
class LivePage(ChatPage):
    """A chat page with its live diagram panel."""

    @property
    def svg(self) -> Any:
        return self.page.locator("#live-svg svg")

    async def layer(self, value: str) -> None:
        await self.page.locator(f'#live-diagram input[value="{value}"]').check()
        await expect(self.page.locator("#live-svg")).to_have_attribute("data-layer", value)


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    srv = ChatServer(make_config(tmp_path))
    live.attach(srv)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def open_live(browser: Browser, url: str, name: str) -> LivePage:
    page: LivePage = await open_chat(browser, url, name, page_class=LivePage)
    return page


async def test_alices_live_diagram_shows_the_exchange(
    live_server: ChatServer, browser: Browser
) -> None:
    alice = await open_live(browser, live_server.url, "alice")
    await expect(alice.page.locator("#live-status")).to_have_text("idle")
    await alice.logged_in("alice")
    # Right after login the panel follows her session: the CONNECT is drawn.
    await expect(alice.page.locator("#live-status")).to_have_text("live")
    await expect(alice.svg).to_contain_text("connect-confirmed")
    await expect(alice.svg).to_contain_text("alice (you)")
    await alice.join("general")

    bob = await open_live(browser, live_server.url, "bob")
    await bob.logged_in("bob")
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
    alice = await open_live(browser, server.url, "alice")
    await alice.logged_in("alice")
    await expect(alice.page.locator("#live-status")).to_have_attribute("data-state", "off")
    await expect(alice.page.locator("#live-message")).to_contain_text("--live-trace")
    await expect(alice.svg).to_have_count(0)
    await alice.shot("browser-live-diagram-off.png")
    assert alice.console_errors == []


async def test_after_a_reconnect_the_panel_follows_the_new_session(
    live_server: ChatServer, browser: Browser
) -> None:
    alice = await open_live(browser, live_server.url, "alice")
    await alice.logged_in("alice")
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
