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


# -- click-to-inspect ---------------------------------------------------------------------

WS_FIELDS = ["FIN", "RSV1", "RSV2", "RSV3", "opcode", "MASK", "payload length"]

# Every WebSocket card on screen: its length and the bit ranges its spans name, in order.
FRAME_CARDS = """() => [...document.querySelectorAll('#inspector-mount .ti-card[data-layer="ws"]')]
  .map((card) => ({
    length: Number(card.dataset.length),
    spans: [...card.querySelectorAll('.ti-span')].map((s) => [
      s.dataset.name, Number(s.dataset.start), Number(s.dataset.end)]),
  }))"""


def every_bit_named_once(card: dict[str, Any]) -> None:
    """The spans of a frame card tile its bytes: no gap, no overlap, nothing left over."""
    at = 0
    for name, start, end in card["spans"]:
        assert start == at and end > start, (name, start, end, card)
        at = end
    assert at == 8 * card["length"], card


async def click_row(page: LivePage, text: str) -> str:
    """Click the first arrow of the live diagram whose label has ``text``; its row k."""
    label = page.svg.locator("g.node.seq_row", has_text=text).first
    classes = await label.get_attribute("class") or ""
    await label.click()
    return next(c.removeprefix("seq_row_") for c in classes.split() if c.startswith("seq_row_"))


async def test_clicking_an_arrow_of_the_live_diagram_shows_its_bytes(
    live_server: ChatServer, browser: Browser
) -> None:
    alice = await open_live(browser, live_server.url, "alice")
    page = alice.page
    pane, mount = page.locator("#inspector-pane"), page.locator("#inspector-mount")
    await alice.logged_in("alice")
    await alice.join("general")
    await alice.say("Hello bob")
    await expect(alice.svg).to_contain_text('{"text":"Hello bob"')
    # The echo too, so the send-message arrow has a later row to dim (on a busy machine
    # the send can be drawn a push before its echo).
    await expect(alice.svg).to_contain_text('new-message {"user":"alice","text":"Hello bob')
    await expect(page.locator("#live-hint")).to_be_visible()
    await expect(pane).to_be_hidden()

    # Chat events: the send-message arrow, then its Socket.IO packet, the Engine.IO packet
    # and the (masked, compressed) WebSocket frame that carried it, every bit named.
    k = await click_row(alice, "send-message")
    await expect(pane).to_be_visible()
    await expect(mount).to_have_attribute("data-row", k)
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "paused")
    this = mount.locator(".ti-this-card")
    await expect(this).to_have_attribute("data-layer", "sio")
    await expect(this.locator(".ti-decoded")).to_contain_text("send-message")
    await expect(this.locator(".ti-decoded")).to_contain_text("Hello bob")
    await expect(mount.locator(".ti-sentence")).to_contain_text("'send-message' event")
    await expect(mount.locator('.ti-card[data-layer="eio"]')).to_contain_text("MESSAGE")
    frame = mount.locator('.ti-card[data-layer="ws"]')
    await expect(frame).to_have_count(1)
    names = await frame.locator(".ti-span .ti-name").all_text_contents()
    assert names[: len(WS_FIELDS)] == WS_FIELDS and names[-2:] == ["masking key", "payload"]
    for card in await page.evaluate(FRAME_CARDS):
        every_bit_named_once(card)
    # The highlighted arrow is the clicked one; what came later is dimmed.
    await expect(alice.svg.locator(f"g.seq_row_{k}.ti-current").first).to_be_attached()
    await expect(alice.svg.locator(f"g.seq_row_{int(k) + 1}.ti-future").first).to_be_attached()
    await alice.shot("browser-live-inspect-chat.png")

    # ▶ steps arrow by arrow (an ack of typing may come in between) to the server's own
    # step, which has no bytes.
    sentence = mount.locator(".ti-sentence")
    for step in range(1, 5):
        await mount.locator(".ti-next").click()
        await expect(mount).to_have_attribute("data-row", str(int(k) + step))
        if "validate message" in (await sentence.text_content() or ""):
            break
    await expect(sentence).to_contain_text("validate message")
    await expect(mount.locator(".ti-nobytes")).to_contain_text("the server did this on its own")

    # The login: its secret is hidden in the bytes too.
    await click_row(alice, "sio CONNECT")
    await expect(mount.locator(".ti-this-card")).to_contain_text('"password":"•••"')
    assert '"password":"alice"' not in (await mount.text_content() or "")

    # While the inspector is open the diagram holds still; back to live shows the news.
    held = await page.inner_html("#live-svg")
    await alice.say("while inspecting")
    await expect(alice.messages().last).to_contain_text("while inspecting")
    await expect(page.locator("#inspector-note")).to_contain_text("New events arrived")
    assert "while inspecting" not in held and await page.inner_html("#live-svg") == held
    await page.click("#inspector-close")
    await expect(pane).to_be_hidden()
    await expect(alice.svg).to_contain_text('"text":"while inspecting"')
    await expect(page.locator("#live-status")).to_have_text("live")
    assert await alice.svg.locator(".ti-current, .ti-future").count() == 0

    # Frames: a client frame, masked and not compressed (the server declines
    # permessage-deflate, as socket.io 4 does, for its one-frame fan-out), read down
    # to the packets it carried.
    await alice.layer("frames")
    await click_row(alice, "mask=1")
    await expect(pane).to_be_visible()
    this = mount.locator(".ti-this-card")
    await expect(this).to_have_attribute("data-layer", "ws")
    await expect(this.locator('.ti-span[data-name="RSV1"]')).not_to_contain_text("compressed")
    await expect(this.locator('.ti-span[data-name="masking key"]')).to_be_visible()
    await expect(mount.locator('.ti-card[data-layer="eio"]').first).to_be_visible()
    for card in await page.evaluate(FRAME_CARDS):
        every_bit_named_once(card)
    await alice.shot("browser-live-inspect-frames.png")
    # Esc closes it.
    await page.keyboard.press("Escape")
    await expect(pane).to_be_hidden()

    # A narrower window: the diagram moves under the chat; inspecting, it comes on top
    # with the bytes under it, and nothing is wider than the window.
    await page.set_viewport_size({"width": 1000, "height": 860})
    await click_row(alice, "101 Switching Protocols")
    await expect(pane).to_be_visible()
    await expect(mount.locator(".ti-this-card")).to_contain_text("Sec-WebSocket-Accept")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1000
    assert (await page.locator("#live-diagram-body").bounding_box() or {})["height"] >= 200
    await alice.shot("browser-live-inspect-narrow.png")
    await page.click("#inspector-close")
    await expect(pane).to_be_hidden()
    await expect(page.locator("#chat-view")).to_be_visible()
    assert alice.console_errors == []
    assert alice.dialogs == []
