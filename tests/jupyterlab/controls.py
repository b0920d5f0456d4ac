"""What a learner does with each chapter's widgets, and what the picture must show after.

One table, :data:`CONTROLS`: chapter -> rows. A row names a widget (a CSS class the
widget sets on its root), the actions a learner takes there (toggle a button, move a
slider, type, click *Run again*), and what must then be true, read from the rendered
page: the widget's new picture (decoded from its ``<img>`` data URI), its caption, a
chat window. To cover a new control, add a row; a helper that builds actions or
expectations goes here too.

A row with ``redraws=True`` waits until the widget's picture has a new run number
(``data-run``) or shows an error banner, so a redraw that never arrives fails the row
instead of passing on the old picture.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.jupyterlab import svg as svgtext
from tests.jupyterlab.frontend import decode_data_uri

WAIT_MS = 30_000


@dataclass
class View:
    """A widget as the learner sees it after the actions."""

    root: Any  # a Playwright locator

    @property
    def page(self) -> Any:
        return self.root.page

    @property
    def svg(self) -> str:
        img = self.root.locator(".tutorial-picture img").first
        return decode_data_uri(img.get_attribute("src") or "")

    @property
    def text(self) -> str:
        return svgtext.text(self.svg)

    @property
    def caption(self) -> str:
        return self.root.locator(".tutorial-picture .tdg-caption").first.inner_text()


Action = Callable[[Any], None]
Expect = Callable[[View], "str | None"]


@dataclass
class Control:
    """One thing a learner does with one widget, and what it must change."""

    name: str
    widget: str
    actions: tuple[Action, ...]
    expect: tuple[Expect, ...] = ()
    redraws: bool = True
    wait_ms: int = WAIT_MS  # how long the redraw may take


# -- actions ----------------------------------------------------------------------------


def _described(root: Any, kind: str, description: str) -> Any:
    return root.locator(f".{kind}").filter(
        has=root.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(description)}$"))
    )


def toggle(label: str) -> Action:
    def act(root: Any) -> None:
        root.locator(".widget-toggle-button", has_text=re.compile(f"^{re.escape(label)}$")).click()

    return act


def slider(description: str, value: int) -> Action:
    def act(root: Any) -> None:
        readout = _described(root, "widget-slider", description).locator(".widget-readout")
        readout.click()
        readout.press("Control+a")
        readout.type(str(value))
        readout.press("Enter")

    return act


def checkbox(description: str) -> Action:
    def act(root: Any) -> None:
        root.locator(".widget-checkbox", has_text=description).locator("input").click()

    return act


def dropdown(description: str, value: str) -> Action:
    def act(root: Any) -> None:
        _described(root, "widget-dropdown", description).locator("select").select_option(value)

    return act


def fill(description: str, text: str) -> Action:
    def act(root: Any) -> None:
        _described(root, "widget-text", description).locator("input").fill(text)

    return act


def choose(description: str, values: list[str]) -> Action:
    def act(root: Any) -> None:
        _described(root, "widget-select-multiple", description).locator("select").select_option(
            values
        )

    return act


def click(label: str) -> Action:
    def act(root: Any) -> None:
        root.locator("button", has_text=re.compile(f"^\\s*{re.escape(label)}\\s*$")).first.click()

    return act


def click_css(selector: str) -> Action:
    def act(root: Any) -> None:
        root.locator(selector).first.click()

    return act


def type_and_enter(selector: str, text: str) -> Action:
    def act(root: Any) -> None:
        box = root.locator(selector)
        box.click()
        box.press_sequentially(text)
        box.press("Enter")

    return act


def type_only(selector: str, text: str) -> Action:
    def act(root: Any) -> None:
        box = root.locator(selector)
        box.click()
        box.press_sequentially(text)

    return act


def wait_for(selector: str, text: str | None = None, timeout_ms: int = WAIT_MS) -> Action:
    """Wait (event-driven, in the page) until ``selector`` shows (with ``text``)."""

    def act(root: Any) -> None:
        target = root.locator(selector)
        if text is not None:
            target = target.filter(has_text=text)
        target.first.wait_for(state="visible", timeout=timeout_ms)

    return act


def click_row(text: str, *, last: bool = False) -> Action:
    """Click the arrow of the inspector's diagram whose label has ``text``."""

    def act(root: Any) -> None:
        rows = root.locator(".ti-diagram g.node.seq_row", has_text=text)
        (rows.last if last else rows.first).click()

    return act


def wait_hidden(selector: str) -> Action:
    def act(root: Any) -> None:
        root.locator(selector).first.wait_for(state="hidden", timeout=WAIT_MS)

    return act


