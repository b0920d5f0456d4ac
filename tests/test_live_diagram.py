"""The live diagram (``tutorial serve --live-trace``): the ``/trace`` namespace.

python-socketio clients play the browser: a chat connection that logs in, and a
second connection on ``/trace`` that follows it (``auth = {eio, token, layer}``) and
receives ``diagram {svg, ...}`` pushes rendered from what the wiretap recorded.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from conftest import make_config

from tutorial import live
from tutorial.chat.server import ChatServer
from tutorial.protocol.layers import Layer
from tutorial.trace.model import TraceEvent

WAIT = 10.0
HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[live.LiveView]:
    """A demo server with its live view, as ``tutorial serve --live-trace`` runs it."""
    srv = ChatServer(make_config(tmp_path))
    view = live.attach(srv)
    assert view is not None
    await srv.start()
    try:
        yield view
    finally:
        await srv.stop()


class Chat:
    """A logged-in chat connection, with what it received."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.confirmed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.messages: list[dict[str, Any]] = []

        @self.sio.on("connect-confirmed")
        def confirmed(data: dict[str, Any]) -> None:
            if not self.confirmed.done():
                self.confirmed.set_result(data)

        @self.sio.on("new-message")
        def new_message(data: dict[str, Any]) -> None:
            self.messages.append(data)

    async def login(self, url: str, user: str) -> dict[str, Any]:
        await self.sio.connect(url, auth={"username": user, "password": user})
        return await asyncio.wait_for(self.confirmed, WAIT)

    @property
    def eio(self) -> str:
        return str(self.sio.eio.sid)


