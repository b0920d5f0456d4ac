"""The browser page in a cluster: nothing stored is ever missing from it.

Two ``tutorial serve`` processes share a store and Redis. The page (Debian's chromium)
is on server-1; bob sends from server-2. Redis is restarted in the middle: what bob
publishes meanwhile never reaches server-1, so the page sees a seq gap behind the next
message and asks for the rest (``join-room {since}``). In the end the page shows every
stored message, each once, in seq order. (Before the page had gap detection, about a
second of messages stayed missing for good.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from browser import BROWSER_MARKS, ChatPage, open_chat
from playwright.async_api import Browser, expect

from tutorial.chat.store import Message, open_store
from tutorial.client.client import ChatClient, ClientOptions
from tutorial.client.recovery import Backoff
from tutorial.cluster.cluster import Cluster

pytestmark = [*BROWSER_MARKS, pytest.mark.cluster, pytest.mark.timeout(150)]

ROOM = "general"


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster(servers=2, redis=True, redis_replicas=0) as running:  # restarted below
        yield running


async def stored(db_url: str) -> list[Message]:
    store = open_store(db_url)
    await store.open()
    try:
        return await store.history(ROOM, since=0, limit=100_000)
    finally:
        await store.close()


async def shown_seqs(page: ChatPage) -> list[int]:
    seqs: list[int] = await page.messages().evaluate_all(
        "els => els.map(e => Number(e.dataset.seq))"
    )
    return seqs


async def test_the_page_shows_every_stored_message_after_a_redis_restart(
    cluster: Cluster, browser: Browser
) -> None:
    alice = await open_chat(browser, cluster.servers[0].url, "alice")
    options = ClientOptions(backoff=Backoff(base=0.1, cap=1.0), ack_timeout=3.0)
    bob = ChatClient(cluster.servers[1].url, "bob", "bob", options=options)
    try:
        await alice.logged_in("alice")
        await alice.join(ROOM)
        await bob.connect()
        await bob.join(ROOM)
        texts = alice.messages().locator(".message-text")
        await bob.send(ROOM, "before the restart")
        await expect(texts.filter(has_text="before the restart")).to_have_count(1)

        await cluster.stop_redis()
        for k in range(3):  # stored and acknowledged, but published into the void
            await bob.send(ROOM, f"while redis is away {k}")
        await cluster.start_redis()
        # Until server-1 has re-subscribed, bob's messages still miss the page; the
        # first one that arrives shows the page the gap behind it.
        arrived = False
        restarted = time.monotonic()
        for k in range(60):
            await bob.send(ROOM, f"probe {k}")
            try:
                await expect(texts.filter(has_text=f"probe {k}")).to_have_count(1, timeout=500)
            except AssertionError:
                continue
            arrived = True
            break
        assert arrived, "cross-server delivery never resumed"
        print(f"\ncross-server delivery resumed {time.monotonic() - restarted:.2f} s after Redis")

        history = await stored(cluster.db_url or "")
        expected = [m.seq for m in history]
        assert expected == list(range(1, len(history) + 1))
        await expect(alice.messages()).to_have_count(len(history))
        assert await shown_seqs(alice) == expected  # each once, in seq order
        shown = await texts.all_text_contents()
        assert shown == [m.text for m in history]
        assert any(t.startswith("while redis is away") for t in shown)
        repairs = await alice.page.evaluate("window.tutorialChat.gapRepairs")
        assert repairs >= 1  # they came through join-room {since}, not the broadcast
        lag = await alice.page.evaluate("window.tutorialChat.rooms")
        assert lag[ROOM]["lastSeq"] == len(history)
        assert alice.console_errors == []
    finally:
        await bob.close()
        await alice.page.context.close()
