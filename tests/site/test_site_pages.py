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


# Words the chapter's own diagram carries (its graphviz title), not just any picture.
CHAPTER_DIAGRAM = {
    "01-handshake": "Seed diagram 1",
    "02-architecture": "Seed diagram 2",
    "03-event-flow": "Seed diagram 3",
    "04-rooms": "Seed diagram 4",
    "05-state-machine": "Client connection states",
    "06-scaling": "Seed diagram 6",
}

# Every graphviz SVG in the article, inline or as an <img> data URI (how notebook output
# reaches the page), with its rendered width and its text.
DIAGRAMS_JS = """
() => {
  const out = [];
  const seen = (svg, width) => {
    if (!svg.includes('class="graph"')) return;  // graphviz's, not an icon
    const text = [...svg.matchAll(/<text[^>]*>([^<]*)<\\/text>/g)].map(m => m[1]).join(" ");
    out.push({ width, text });
  };
  for (const el of document.querySelectorAll("article svg")) {
    seen(el.outerHTML, el.getBoundingClientRect().width);
  }
  for (const img of document.querySelectorAll("article img")) {
    const src = img.getAttribute("src") || "";
    const b64 = src.match(/^data:image\\/svg\\+xml;base64,(.*)$/);
    const utf8 = src.match(/^data:image\\/svg\\+xml[^,]*,(.*)$/);
    const svg = b64 ? atob(b64[1]) : utf8 ? decodeURIComponent(utf8[1]) : null;
    if (svg && img.complete && img.naturalWidth > 0) {
      seen(svg, img.getBoundingClientRect().width);
    }
  }
  return out;
}
"""


def diagram_texts(diagrams: list[dict[str, object]]) -> list[str]:
    """The texts of the diagrams shown at a readable size (wider than 200 px)."""
    return [str(d["text"]) for d in diagrams if float(str(d["width"])) > 200]


@pytest.mark.parametrize("chapter", CHAPTERS[1:])
def test_chapter_page_shows_its_own_diagram(browser, site_url: str, chapter: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site_url}chapters/{chapter}/", wait_until="load")
    texts = diagram_texts(page.evaluate(DIAGRAMS_JS))
    assert any(CHAPTER_DIAGRAM[chapter] in t for t in texts), f"{chapter}: {texts}"
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"site-{chapter}.png"))
    page.close()


def test_the_diagram_check_refuses_icons_and_other_chapters_diagrams() -> None:
    icon = {"width": 24.0, "text": ""}
    tiny = {"width": 24.0, "text": "Seed diagram 3: event flow"}
    other = {"width": 800.0, "text": "Seed diagram 1: the Socket.IO handshake"}
    assert diagram_texts([icon, tiny]) == []
    assert not any(CHAPTER_DIAGRAM["03-event-flow"] in t for t in diagram_texts([other]))


def test_home_page_screenshot(browser, site_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(site_url, wait_until="load")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "site-home.png"), full_page=True)
    assert page.locator("img[src*='diagrams/']").count() >= 6
    page.close()
