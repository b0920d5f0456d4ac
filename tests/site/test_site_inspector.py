"""The site's step-through page in a real Chromium, without a kernel: click arrow N and
the panel shows event N's bytes, every byte of every WebSocket frame on screen named."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.site.test_site_pages import OUT, SITE, browser, site_url  # noqa: F401  (fixtures)
from tutorial.protocol.annotate import annotate
from tutorial.trace.model import Trace

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def published(name: str) -> dict[str, Any]:
    return json.loads((SITE / "inspector" / f"{name}.json").read_text(encoding="utf-8"))


def recorded(name: str) -> Trace:
    return Trace.from_json((ROOT / "diagrams" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def page(browser: Browser, site_url: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site_url}step-through/", wait_until="load")
    yield page
    assert errors == []
    page.close()


def inspector(page: Page, name: str) -> Any:
    box = page.locator(f'.trace-inspector[data-src$="/{name}.json"]')
    box.scroll_into_view_if_needed()
    expect(box).to_have_class(re.compile(r"\bti-mounted\b"), timeout=15_000)
    return box


def spans_of(card: Any) -> list[tuple[str, int, int]]:
    spans = card.locator(".ti-span")
    return [
        (
            spans.nth(i).get_attribute("data-name"),
            int(spans.nth(i).get_attribute("data-start")),
            int(spans.nth(i).get_attribute("data-end")),
        )
        for i in range(spans.count())
    ]


def test_every_chapter_trace_is_published_with_its_diagrams() -> None:
    for name in ("handshake", "architecture", "event-flow", "rooms", "state-machine", "scaling"):
        doc = published(name)
        assert len(doc["events"]) == len(recorded(name).events), name
        assert doc["views"] and all("seq_row_" in v["svg"] for v in doc["views"]), name


def test_clicking_arrow_n_shows_event_ns_bytes(page: Page) -> None:
    doc, trace = published("handshake"), recorded("handshake")
    box = inspector(page, "handshake")
    frames = next(v for v in doc["views"] if v["name"] == "frames")
    assert box.get_attribute("data-view") == "frames"
    shown = 0
    for k, row in enumerate(frames["rows"]):
        if not row["events"]:
            continue
        n = row["events"][0]
        box.locator(f"#row{k}_label").click()
        expect(box).to_have_attribute("data-event", str(n))
        card = box.locator(f'.ti-card.ti-this-card[data-index="{n}"]')
        expect(card).to_have_count(1)
        event = trace.events[n]
        if event.raw is None:
            continue
        # The panel names exactly the fields the Python model finds in event N's bytes.
        expected = annotate(event.layer, event.raw)
        assert spans_of(card) == [(s.name, s.start, s.end) for s in expected.spans]
        first = expected.spans[0]
        assert card.locator(".ti-span").first.locator(".ti-name").inner_text() == first.name
        shown += 1
    assert shown >= 5
    page.screenshot(path=str(OUT / "site-step-through-handshake.png"))


def test_every_byte_of_every_websocket_frame_on_screen_is_named(page: Page) -> None:
    box = inspector(page, "handshake")
    for _ in range(8):
        for card in box.locator('.ti-card[data-layer="ws"]').all():
            length = int(card.get_attribute("data-length"))
            at = 0
            for _name, start, end in spans_of(card):
                assert start == at, "a gap or an overlap in the frame's fields"
                at = end
            assert at == 8 * length
        if box.locator(".ti-next").is_disabled():
            break
        box.locator(".ti-next").click()


def test_the_broadcast_steps_through_the_seeds_story(page: Page) -> None:
    box = inspector(page, "event-flow")
    assert box.get_attribute("data-view") == "story"
    sentence = box.locator(".ti-sentence")
    expect(sentence).to_contain_text("Step 1: send-message")
    box.locator(".ti-next").click()
    box.locator(".ti-next").click()
    expect(sentence).to_have_text("Step 3: broadcast to room — Server, on its own: no bytes cross the wire.")
    box.locator(".ti-next").click()
    expect(sentence).to_contain_text("Step 4: new-message (echo to sender)")
    # The future is dimmed, the past is not.
    assert box.locator("svg .seq_row.ti-future").count() > 0
    assert box.locator("svg .seq_row_0.ti-future").count() == 0
    expect(box.locator('.ti-card[data-layer="ws"]')).to_have_count(1)  # the frame that carried it
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / "site-step-through-event-flow.png"))


def test_a_frame_and_the_packets_it_carried_are_linked_both_ways(page: Page) -> None:
    doc = published("event-flow")
    box = inspector(page, "event-flow")
    box.locator('.ti-view[data-view="frames"]').click()
    expect(box).to_have_attribute("data-view", "frames")
    frames = next(v for v in doc["views"] if v["name"] == "frames")
    k, n = next(
        (k, r["events"][0])
        for k, r in enumerate(frames["rows"])
        if r["events"] and len(doc["events"][r["events"][0]]["family"]) == 3
    )
    box.locator(f"#row{k}_label").click()
    carried = doc["events"][n]["family"]
    layers = [doc["events"][i]["layer"] for i in carried]
    assert layers == ["ws", "eio", "sio"]
    expect(box.locator(".ti-card")).to_have_count(3)
    sio = carried[2]
    box.locator(f'.ti-card[data-index="{sio}"] .ti-link[data-view="packets"]').click()
    expect(box).to_have_attribute("data-view", "packets")
    expect(box).to_have_attribute("data-event", str(sio))
    box.locator(f'.ti-card[data-index="{n}"] .ti-link[data-view="frames"]').click()
    expect(box).to_have_attribute("data-view", "frames")
    expect(box).to_have_attribute("data-event", str(n))


@pytest.mark.parametrize(
    ("chapter", "view"),
    [("01-handshake", "frames"), ("03-event-flow", "story"), ("05-state-machine", "frames")],
)
def test_a_chapters_inspector_steps_on_its_page_without_a_kernel(
    browser: Browser,  # noqa: F811
    site_url: str,  # noqa: F811
    chapter: str,
    view: str,
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site_url}chapters/{chapter}/", wait_until="load")
    box = page.locator(".trace-inspector").first
    box.scroll_into_view_if_needed()
    expect(box).to_have_class(re.compile(r"\bti-mounted\b"), timeout=15_000)
    expect(box).to_have_attribute("data-view", view)
    first = box.get_attribute("data-event")
    box.locator(".ti-next").click()
    expect(box).not_to_have_attribute("data-event", first or "")
    # Through the run: every frame card on screen names every bit of its frame.
    frames = 0
    for _ in range(12):
        for card in box.locator('.ti-card[data-layer="ws"]').all():
            at = 0
            for _name, start, end in spans_of(card):
                assert start == at, "a gap or an overlap in the frame's fields"
                at = end
            assert at == 8 * int(card.get_attribute("data-length") or 0)
            frames += 1
        if box.locator(".ti-next").is_disabled():
            break
        box.locator(".ti-next").click()
    assert frames >= 2, chapter
    page.screenshot(path=str(OUT / f"site-chapter-inspector-{chapter}.png"))
    assert errors == []
    page.close()