# -- expectations ---------------------------------------------------------------------


def shows(*lines: str) -> Expect:
    def check(view: View) -> str | None:
        text = view.text
        missing = [line for line in lines if line not in text]
        return f"the picture lacks {missing}" if missing else None

    return check


def lacks(*lines: str) -> Expect:
    def check(view: View) -> str | None:
        text = view.text
        present = [line for line in lines if line in text]
        return f"the picture still shows {present}" if present else None

    return check


def caption_says(text: str) -> Expect:
    def check(view: View) -> str | None:
        caption = view.caption
        return None if text in caption else f"caption {caption!r} lacks {text!r}"

    return check


def in_node(node_line: str, *lines: str, absent: tuple[str, ...] = ()) -> Expect:
    """The node that draws ``node_line`` also draws every one of ``lines``, and none of
    ``absent`` (e.g. a room box and its members)."""

    def check(view: View) -> str | None:
        node = svgtext.node_with(view.svg, node_line)
        if not node:
            return f"no node draws {node_line!r}"
        joined = "\n".join(node)
        missing = [x for x in lines if x not in joined]
        extra = [x for x in absent if x in joined]
        if missing or extra:
            return f"node {node_line!r} shows {node}: missing {missing}, unexpected {extra}"
        return None

    return check


def own_attribute(name: str, value: str) -> Expect:
    """The widget's root element has ``name="value"`` (the inspector's cursor)."""

    def check(view: View) -> str | None:
        got = view.root.get_attribute(name)
        return None if got == value else f"[{name}] is {got!r}, not {value!r}"

    return check


FRAME_CARDS_JS = """(root) => [...root.querySelectorAll('.ti-card[data-layer="ws"]')]
  .map((card) => ({
    length: Number(card.dataset.length),
    spans: [...card.querySelectorAll('.ti-span')].map((s) => [
        s.dataset.name, Number(s.dataset.start), Number(s.dataset.end)]),
}))"""


def frames_named(at_least: int = 1) -> Expect:
    """Every WebSocket frame card on screen names every bit of its frame, once: its
    fields follow each other with no gap or overlap and end at the frame's last bit."""

    def check(view: View) -> str | None:
        cards = view.root.evaluate(FRAME_CARDS_JS)
        if len(cards) < at_least:
            return f"{len(cards)} frame cards on screen, expected at least {at_least}"
        for card in cards:
            at = 0
            for name, start, end in card["spans"]:
                if start != at or end <= start:
                    return f"field {name!r} covers bits {start}-{end}, expected from {at}"
                at = end
            if at != 8 * card["length"]:
                return f"the fields end at bit {at} of a {card['length']}-byte frame"
        return None

    return check


def current_state(state: str) -> Expect:
    return in_node(state, "(current)")


def page_text(selector: str, text: str) -> Expect:
    def check(view: View) -> str | None:
        found = view.root.locator(selector).first.inner_text()
        return None if text in found else f"{selector} shows {found!r}, not {text!r}"

    return check


def attribute(selector: str, name: str, value: str) -> Expect:
    def check(view: View) -> str | None:
        got = view.root.locator(selector).first.get_attribute(name)
        return None if got == value else f"{selector}[{name}] is {got!r}, not {value!r}"

    return check


# -- the table -------------------------------------------------------------------------

HANDSHAKE = ".tutorial-explorer-handshake"
ARCHITECTURE = ".tutorial-explorer-architecture"
EVENT_FLOW = ".tutorial-explorer-event-flow"
STATE_MACHINE = ".tutorial-explorer-state-machine"
SCALING = ".tutorial-explorer-scaling"
PANELS = ".tutorial-chat-panels"
ROOMS = ".tutorial-rooms"
STATES = ".tutorial-states"
INSPECTOR = ".trace-inspector"
REDIS_DRILL = ".tutorial-drill-redis-failover"
DATABASE_DRILL = ".tutorial-drill-database-failover"
#: After Run All (the teardown stopped the cluster) a drill starts a whole cluster first.
DRILL_MS = 120_000


def snapshot(name: str) -> Action:
    """A screenshot of the page as it is now (before the next action)."""

    def act(root: Any) -> None:
        from tests.jupyterlab.frontend import OUTPUT

        OUTPUT.mkdir(parents=True, exist_ok=True)
        root.scroll_into_view_if_needed()
        root.page.screenshot(path=str(OUTPUT / name))

    return act


