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
from tests.jupyterlab.frontend import decode_data_uri
from tests.jupyterlab.svg import smallest_font, viewbox_width

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


# Words the chapter's own diagram carries (its graphviz title): not just any picture.
CHAPTER_DIAGRAM = {
    "01-handshake": "Seed diagram 1",
    "02-architecture": "Seed diagram 2",
    "03-event-flow": "Seed diagram 3",
    "04-rooms": "Seed diagram 4",
    "05-state-machine": "Client connection states",
    "06-scaling": "Seed diagram 6",
}

#: The smallest text a diagram may show, in CSS px, as the page first draws it.
MIN_TEXT_PX = 10.0

DIAGRAMS_JS = """() => [...document.querySelectorAll('article .tutorial-diagram')].map(box => {
    const img = box.querySelector('.tdg-box img');
    const scroller = box.querySelector('.tdg-box');
    const article = box.closest('article').getBoundingClientRect();
    return {
        src: img.getAttribute('src'),
        width: img.getBoundingClientRect().width,
        right: img.getBoundingClientRect().right,
        boxRight: scroller.getBoundingClientRect().right,
        boxWidth: scroller.clientWidth,
        overflowX: getComputedStyle(scroller).overflowX,
        articleRight: article.right,
    };
})"""


def _text_px(svg: str, rendered_width: float) -> float:
    return smallest_font(svg) * rendered_width / viewbox_width(svg)


@pytest.mark.parametrize("chapter", CHAPTERS[1:])
def test_chapter_page_diagrams_are_legible(browser, site_url: str, chapter: str) -> None:  # type: ignore[no-untyped-def]
    """Every diagram on a chapter page is drawn at a size whose smallest text is at
    least 10 px; one wider than the page scrolls sideways in its box (never shrunk),
    and the box's *fit* button shows all of it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site_url}chapters/{chapter}/", wait_until="load")
    diagrams = page.evaluate(DIAGRAMS_JS)
    assert diagrams, f"{chapter}: no diagram"
    titles = [decode_data_uri(d["src"]) for d in diagrams]
    assert any(CHAPTER_DIAGRAM[chapter] in svg for svg in titles), f"{chapter}: not its diagram"
    assert page.locator("article .tutorial-widget-note").count() >= 1, "widget picture"
    for i, d in enumerate(diagrams):
        svg = decode_data_uri(d["src"])
        px = _text_px(svg, d["width"])
        assert px >= MIN_TEXT_PX, f"{chapter} diagram {i}: text drawn at {px:.1f} px"
        assert d["boxRight"] <= d["articleRight"] + 1, f"{chapter} diagram {i}: box too wide"
        if d["right"] > d["boxRight"] + 1:
            assert d["overflowX"] in ("auto", "scroll"), f"{chapter} diagram {i} is cut off"
    widest = max(range(len(diagrams)), key=lambda i: diagrams[i]["width"])
    box = page.locator("article .tutorial-diagram").nth(widest)
    box.scroll_into_view_if_needed()
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"site-{chapter}.png"))
    box.locator(".tdg-zoom-fit").click()
    fitted = box.locator(".tdg-box img").bounding_box()
    assert fitted is not None
    assert fitted["width"] <= diagrams[widest]["boxWidth"] + 1
    page.screenshot(path=str(OUT / f"site-{chapter}-fit.png"))
    page.close()


def test_gallery_diagrams_keep_their_natural_size(browser, site_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site_url}gallery/", wait_until="load")
    figures = page.locator("article figure img")
    assert figures.count() == (ROOT / "docs" / "gallery.md").read_text().count("<figure")
    for i in range(figures.count()):
        img = figures.nth(i)
        src = img.get_attribute("src") or ""
        svg = (SITE / "gallery" / src).resolve().read_text()
        width = img.evaluate("e => e.getBoundingClientRect().width")
        assert _text_px(svg, width) >= MIN_TEXT_PX, f"gallery image {src}"
        link = img.locator("xpath=..")
        assert (link.get_attribute("href") or "").endswith(".svg"), "click opens it alone"
    page.close()


def test_home_page_screenshot(browser, site_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(site_url, wait_until="load")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "site-home.png"), full_page=True)
    assert page.locator("img[src*='diagrams/']").count() >= 6
    page.close()