class Viewer:
    """A ``/trace`` connection: the pushed diagrams, the refusal if any."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.diagrams: list[dict[str, Any]] = []
        self.news = asyncio.Event()
        self.refused: list[Any] = []

        @self.sio.on("connect_error", namespace=live.TRACE_NAMESPACE)
        def refused(data: Any = None) -> None:
            # CONNECT_ERROR {message, data}: data is the server's {code, message}.
            self.refused.append(data.get("data", data) if isinstance(data, dict) else data)

        @self.sio.on("diagram", namespace=live.TRACE_NAMESPACE)
        def diagram(data: dict[str, Any]) -> None:
            self.diagrams.append(data)
            self.news.set()

    async def follow(self, url: str, auth: dict[str, Any]) -> None:
        await self.sio.connect(url, namespaces=[live.TRACE_NAMESPACE], auth=auth, wait_timeout=5)

    async def until(self, check: Any, what: str) -> dict[str, Any]:
        """Wait for a pushed diagram for which ``check(diagram)`` is true."""

        async def wait() -> dict[str, Any]:
            while True:
                for d in reversed(self.diagrams):
                    if check(d):
                        return d
                self.news.clear()
                await self.news.wait()

        try:
            return await asyncio.wait_for(wait(), WAIT)
        except TimeoutError:
            last = self.diagrams[-1]["rows"] if self.diagrams else None
            raise AssertionError(f"no diagram with {what}; last rows: {last}") from None


async def logged_in_pair(url: str, user: str, layer: str = "chat") -> tuple[Chat, Viewer]:
    chat = Chat()
    confirmed = await chat.login(url, user)
    viewer = Viewer()
    await viewer.follow(url, {"eio": chat.eio, "token": confirmed["token"], "layer": layer})
    return chat, viewer


def has_rows(*needles: str) -> Any:
    return lambda d: all(any(n in row for row in d["rows"]) for n in needles)


async def test_the_trace_namespace_pushes_this_sessions_diagram(live_server: live.LiveView) -> None:
    url = live_server.url
    alice, viewer = await logged_in_pair(url, "alice")
    bob = Chat()
    await bob.login(url, "bob")
    try:
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        await bob.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        ack = await alice.sio.call(
            "send-message",
            {"roomId": "general", "text": "Hello bob", "clientMsgId": "a-1"},
            timeout=WAIT,
        )
        assert ack["ok"] is True
        await bob.sio.call(
            "send-message",
            {"roomId": "general", "text": "Hi alice", "clientMsgId": "b-1"},
            timeout=WAIT,
        )
        d = await viewer.until(
            has_rows("send-message", '"Hello bob"', "new-message", '"Hi alice"'),
            "alice's send-message and bob's new-message",
        )
        assert d["layer"] == "chat" and d["user"] == "alice"
        svg = html.unescape(d["svg"])
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "send-message" in svg and "new-message" in svg and "Hi alice" in svg
        assert "alice (you)" in svg and "(this browser)" in svg
        # The login's secrets are not drawn: CONNECT {"password": ...} is redacted.
        assert '"password":"•••"' in svg and '"password":"alice"' not in svg
        # The server's own steps for alice's events are notes between her packets.
        rows = d["rows"]
        sent = next(i for i, r in enumerate(rows) if r.startswith("send-message"))
        assert rows[sent + 1 : sent + 3] == ["validate message / add metadata", "broadcast to room"]
        assert rows[sent + 3].startswith('new-message {"user":"alice","text":"Hello bob"'), rows
        assert "Join new room" in rows and "Validate room" in rows
        # Only alice's session: bob's own send-message is not on her lifeline.
        assert not any('"Hi alice","clientMsgId"' in row for row in d["rows"])
        # The diagram's events are the tap's: the lifeline is alice's session only.
        assert live_server.trace is not None
        events = live_server.trace.events_of(d["lifeline"])
        assert {e.source for e in events} | {e.target for e in events} == {
            d["lifeline"],
            "server",
        }
        assert any(e.layer is Layer.WS for e in events), "every frame is recorded"
    finally:
        for c in (viewer, alice, bob):
            await c.sio.disconnect()


async def test_the_layer_switch_changes_the_view(live_server: live.LiveView) -> None:
    alice, viewer = await logged_in_pair(live_server.url, "alice")
    try:
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        chat = await viewer.until(has_rows("join-room", "room-joined"), "join-room")
        ack = await viewer.sio.call(
            "layer", {"layer": "frames"}, namespace=live.TRACE_NAMESPACE, timeout=WAIT
        )
        assert ack == {"ok": True, "layer": "frames"}
        frames = await viewer.until(lambda d: d["layer"] == "frames", "frames")
        assert any(row.startswith("TCP connect") for row in frames["rows"]), frames["rows"]
        assert any("GET /socket.io/" in row for row in frames["rows"]), frames["rows"]
        assert frames["svg"] != chat["svg"]
        ack = await viewer.sio.call(
            "layer", {"layer": "packets"}, namespace=live.TRACE_NAMESPACE, timeout=WAIT
        )
        packets = await viewer.until(lambda d: d["layer"] == "packets", "packets")
        assert any(row.startswith("eio ") for row in packets["rows"]), packets["rows"]
        assert packets["svg"] not in (chat["svg"], frames["svg"])
        bad = await viewer.sio.call(
            "layer", {"layer": "bytes"}, namespace=live.TRACE_NAMESPACE, timeout=WAIT
        )
        assert bad["ok"] is False and bad["error"]["code"] == "invalid_payload"
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_trace_traffic_never_appears_in_the_diagram(live_server: live.LiveView) -> None:
    alice, viewer = await logged_in_pair(live_server.url, "alice", layer="frames")
    try:
        for layer in ("packets", "frames", "chat"):
            await viewer.sio.call(
                "layer", {"layer": layer}, namespace=live.TRACE_NAMESPACE, timeout=WAIT
            )
            await viewer.until(lambda d, layer=layer: d["layer"] == layer, layer)
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        await viewer.until(has_rows("room-joined"), "room-joined")
        trace = live_server.trace
        assert trace is not None
        for event in trace.events:
            assert event.fields.get("namespace") != live.TRACE_NAMESPACE, event
            assert b"/trace" not in (event.raw or b""), event
            assert b"<svg" not in (event.raw or b""), event
        assert len(viewer.diagrams) >= 4
        for d in viewer.diagrams:
            assert "/trace" not in d["svg"] and "diagram" not in " ".join(d["rows"])
        assert len(trace.ignored) == 1, "the /trace connection's lifeline is dropped"
        assert trace.ignored.isdisjoint(e.source for e in trace.events)
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_a_hostile_message_is_escaped_in_the_svg(live_server: live.LiveView) -> None:
    alice, viewer = await logged_in_pair(live_server.url, "alice")
    try:
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        await alice.sio.call(
            "send-message",
            {"roomId": "general", "text": HOSTILE, "clientMsgId": "evil-1"},
            timeout=WAIT,
        )
        d = await viewer.until(has_rows("new-message", "<img src=x"), "the hostile text")
        svg = d["svg"]
        assert "&lt;img src=x onerror=" in svg
        assert "<img" not in svg and "<script" not in svg
        assert "&amp;" in svg or "…" in svg
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_following_needs_the_owners_token(live_server: live.LiveView) -> None:
    alice = Chat()
    await alice.login(live_server.url, "alice")
    bob = Chat()
    bob_confirmed = await bob.login(live_server.url, "bob")
    spy = Viewer()
    try:
        # bob's valid token does not open alice's session; a forged token opens nothing.
        with pytest.raises(socketio.exceptions.ConnectionError):
            await spy.follow(
                live_server.url,
                {"eio": alice.eio, "token": bob_confirmed["token"], "layer": "chat"},
            )
        assert spy.refused[-1]["code"] == "unknown_session"
        with pytest.raises(socketio.exceptions.ConnectionError):
            await spy.follow(live_server.url, {"eio": alice.eio, "token": "forged"})
        assert spy.refused[-1]["code"] == "auth_failed"
        assert spy.diagrams == []
    finally:
        for c in (spy, alice, bob):
            await c.sio.disconnect()


async def test_without_live_trace_the_namespace_says_how_to_turn_it_on(tmp_path: Path) -> None:
    server = ChatServer(make_config(tmp_path))
    assert live.attach(server, enabled=False) is None
    assert server.front is None
    await server.start()
    alice = Chat()
    confirmed = await alice.login(server.url, "alice")
    viewer = Viewer()
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await viewer.follow(server.url, {"eio": alice.eio, "token": confirmed["token"]})
        assert viewer.refused[-1]["code"] == live.OFF_CODE
        assert "--live-trace" in viewer.refused[-1]["message"]
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()
        await server.stop()


async def test_bursts_are_coalesced(live_server: live.LiveView) -> None:
    live_server.push_interval = 0.5
    alice, viewer = await logged_in_pair(live_server.url, "alice")
    try:
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        await viewer.until(has_rows("room-joined"), "room-joined")
        before = len(viewer.diagrams)
        for i in range(10):
            await alice.sio.call(
                "send-message",
                {"roomId": "general", "text": f"burst {i}", "clientMsgId": f"burst-{i}"},
                timeout=WAIT,
            )
        d = await viewer.until(has_rows('"burst 9"'), "the last message of the burst")
        assert len(viewer.diagrams) - before <= 6, "ten messages, a few pushes"
        assert d["shown"] <= live.MAX_EVENTS < d["events"] or d["shown"] == d["events"]
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_sessions_sharing_a_keep_alive_connection_keep_their_own_lifelines(
    tmp_path: Path,
) -> None:
    """A browser reuses its HTTP/1.1 connections: lifelines follow sids, request by request."""
    # Short long-polls and timeouts, so that the shared connections free up quickly.
    config = make_config(tmp_path, ping_interval=0.5, ping_timeout=1.0)
    live_server = ChatServer(config)
    view = live.attach(live_server)
    assert view is not None
    await live_server.start()
    # Three TCP connections for two long-polling sessions (each holds one for its long
    # poll): the requests of both sessions share them.
    connector = aiohttp.TCPConnector(limit=3)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = [socketio.AsyncClient(reconnection=False, http_session=http) for _ in range(2)]
        try:
            for client, user in zip(clients, ("alice", "bob"), strict=True):
                await client.connect(
                    live_server.url,
                    auth={"username": user, "password": user},
                    transports=["polling"],
                )
            for client in clients:
                await client.call("join-room", {"roomId": "general"}, timeout=WAIT)
            tap = view.tap
            trace = view.trace
            assert tap is not None and trace is not None
            assert len(tap.connections) <= 3
            sids = [str(c.eio.sid) for c in clients]
            lifelines = [tap.sid_names[sid] for sid in sids]
            assert lifelines[0] != lifelines[1]
            for sid, other, lifeline in zip(sids, reversed(sids), lifelines, strict=True):
                targets = [
                    str(e.fields.get("target", ""))
                    for e in trace.events_of(lifeline)
                    if e.layer is Layer.HTTP and e.source == lifeline
                ]
                assert any(f"sid={sid}" in t for t in targets), targets
                assert not any(f"sid={other}" in t for t in targets), targets
        finally:
            for client in clients:
                await client.disconnect()
            await live_server.stop()


async def test_follow_moves_the_viewer_to_a_new_session(live_server: live.LiveView) -> None:
    """After the chat connection reconnects (a new Engine.IO session), the page re-follows."""
    first, viewer = await logged_in_pair(live_server.url, "alice")
    second = Chat()
    try:
        d = await viewer.until(has_rows("connect-confirmed"), "the first session")
        confirmed = await second.login(live_server.url, "alice")
        ack = await viewer.sio.call(
            "follow",
            {"eio": second.eio, "token": confirmed["token"]},
            namespace=live.TRACE_NAMESPACE,
            timeout=WAIT,
        )
        assert ack["ok"] is True and ack["lifeline"] != d["lifeline"]
        await second.sio.call("join-room", {"roomId": "tech-talk"}, timeout=WAIT)
        moved = await viewer.until(has_rows('"roomId":"tech-talk"'), "the second session")
        assert moved["lifeline"] == ack["lifeline"]
        bad = await viewer.sio.call(
            "follow", {"eio": "nope", "token": confirmed["token"]}, namespace=live.TRACE_NAMESPACE
        )
        assert bad["ok"] is False and bad["error"]["code"] == "unknown_session"
    finally:
        for c in (viewer, first, second):
            await c.sio.disconnect()


def test_the_live_trace_is_bounded_and_forgets_the_least_recently_active() -> None:
    trace = live.LiveTrace(keep_events=3, keep_sessions=2)
    for name in ("a", "b", "c"):
        trace.add_lifeline(name)
    trace.add_lifeline("server", "Server", "server")
    heard: list[str] = []
    trace.subscribe("a", lambda: heard.append("a"))
    for i in range(5):
        trace.record("a", "server", Layer.SIO, f"a{i}")
    trace.record("server", "b", Layer.SIO, "b0")
    trace.record("a", "server", Layer.SIO, "a5")  # a is active again: b is the oldest
    trace.record("c", "server", Layer.SIO, "c0")
    assert [e.label for e in trace.events_of("a")] == ["a3", "a4", "a5"]
    assert trace.events_of("b") == ()
    assert trace.total("a") == 6 and len(heard) == 6
    assert [e.label for e in trace.events] == ["a3", "a4", "a5", "c0"]
    trace.ignore("c")
    trace.record("c", "server", Layer.SIO, "c1")
    assert trace.events_of("c") == ()


def test_chat_labels_and_redaction() -> None:
    event = TraceEvent(
        0.0,
        "alice",
        "server",
        Layer.SIO,
        'sio EVENT ["send-message",{…}] id=3',
        fields={
            "type": "EVENT",
            "namespace": "/",
            "id": 3,
            "event": "send-message",
            "args": [{"roomId": "general", "text": "hi", "clientMsgId": "c1"}],
        },
    )
    assert live.chat_label(event) == (
        'send-message #3 {"text":"hi","roomId":"general","clientMsgId":"c1"}'
    )
    assert live.redact('CONNECT {"username":"alice","password":"s3cret","token":"t.x"}') == (
        'CONNECT {"username":"alice","password":"•••","token":"•••"}'
    )


async def test_the_live_wiretap_remembers_a_bounded_number_of_connections_and_sids(
    live_server: live.LiveView,
) -> None:
    # The bounds themselves are tested on a tap in tests/test_wiretap.py; here: the live
    # view, which runs as long as the server, sets them.
    from tutorial.live.view import KEEP_CLOSED_CONNECTIONS, KEEP_SIDS

    tap = live_server.tap
    assert tap is not None
    assert tap.keep_closed == KEEP_CLOSED_CONNECTIONS and tap.names.keep_sids == KEEP_SIDS
    assert live_server.trace is not None and live_server.trace.keep_sessions * 4 == KEEP_SIDS


# -- click-to-inspect: the ``inspect`` documents ----------------------------------------


def svg_row_texts(svg: str) -> dict[int, str]:
    """Row k's label or note text in a pushed SVG (``id="row{k}_label"`` / ``_note``)."""
    texts: dict[int, str] = {}
    for m in re.finditer(r'<g id="row(\d+)_(?:label|note)".*?</g>', svg, re.S):
        words = re.findall(r"<text[^>]*>(.*?)</text>", m.group(0), re.S)
        texts[int(m.group(1))] = html.unescape(" ".join(words))
    return texts


