"""The browser chat (``tutorial/chat/static``) in Debian's chromium, driven by Playwright.

Every test starts a real demo server on 127.0.0.1 (port 0) and real browser contexts
(one per user, so each has its own storage). Waits are explicit (``expect`` and
``wait_for_selector`` with timeouts); nothing sleeps. Screenshots land in
``test-output/`` (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from browser import BROWSER_MARKS, ChatPage, open_chat
from conftest import as_served, make_config
from playwright.async_api import Browser, expect
from rawclient import Recorder

from tutorial.chat import server as server_module
from tutorial.chat.server import ChatServer

pytestmark = BROWSER_MARKS

OpenPage = Callable[..., Awaitable[ChatPage]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """A factory: a new browser context (own storage) with the chat page loaded."""
    pages: list[ChatPage] = []

    async def make(url: str, name: str = "", query: str = "") -> ChatPage:
        chat: ChatPage = await open_chat(browser, url, name, query)
        pages.append(chat)
        return chat

    yield make
    for chat in pages:
        await chat.page.context.close()


async def logged_in(open_page: OpenPage, url: str, user: str, query: str = "") -> ChatPage:
    chat = await open_page(url, user, query)
    await chat.logged_in(user)
    return chat


async def test_two_users_chat_with_typing_and_presence(
    server: ChatServer, open_page: OpenPage
) -> None:
    alice = await logged_in(open_page, server.url, "alice")
    # The rooms alice may join come from connect-confirmed.
    rooms = alice.page.locator("#room-list li")
    await expect(rooms).to_have_count(3)
    assert await rooms.evaluate_all("els => els.map(e => e.dataset.room)") == [
        "general",
        "private-chat",
        "tech-talk",
    ]
    await alice.join("general")
    await expect(alice.page.locator("#member-list li")).to_have_count(1)

    bob = await logged_in(open_page, server.url, "bob")
    await bob.join("general")
    # Presence: bob's room-joined lists both; alice hears user-joined.
    await expect(bob.page.locator("#member-list li")).to_have_count(2)
    await expect(alice.member("bob")).to_be_visible()
    await expect(alice.page.locator("#messages .presence")).to_have_text(re.compile("bob joined"))

    # Typing: alice types, bob sees it; sending stops it at once.
    await alice.page.locator("#message-input").press_sequentially("Hello bob")
    await expect(bob.page.locator("#typing")).to_have_text("alice is typing…")
    await expect(bob.member("alice").locator(".member-typing")).to_be_visible()
    await alice.page.press("#message-input", "Enter")
    await expect(bob.page.locator("#typing")).to_have_text("")

    for chat in (alice, bob):
        message = chat.messages().last
        await expect(message.locator(".message-text")).to_have_text("Hello bob")
        await expect(message.locator(".message-user")).to_have_text("alice")
        await expect(message.locator(".message-time")).to_have_text(re.compile(r"\d\d:\d\d"))
        assert await message.get_attribute("data-seq") == "1"

    # bob answers; alice sees his typing first, then the message.
    await bob.page.locator("#message-input").press_sequentially("Hi alice! How are you?")
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…")
    await alice.shot("browser-chat-alice-typing.png")
    await bob.page.press("#message-input", "Enter")
    await expect(alice.messages().last.locator(".message-text")).to_have_text(
        "Hi alice! How are you?"
    )
    await expect(alice.messages().last).to_have_attribute("data-user", "bob")
    await expect(alice.page.locator("#typing")).to_have_text("")

    # typing-stop after 2 s without a keystroke, without sending.
    await bob.page.locator("#message-input").press_sequentially("I am still writ")
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…")
    await expect(alice.page.locator("#typing")).to_have_text("", timeout=6000)
    await bob.page.fill("#message-input", "")
    await alice.say("Fine, thanks. Let me check #tech-talk.")
    await expect(bob.messages()).to_have_count(3)
    await bob.shot("browser-chat-bob.png")

    # Leaving: bob leaves, alice's member list drops him (user-left).
    await bob.page.click('#room-list li[data-room="general"] .room-leave')
    await expect(alice.member("bob")).to_have_count(0)
    await expect(alice.page.locator("#messages .presence").last).to_have_text(
        re.compile("bob left")
    )
    await expect(bob.page.locator("#message-input")).to_be_disabled()
    await alice.shot("browser-chat-alice.png")

    for chat in (alice, bob):
        assert chat.console_errors == []
        assert chat.dialogs == []


async def test_html_in_a_message_is_shown_as_text_and_runs_nothing(
    server: ChatServer, open_page: OpenPage
) -> None:
    alice = await logged_in(open_page, server.url, "alice")
    await alice.join("general")
    # bob uses HTTP long-polling only: the page works on both transports.
    bob = await logged_in(open_page, server.url, "bob", "?transport=polling")
    await expect(bob.page.locator("#transport")).to_have_text("via polling")
    await bob.join("general")

    payload = "<img src=x onerror=alert(1)>"
    await alice.say(payload)
    await alice.say("<script>alert(2)</script><b>not bold</b>")
    marker = "marker: after the HTML"
    await alice.say(marker)
    for chat in (alice, bob):
        await expect(chat.messages().last.locator(".message-text")).to_have_text(marker)
        texts = await chat.messages().locator(".message-text").all_text_contents()
        assert texts == [payload, "<script>alert(2)</script><b>not bold</b>", marker]
        assert await chat.page.locator("#messages img").count() == 0
        assert await chat.page.locator("#messages script, #messages b").count() == 0
        assert await chat.page.evaluate("document.querySelectorAll('img').length") == 0
    # A round trip after the messages: any onerror handler would have run by now.
    await bob.say("seen")
    await expect(alice.messages().last.locator(".message-text")).to_have_text("seen")
    await bob.shot("browser-chat-html-as-text.png")
    for chat in (alice, bob):
        assert chat.dialogs == []
        assert chat.console_errors == []


async def test_wrong_password_shows_the_error_and_stays_on_the_login_form(
    server: ChatServer, open_page: OpenPage
) -> None:
    page = await open_page(server.url, "alice")
    await page.login("alice", "not-alices-password")
    error = page.page.locator("#login-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("wrong credentials or token")
    await expect(error).to_contain_text("auth_failed")
    await expect(page.page.locator("#login-form")).to_be_visible()
    await expect(page.page.locator("#chat-view")).to_be_hidden()
    await expect(page.page.locator("#status")).to_have_attribute("data-state", "ERROR")
    await expect(page.page.locator("#login-button")).to_be_enabled()
    await page.shot("browser-login-error.png")

    # The form still works: the right password logs in.
    await page.login("alice")
    await expect(page.page.locator("#chat-view")).to_be_visible()
    await expect(page.page.locator("#status")).to_have_attribute("data-state", "CONNECTED")
    assert page.console_errors == []
    assert page.dialogs == []


async def test_auth_failure_on_reconnect_returns_to_the_login_page(
    server: ChatServer, open_page: OpenPage, tmp_path: Path
) -> None:
    """Seed diagram 5: auth failure -> "user action required" -> redirect to login."""
    alice = await logged_in(open_page, server.url, "alice")
    await alice.join("general")
    status = alice.page.locator("#status")
    # The server goes away: CONNECTED -> RECONNECTING, socket.io-client retries.
    port = server.port
    await server.stop()
    await expect(status).to_have_attribute("data-state", "RECONNECTING")
    await expect(alice.page.locator("#banner")).to_contain_text("Reconnecting")
    await alice.shot("browser-reconnecting.png")
    # It comes back on the same port with a new secret: alice's token is no longer valid.
    restarted = as_served(make_config(tmp_path / "restarted", port=port))
    await restarted.start()
    try:
        error = alice.page.locator("#login-error")
        await expect(error).to_contain_text("Your session ended, please log in again")
        await expect(error).to_contain_text("auth_failed")
        await expect(alice.page.locator("#chat-view")).to_be_hidden()
        await expect(alice.page.locator("#username")).to_have_value("alice")
        await expect(status).to_have_attribute("data-state", "ERROR")
        await alice.shot("browser-session-ended.png")
        # Logging in again with the password works.
        await alice.login("alice")
        await expect(status).to_have_attribute("data-state", "CONNECTED")
        await alice.join("general")
    finally:
        await restarted.stop()
    # (No console check here: chromium logs the refused reconnection attempts.)
    assert alice.dialogs == []


async def test_reconnect_resends_the_outbox_and_replays_what_was_missed(
    server: ChatServer, open_page: OpenPage, tmp_path: Path
) -> None:
    """Seed diagram 5: network failure -> auto retry with backoff; nothing is lost."""
    alice = await logged_in(open_page, server.url, "alice")
    await alice.join("general")
    await alice.say("before the outage")
    await expect(alice.messages()).to_have_count(1)
    status = alice.page.locator("#status")
    port = server.port
    await server.stop()
    await expect(status).to_have_attribute("data-state", "RECONNECTING")
    # Written while offline: it waits in the outbox.
    await alice.say("written offline")
    pending = alice.page.locator("#messages li.pending")
    await expect(pending.locator(".pending-status")).to_have_text("waiting for the connection")

    # The same server comes back (same store, same secret): alice's token still works.
    restarted = as_served(make_config(tmp_path, port=port))
    await restarted.start()
    bob = Recorder(restarted.url, "bob")
    try:
        await bob.login("bob", rooms=("general",))
        await bob.say("general", "while you were away")
        await expect(status).to_have_attribute("data-state", "CONNECTED", timeout=15_000)
        # The outbox went out once; bob's message arrived once (replayed or live).
        await expect(pending).to_have_count(0)
        texts = alice.messages().locator(".message-text")
        await expect(texts.filter(has_text="written offline")).to_have_count(1)
        await expect(texts.filter(has_text="while you were away")).to_have_count(1)
        await expect(alice.messages()).to_have_count(3)
        await expect(alice.member("bob")).to_be_visible()
        # bob hears it live, or (if alice's outbox was faster than his join) in his history.
        joined = [m for j in bob.received("room-joined") for m in j["history"]]
        heard = [m for m in joined if m["text"] == "written offline"] or [
            await bob.next("new-message", match=lambda d: d["text"] == "written offline")
        ]
        assert [m["user"] for m in heard] == ["alice"]
        seqs = await alice.messages().evaluate_all("els => els.map(e => Number(e.dataset.seq))")
        assert sorted(seqs) == [1, 2, 3]
        await alice.shot("browser-after-reconnect.png")
    finally:
        await bob.close()
        await restarted.stop()
    assert alice.dialogs == []


async def test_failed_after_max_retries_then_manual_reset(
    server: ChatServer, open_page: OpenPage, tmp_path: Path
) -> None:
    """Seed diagram 5: RECONNECTING -> FAILED (max retries) -> DISCONNECTED -> CONNECTED."""
    alice = await logged_in(open_page, server.url, "alice", "?retries=2")
    await alice.join("general")
    status = alice.page.locator("#status")
    port = server.port
    await server.stop()
    await expect(status).to_have_attribute("data-state", "FAILED", timeout=20_000)
    banner = alice.page.locator("#banner")
    await expect(banner).to_contain_text("Could not reconnect after 2 attempts")
    await alice.shot("browser-failed.png")
    restarted = as_served(make_config(tmp_path, port=port))
    await restarted.start()
    try:
        await banner.locator("#banner-action").click()
        await expect(status).to_have_attribute("data-state", "CONNECTED")
        await expect(banner).to_be_hidden()
        await expect(alice.member("alice")).to_be_visible()
        await alice.say("back again")
        await expect(alice.messages().last.locator(".message-text")).to_have_text("back again")
    finally:
        await restarted.stop()
    assert alice.dialogs == []


async def test_rate_limited_messages_are_queued_and_resent(
    tmp_path: Path, open_page: OpenPage
) -> None:
    """Seed diagram 5: rate limit exceeded -> queue messages and slow down."""
    srv = as_served(make_config(tmp_path, rate_capacity=4.0, rate_per_second=2.0))
    await srv.start()
    try:
        alice = await logged_in(open_page, srv.url, "alice")
        await alice.join("general")
        texts = [f"burst message {i}" for i in range(1, 7)]
        for text in texts:
            await alice.say(text)
        notice = alice.page.locator("#notice")
        await expect(notice).to_contain_text("Slowing down")
        await alice.shot("browser-rate-limited.png")
        # Every message arrives, once and in order, with the seq the server gave it.
        await expect(alice.messages()).to_have_count(len(texts), timeout=15_000)
        await expect(alice.page.locator("#messages li.pending")).to_have_count(0)
        assert await alice.messages().locator(".message-text").all_text_contents() == texts
        seqs = await alice.messages().evaluate_all("els => els.map(e => e.dataset.seq)")
        assert seqs == [str(i) for i in range(1, 7)]
        assert alice.console_errors == []
    finally:
        await srv.stop()


async def test_a_server_rejection_is_shown_to_the_user(tmp_path: Path, open_page: OpenPage) -> None:
    """Seed diagram 5: server rejection -> permanent failure -> show the message."""
    srv = as_served(make_config(tmp_path, max_text_length=20))
    await srv.start()
    try:
        alice = await logged_in(open_page, srv.url, "alice")
        await alice.join("general")
        await alice.say("this message is longer than twenty characters")
        notice = alice.page.locator("#notice")
        await expect(notice).to_contain_text("Message not sent")
        await expect(notice).to_contain_text("the limit is 20 (message_too_long)")
        failed = alice.page.locator("#messages li.pending-failed")
        await expect(failed).to_have_count(1)
        await expect(failed.locator(".pending-status")).to_contain_text("message_too_long")
        await alice.shot("browser-server-rejection.png")
        # The chat goes on: a short message is delivered.
        await alice.say("short one")
        await expect(alice.messages().last.locator(".message-text")).to_have_text("short one")
        await failed.locator("button").click()
        await expect(failed).to_have_count(0)
        assert alice.console_errors == []
    finally:
        await srv.stop()


async def test_live_diagram_slot_keeps_the_layer_choice(
    server: ChatServer, open_page: OpenPage
) -> None:
    page = await open_page(server.url, "alice")
    aside = page.page.locator("aside#live-diagram")
    await expect(aside).to_be_visible()
    await expect(aside).to_have_attribute("data-layer", "chat")
    await page.page.locator('#live-diagram input[value="packets"]').check()
    await expect(aside).to_have_attribute("data-layer", "packets")
    await page.page.reload()
    await expect(aside).to_have_attribute("data-layer", "packets")
    await expect(page.page.locator('#live-diagram input[value="packets"]')).to_be_checked()
    await page.page.locator('#live-diagram input[value="frames"]').check()
    await expect(page.page.locator("#layer-name")).to_have_text("frames")
    assert page.console_errors == []


async def test_missing_js_client_says_run_make_setup(
    tmp_path: Path, open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "find_socketio_client", lambda start=None: None)
    srv = as_served(make_config(tmp_path))
    await srv.start()
    try:
        page = await open_page(srv.url, "alice")
        await expect(page.page.locator("#setup-missing")).to_be_visible()
        await expect(page.page.locator("#setup-missing")).to_contain_text("make setup")
        await expect(page.page.locator("#login-button")).to_be_disabled()
    finally:
        await srv.stop()
