"""What the browser tests share: Debian's chromium, the chat page, and how to open it.

Playwright drives the ``chromium`` set-up found (``tutorial/components.py``: ``CHROMIUM=``,
else PATH); nothing downloads a browser (the ``browser`` fixture in ``conftest.py``
launches it). Each page records its console errors and the dialogs it opened, so a
test can assert there were none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from skips import needs

from tutorial.chat import server as server_module
from tutorial.components import find

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CHROMIUM = find("chromium") or Path("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    needs("chromium"),
    pytest.mark.skipif(
        server_module.find_socketio_client(ROOT) is None,
        reason="component missing: node_modules/socket.io-client (run make setup)",
    ),
]

expect.set_options(timeout=WAIT_MS)


@dataclass
class ChatPage:
    """One user's chat page, with what it logged to the console and the dialogs it opened."""

    page: Page
    name: str
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def messages(self) -> Any:
        return self.page.locator("#messages li.message:not(.pending)")

    def member(self, user: str) -> Any:
        return self.page.locator(f'#member-list li[data-user="{user}"]')

    async def login(self, user: str, password: str | None = None) -> None:
        await self.page.fill("#username", user)
        await self.page.fill("#password", user if password is None else password)
        await self.page.click("#login-button")

    async def logged_in(self, user: str) -> None:
        """Log in and wait until the chat view is CONNECTED as ``user``."""
        await self.login(user)
        await expect(self.page.locator("#chat-view")).to_be_visible()
        await expect(self.page.locator("#status")).to_have_attribute("data-state", "CONNECTED")
        await expect(self.page.locator("#whoami-name")).to_have_text(user)

    async def join(self, room: str) -> None:
        await self.page.click(f'#room-list li[data-room="{room}"] .room-join')
        await expect(self.page.locator(f'#room-list li[data-room="{room}"]')).to_have_attribute(
            "data-joined", "true"
        )
        await expect(self.page.locator("#room-title")).to_have_text(f"# {room}")
        await expect(self.member(self.name)).to_be_visible()

    async def say(self, text: str) -> None:
        await self.page.fill("#message-input", text)
        await self.page.press("#message-input", "Enter")

    async def shot(self, name: str) -> Path:
        OUTPUT.mkdir(exist_ok=True)
        path = OUTPUT / name
        await self.page.screenshot(path=str(path))
        return path


async def open_chat(
    browser: Browser, url: str, name: str = "", query: str = "", page_class: type = ChatPage
) -> Any:
    """A new browser context (own storage) with the chat page loaded at its login form."""
    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    chat = page_class(page, name)

    def on_console(message: Any) -> None:
        if message.type == "error":
            chat.console_errors.append(message.text)

    async def on_dialog(dialog: Any) -> None:
        chat.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: chat.console_errors.append(f"pageerror: {exc}"))
    page.on("dialog", on_dialog)
    await page.goto(f"{url}/{query}")
    await expect(page.locator("#login-form")).to_be_visible()
    return chat