async def inspect(viewer: Viewer, payload: Any) -> dict[str, Any]:
    ack: dict[str, Any] = await viewer.sio.call(
        "inspect", payload, namespace=live.TRACE_NAMESPACE, timeout=WAIT
    )
    return ack


async def test_each_row_of_a_pushed_diagram_can_be_inspected(live_server: live.LiveView) -> None:
    alice, viewer = await logged_in_pair(live_server.url, "alice")
    try:
        await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        await alice.sio.call(
            "send-message",
            {"roomId": "general", "text": "Hello bob", "clientMsgId": "a-1"},
            timeout=WAIT,
        )
        d = await viewer.until(has_rows("send-message", "new-message"), "send-message")
        ack = await inspect(viewer, {"version": d["version"]})
        assert ack["ok"] is True and ack["version"] == d["version"]
        doc = ack["doc"]
        (view,) = doc["views"]
        assert view["name"] == "chat" and view["svg"] == ""  # the page has the diagram
        texts = svg_row_texts(d["svg"])
        rows = view["rows"]
        assert len(rows) == len(texts) == max(texts) + 1
        # Row k of the document is row k of the SVG: the same event, the same note.
        for k, row in enumerate(rows):
            (index,) = row["events"]
            event = doc["events"][index]
            if event["layer"] == "app":
                assert texts[k].endswith(event["label"]), (k, texts[k], event)
                continue
            decoded = dict(event["bytes"]["decoded"])
            said = decoded.get("event") or ("ack" if "ACK" in event["label"] else "CONNECT")
            assert said in texts[k], (k, texts[k], decoded)
        # The send-message row: its packet, and the frame and Engine.IO packet that carried it.
        k = next(k for k, t in texts.items() if "send-message" in t)
        sio = doc["events"][rows[k]["events"][0]]
        assert "'send-message' event" in sio["sentence"]
        family = [doc["events"][i] for i in sio["family"]]
        assert [e["layer"] for e in family] == ["ws", "eio", "sio"]
        frame = family[0]["bytes"]
        names = [s["name"] for s in frame["spans"]]
        assert names[:7] == ["FIN", "RSV1", "RSV2", "RSV3", "opcode", "MASK", "payload length"]
        assert names[-2:] == ["masking key", "payload"]
        assert [s["start"] for s in frame["spans"][1:]] == [s["end"] for s in frame["spans"][:-1]]
        assert frame["spans"][-1]["end"] == 8 * frame["length"]
        assert family[0]["carries"] == [sio["carried_by"][0]]
        # The login's secret is hidden in the text and in the bytes.
        connect = doc["events"][rows[0]["events"][0]]
        assert '"password":"•••"' in connect["label"]
        assert "alice" not in json.dumps(connect["bytes"]["decoded"]).split("password")[1]
        assert "61 6c 69 63 65" not in json.dumps(connect["bytes"]["spans"]).split("password")[-1]
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_inspect_answers_a_bad_or_forgotten_version_with_an_error(
    live_server: live.LiveView,
) -> None:
    alice, viewer = await logged_in_pair(live_server.url, "alice")
    try:
        d = await viewer.until(has_rows("connect-confirmed"), "connect-confirmed")
        for payload in (None, {}, {"version": "1"}, {"version": True}, [d["version"]]):
            ack = await inspect(viewer, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", payload
        ack = await inspect(viewer, {"version": d["version"] + 1000})
        assert ack["ok"] is False and ack["error"]["code"] == "stale_diagram"
        # Only the last KEEP_DRAWN pushes are kept.
        last = d["version"]
        for layer in ("packets", "frames", "chat", "packets", "frames"):
            await viewer.sio.call(
                "layer", {"layer": layer}, namespace=live.TRACE_NAMESPACE, timeout=WAIT
            )
            pushed = await viewer.until(
                lambda p, layer=layer, last=last: p["layer"] == layer and p["version"] > last,
                layer,
            )
            last = pushed["version"]
        assert last - d["version"] >= live.KEEP_DRAWN
        assert (await inspect(viewer, {"version": d["version"]}))["error"]["code"] == (
            "stale_diagram"
        )
        assert (await inspect(viewer, {"version": last}))["ok"] is True
        # The chat connection still works: a refused inspect is the viewer's business only.
        ack = await alice.sio.call("join-room", {"roomId": "general"}, timeout=WAIT)
        assert ack["ok"] is True
    finally:
        for c in (viewer, alice):
            await c.sio.disconnect()


async def test_the_inspector_script_and_style_are_served_while_live_tracing_is_on(
    live_server: live.LiveView, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        for name, kind in live.ASSETS.items():
            async with http.get(f"{live_server.url}/live/{name}") as response:
                assert response.status == 200 and response.content_type == kind
                assert "seq_row" in await response.text()
    off = ChatServer(make_config(tmp_path / "off"))
    live.attach(off, enabled=False)
    await off.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{off.url}/live/inspector.js") as response,
        ):
            assert response.status == 404
    finally:
        await off.stop()
