"""The built site (``make site-build``) in a real Chromium: every page loads without
console errors, and each chapter page shows its diagrams as inline SVG."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
OUT = ROOT / "test-output"
CHAPTERS = [
    "00-start-here",
    "01-handshake",
    "02-architecture",
    "03-event-flow",
    "04-rooms",
    "05-state-machine",
    "06-scaling",
]

pytestmark = pytest.mark.browser


def pages() -> list[str]:
    found = sorted(
        str(p.parent.relative_to(SITE)) for p in SITE.rglob("index.html") if "assets" not in p.parts
    )
    return ["" if p == "." else p + "/" for p in found]


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    assert (SITE / "index.html").exists(), "build the site first: make site-build"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_site_has_every_chapter_page() -> None:
    for chapter in CHAPTERS:
        assert (SITE / "chapters" / chapter / "index.html").exists(), chapter


@pytest.mark.parametrize("path", pages())
def test_page_loads_without_console_errors(browser, site_url: str, path: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(site_url + path, wait_until="load")
    assert response is not None and response.ok, path
    assert errors == [], f"{path}: {errors}"
    page.close()


@pytest.mark.parametrize("chapter", CHAPTERS[1:])
def test_chapter_page_shows_its_diagram_as_svg(browser, site_url: str, chapter: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site_url}chapters/{chapter}/", wait_until="load")
    svgs = page.locator("article svg")
    assert svgs.count() >= 1, f"{chapter}: no inline SVG"
    OUT.mkdir(exist_ok=True)
    svgs.first.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / f"site-{chapter}.png"))
    page.close()


def test_home_page_screenshot(browser, site_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(site_url, wait_until="load")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "site-home.png"), full_page=True)
    assert page.locator("img[src*='diagrams/']").count() >= 6
    page.close()