def start_again(widget: str) -> tuple[Action, ...]:
    """After Run All (the teardown ran): the widget says its chat stopped; start it."""
    return (
        wait_for(".tutorial-chat-status", "This chat has stopped"),
        snapshot(f"stopped-{widget}.png"),
        click("Start again"),
    )


CONTROLS: dict[str, list[Control]] = {
    "00-start-here": [],
    "01-handshake": [
        Control(
            "websocket",
            HANDSHAKE,
            (toggle("websocket"), click("Run again")),
            (
                caption_says("transport='websocket'"),
                shows("transport=websocket"),
                lacks("PING probe", "transport=polling"),
            ),
        ),
        Control(
            "polling",
            HANDSHAKE,
            (toggle("polling"), click("Run again")),
            (caption_says("transport='polling'"), shows("PING probe", "UPGRADE")),
        ),
        Control("frames", HANDSHAKE, (toggle("frames"),), (shows("TEXT fin=1"),)),
        Control("chat", HANDSHAKE, (toggle("chat events"),), (lacks("TEXT fin=1", "101"),)),
        Control("story", HANDSHAKE, (toggle("the story"),), (shows("Seed diagram 1"),)),
        Control(
            "inspector-steps-to-the-101",
            INSPECTOR,
            (click_css(".ti-next"), click_css(".ti-next")),
            (
                page_text(".ti-sentence", "the server agrees to switch protocols"),
                page_text(".ti-this-card", "Sec-WebSocket-Accept"),
            ),
            redraws=False,
        ),
        Control(
            "inspector-a-client-frame",
            INSPECTOR,
            (click_row("mask=1"),),
            (
                page_text(".ti-sentence", "masked, as every client frame must be"),
                page_text(".ti-this-card", "masking key"),
                frames_named(),
            ),
            redraws=False,
        ),
        Control(
            "inspector-show-in-packets",
            INSPECTOR,
            (click_css('.ti-card[data-layer="sio"] .ti-link[data-view="packets"]'),),
            (own_attribute("data-view", "packets"), page_text(".ti-this-card", "Socket.IO")),
            redraws=False,
        ),
    ],
    "02-architecture": [
        Control(
            "two-clients",
            ARCHITECTURE,
            (slider("clients", 2), click("Run again")),
            (caption_says("clients=2"), shows("alice", "bob"), lacks("charlie")),
        ),
        Control(
            "seven-clients",
            ARCHITECTURE,
            (slider("clients", 7), click("Run again")),
            (caption_says("clients=7"), shows("grace", "7 rows")),
        ),
        Control("chat-layer", ARCHITECTURE, (toggle("chat events"),), (shows("new-message"),)),
    ],
    "03-event-flow": [
        Control(
            "text-and-users",
            EVENT_FLOW,
            (
                fill("text", "Ciao a tutti"),
                choose("users", ["alice", "bob", "eve"]),
                click("Run again"),
            ),
            (shows("Ciao a tutti", "eve"), lacks("charlie", "diana")),
        ),
        Control("packets", EVENT_FLOW, (toggle("packets"),), (shows("sio CONNECT"),)),
        Control(
            "inspector-broadcast-step",
            INSPECTOR,
            (click_css(".ti-next"), click_css(".ti-next")),
            (
                page_text(".ti-sentence", "Step 3: broadcast to room"),
                page_text(".ti-nobytes", "the server did this on its own"),
            ),
            redraws=False,
        ),
        Control(
            "inspector-to-every-member",
            INSPECTOR,
            (click_css(".ti-next"), click_css(".ti-next"), click_css(".ti-next")),
            (
                page_text(".ti-sentence", "Step 6"),
                page_text(".ti-fanout", "This arrow went to"),
                frames_named(),
            ),
            redraws=False,
        ),
        Control(
            "panels-stopped-then-start-again",
            PANELS,
            start_again("panels"),
            (),
            redraws=False,
        ),
        Control(
            "panels-enter-sends",
            PANELS,
            (
                wait_hidden(".tutorial-start-again"),
                type_and_enter(".tutorial-chat-panel-alice input", "sent with Enter"),
                wait_for(".tutorial-chat-panel-diana", "sent with Enter"),
                wait_for(".tutorial-chat-panel-alice", "sent with Enter"),
            ),
            (),
            redraws=False,
        ),
        Control(
            "panels-typing-and-send",
            PANELS,
            (
                type_only(".tutorial-chat-panel-bob input", "sent with the button"),
                wait_for(".tutorial-chat-panel-alice", "bob typing"),
                click_css(".tutorial-chat-panel-bob .tutorial-send"),
                wait_for(".tutorial-chat-panel-charlie", "sent with the button"),
            ),
            (),
            redraws=False,
        ),
    ],
    "04-rooms": [
        Control(
            "rooms-start-again", ROOMS, start_again("rooms"), (in_node('Room: "general"', "alice"),)
        ),
        Control(
            "eve-refused",
            ROOMS,
            (dropdown("user", "eve"), dropdown("room", "project-alpha"), click("Join")),
            (
                attribute(".tutorial-rooms-outcome", "data-outcome", "forbidden"),
                in_node('Room: "project-alpha"', "bob", absent=("eve",)),
            ),
        ),
        Control(
            "grace-joins-general",
            ROOMS,
            (dropdown("user", "grace"), dropdown("room", "general"), click("Join")),
            (
                attribute(".tutorial-rooms-outcome", "data-outcome", "ok"),
                in_node('Room: "general"', "grace"),
            ),
        ),
        Control(
            "grace-leaves-general",
            ROOMS,
            (click("Leave"),),
            (in_node('Room: "general"', "alice", absent=("grace",)),),
        ),
    ],
    "05-state-machine": [
        Control("states-start-again", STATES, start_again("states"), (current_state("CONNECTED"),)),
        Control(
            "stop-server",
            STATES,
            (click("Stop server"), wait_for(".tutorial-state[data-state='RECONNECTING']")),
            (current_state("RECONNECTING"),),
            redraws=False,
        ),
        Control(
            "start-server",
            STATES,
            (click("Start server"), wait_for(".tutorial-state[data-state='CONNECTED']")),
            (current_state("CONNECTED"),),
            redraws=False,
        ),
        *[
            Control(
                f"fault-{fault}",
                STATE_MACHINE,
                (dropdown("fault", fault), click("Run again")),
                (caption_says(f"fault='{fault}'"), *expect),
            )
            for fault, expect in (
                ("timeout", (current_state("CONNECTED"), shows("[3]"))),
                ("down", (current_state("DISCONNECTED"), shows("[5] manual reset"))),
                ("bad_password", (current_state("DISCONNECTED"), shows("ERROR"))),
                ("rate_limit", (shows("fault = rate_limit", "stays CONNECTED", "rate_limited"),)),
                ("restart", (current_state("CONNECTED"), shows("[4]"))),
            )
        ],
        # The inspector steps through the run made when its cell ran (fault restart).
        Control(
            "inspector-close-frame",
            INSPECTOR,
            (click_row("CLOSE 1000"),),
            (page_text(".ti-sentence", "close frame, status 1000"), frames_named()),
            redraws=False,
        ),
        Control(
            "inspector-refused-connect",
            INSPECTOR,
            (click_row("TCP refused"),),
            (page_text(".ti-sentence", "refused: nothing listens on that port"),),
            redraws=False,
        ),
        Control(
            "inspector-reconnect-offsets",
            INSPECTOR,
            (click_css('.ti-view[data-view="packets"]'), click_row("sio CONNECT {…}", last=True)),
            (
                own_attribute("data-view", "packets"),
                page_text(".ti-sentence", "asks to connect to namespace / with its credentials"),
                page_text(".ti-this-card", "offsets"),
            ),
            redraws=False,
        ),
    ],
    "06-scaling": [
        Control(
            "two-servers",
            SCALING,
            (slider("servers", 2), click("Run again")),
            (caption_says("servers=2"), shows("Server 2"), lacks("Server 3")),
        ),
        Control(
            "no-redis",
            SCALING,
            (checkbox("Redis manager"), click("Run again")),
            (caption_says("redis=False"), lacks("PUBLISH")),
        ),
        # Each click runs the drill for real (Run All leaves the picture empty).
        Control(
            "redis-failover-drill",
            REDIS_DRILL,
            (click("kill -9 the Redis master"),),
            (
                caption_says("kill -9 the Redis master"),
                shows("kill -9 redis-", "replica promoted", "servers re-subscribed"),
                shows("no master yet #", "missing: a", "room-joined"),
                page_text(".widget-html", "on a cluster started for it"),
            ),
            wait_ms=DRILL_MS,
        ),
        Control(
            "database-failover-drill",
            DATABASE_DRILL,
            (click("stop the database primary"),),
            (
                caption_says("stop the database primary"),
                shows("pg_ctl stop: primary", "store_unavailable", "pg_ctl promote replica-1"),
                shows("(outbox)"),
                lacks("kill -9 redis-"),
            ),
            wait_ms=DRILL_MS,
        ),
    ],
}
