"""The ``/trace`` namespace: each page follows its own chat session's diagram.

The page asks for the diagram of its own session on the ``/trace`` namespace, over a
*second* Engine.IO connection (``io("/trace", {forceNew: true, transports: ["websocket"]})``):

    CONNECT /trace  auth = {eio: <main connection's engine id>, token, layer}
    <- diagram {svg, layer, user, lifeline, shown, in_layer, events, rows, version}  (pushed)
    -> layer {layer}      -> follow {eio, token}        (ack {ok, ...})
    -> inspect {version}  (ack {ok, version, doc})

Why a second connection: the diagram pushes must not draw themselves. Because they
travel on a connection of their own, its lifeline is simply dropped from the trace
(``LiveTrace.ignore``), and the chat connection's diagram keeps *every* frame and
packet it really carried, with no filtering of shared frames or polling bodies.

The view re-renders over that client's events only, in a thread (graphviz runs
``dot``), at most every [PUSH_INTERVAL][tutorial.live.view.PUSH_INTERVAL] seconds; a
burst of events becomes one push. The server's own steps (its span hook: "validate
message / add metadata", "broadcast to room", ...) are notes in the diagram of the
client whose event they serve.

Click to inspect: row ``k`` of a pushed SVG (class ``seq_row_k``) is row ``k`` of the
trace inspector's document for that push, which the page asks for with ``inspect``
and the push's ``version`` (the last [KEEP_DRAWN][tutorial.live.view.KEEP_DRAWN] pushes
are kept); the document holds the annotated bytes of the events drawn and of the units
that carried them ([panel_document][tutorial.live.render.panel_document]).

With live tracing off, ``/trace`` refuses the CONNECT with ``live_trace_off`` and a
message saying how to turn it on ([refuse_when_off][tutorial.live.view.refuse_when_off]).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

from tutorial import compat
from tutorial.chat.server import ChatServer
from tutorial.live.render import (
    LAYERS,
    MAX_EVENTS,
    chat_label,
    latest,
    panel_document,
    redact,
    render_svg,
)
from tutorial.live.trace import KEEP_SESSIONS, SERVER_LIFELINE, LiveTrace
from tutorial.protocol.spans import Span
from tutorial.render import stepper
from tutorial.trace.model import TraceEvent
from tutorial.trace.spans import span_note
from tutorial.trace.wiretap import Wiretap

log = logging.getLogger("tutorial.live")

TRACE_NAMESPACE = "/trace"
PUSH_INTERVAL = 0.3
"""At most one push per viewer in this many seconds; a burst becomes one push."""
ASSET_PATH = "/live/"
ASSETS = {"inspector.js": "text/javascript", "inspector.css": "text/css"}
"""The trace inspector's files, served under ``ASSET_PATH`` while live tracing is on."""
KEEP_DRAWN = 4
"""What each viewer keeps of its last pushes, for ``inspect``: a list of references."""
KEEP_CLOSED_CONNECTIONS = 16
"""Closed TCP connections the live wiretap keeps a record of (open ones are all kept)."""
KEEP_SIDS = 4 * KEEP_SESSIONS
"""Sids the live wiretap remembers: an Engine.IO and a Socket.IO sid per session, for
twice the sessions the live trace keeps. With both bounds (and the live trace's own)
the live view's memory stays flat on a server that runs for months."""
OFF_CODE = "live_trace_off"
OFF_MESSAGE = "Live tracing is off. Start the server with: tutorial serve --live-trace"


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Viewer:
    """One page's ``/trace`` connection: whose session it follows, in which layer."""

    sid: str
    layer: str = "chat"
    lifeline: str | None = None
    user: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    unsubscribe: Callable[[], None] | None = None
    pushes: int = 0
    drawn: dict[int, Drawn] = field(default_factory=dict)


@dataclass(frozen=True)
class Drawn:
    """What one push drew: enough to build its inspector document on demand."""

    lifeline: str
    label: str
    layer: str
    kept: tuple[TraceEvent, ...]
    shown: tuple[TraceEvent, ...]


class LiveView:
    """The live diagram of a [ChatServer][tutorial.chat.server.ChatServer]: the wiretap
    in front of it, the live trace, the ``/trace`` namespace and its viewers.

    Built by [attach][tutorial.live.view.attach]: it registers the namespace, becomes the
    server's [Front][tutorial.chat.server.Front] (so ``server.start()`` puts the tap on
    the public address) and adds a span hook that draws the server's own steps.
    """

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.sio: socketio.AsyncServer = server.sio
        self.trace: LiveTrace | None = None
        self.tap: Wiretap | None = None
        self.viewers: dict[str, Viewer] = {}
        self.push_interval = PUSH_INTERVAL
        self.max_events = MAX_EVENTS
        on = self.sio.on
        on("connect", self.on_connect, namespace=TRACE_NAMESPACE)
        on("disconnect", self.on_disconnect, namespace=TRACE_NAMESPACE)
        on("layer", self.on_layer, namespace=TRACE_NAMESPACE)
        on("follow", self.on_follow, namespace=TRACE_NAMESPACE)
        on("inspect", self.on_inspect, namespace=TRACE_NAMESPACE)
        on("*", self.on_unknown, namespace=TRACE_NAMESPACE)
        server.front = self
        server.add_span_hook(self.on_span)
        # Every request now reaches the server through the wiretap on 127.0.0.1: a
        # loopback peer says nothing about who asks, so /stats wants its token.
        server.guard.loopback_means_local = False
        # The trace inspector's script and style, for click-to-inspect on the page.
        for name, kind in ASSETS.items():
            server.app.router.add_get(f"{ASSET_PATH}{name}", self._asset(name, kind))

    @staticmethod
    def _asset(name: str, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(_: web.Request) -> web.Response:
            return web.Response(text=stepper.asset(name), content_type=kind, charset="utf-8")

        return serve

    @property
    def url(self) -> str:
        """The chat's public address (the tap's)."""
        return self.server.url

    # -- the server's front ------------------------------------------------------------

    async def start(self, host: str, port: int, upstream_port: int) -> int:
        """Put the wiretap on ``host:port``, in front of the app on ``upstream_port``."""
        self.trace = LiveTrace()
        self.tap = Wiretap(
            self.trace,
            ("127.0.0.1", upstream_port),
            host=host,
            port=port,
            server_lifeline=SERVER_LIFELINE,
            server_label="Server",
            per_request=True,
            keep_closed=KEEP_CLOSED_CONNECTIONS,
            keep_sids=KEEP_SIDS,
        )
        return await self.tap.start()

    async def stop(self) -> None:
        """Stop the viewers and the tap (its relayed connections close). Safe twice."""
        for viewer in list(self.viewers.values()):
            await self._drop(viewer)
        self.viewers.clear()
        if self.tap is not None:
            await self.tap.stop()

    # -- the server's steps ------------------------------------------------------------

    def on_span(self, span: Span) -> None:
        """A server step (a note) in the diagram of the client whose event it serves."""
        if self.trace is None:
            return
        with contextlib.suppress(Exception):  # a trace must never break the server
            note = span_note(span, SERVER_LIFELINE)
            if note is None:
                return  # what the server sends is on the wire already
            lifeline = self._lifeline_of(span.client_sid)
            if lifeline is not None:
                self.trace.note_for(lifeline, note.label, kind=note.kind, fields=note.fields)

    def _lifeline_of(self, sid: str | None) -> str | None:
        """The lifeline of a ``/`` Socket.IO sid (learned by the tap, or via its eio sid)."""
        if sid is None or self.tap is None:
            return None
        names = self.tap.sid_names
        if sid in names:
            return names[sid]
        eio = compat.engineio_of_sid(self.sio, sid, "/")
        return names.get(eio) if eio else None

    # -- handlers --------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if self.tap is None or self.trace is None:
            raise socketio.exceptions.ConnectionRefusedError(
                OFF_MESSAGE, {"code": OFF_CODE, "message": OFF_MESSAGE}
            )
        # This connection carries the diagrams: it must never be drawn itself.
        own = self.tap.sid_names.get(self._eio_sid(sid) or "")
        if own is not None:
            self.trace.ignore(own)
        auth = auth if isinstance(auth, dict) else {}
        viewer = Viewer(sid, layer=auth.get("layer") if auth.get("layer") in LAYERS else "chat")
        try:
            self._follow(viewer, auth)
        except Refused as err:
            raise socketio.exceptions.ConnectionRefusedError(
                err.message, {"code": err.code, "message": err.message}
            ) from None
        self.viewers[sid] = viewer
        viewer.task = asyncio.create_task(self._pusher(viewer), name=f"live-diagram-{sid}")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        viewer = self.viewers.pop(sid, None)
        if viewer is not None:
            await self._drop(viewer)

    async def on_layer(self, sid: str, data: Any = None) -> dict[str, Any]:
        viewer = self.viewers.get(sid)
        layer = data.get("layer") if isinstance(data, dict) else data
        if viewer is None:
            return {"ok": False, "error": {"code": "not_following", "message": "not following"}}
        if layer not in LAYERS:
            message = f"layer must be one of {', '.join(LAYERS)}"
            return {"ok": False, "error": {"code": "invalid_payload", "message": message}}
        viewer.layer = layer
        viewer.changed.set()
        return {"ok": True, "layer": layer}

    async def on_follow(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Follow another session of this page (after the chat connection reconnected)."""
        viewer = self.viewers.get(sid)
        if viewer is None:
            return {"ok": False, "error": {"code": "not_following", "message": "not following"}}
        try:
            self._follow(viewer, data if isinstance(data, dict) else {})
        except Refused as err:
            return {"ok": False, "error": {"code": err.code, "message": err.message}}
        return {"ok": True, "lifeline": viewer.lifeline}

    async def on_inspect(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The inspector's document for one of the last diagrams pushed to this page."""
        viewer = self.viewers.get(sid)
        if viewer is None:
            return {"ok": False, "error": {"code": "not_following", "message": "not following"}}
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            message = "inspect needs {version}: the version of a pushed diagram"
            return {"ok": False, "error": {"code": "invalid_payload", "message": message}}
        drawn = viewer.drawn.get(version)
        if drawn is None:
            message = f"diagram {version} is no longer kept; click the current one"
            return {"ok": False, "error": {"code": "stale_diagram", "message": message}}
        try:
            doc = await asyncio.to_thread(
                panel_document, drawn.lifeline, drawn.label, drawn.kept, drawn.shown, drawn.layer
            )
        except Exception as exc:  # a trace must never break the server
            log.warning("live diagram: inspecting failed: %s", exc)
            message = f"could not inspect: {exc}"
            return {"ok": False, "error": {"code": "inspect_failed", "message": message}}
        return {"ok": True, "version": version, "doc": doc}

    async def on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        message = f"unknown event {event[:40]!r} on {TRACE_NAMESPACE}"
        return {"ok": False, "error": {"code": "unknown_event", "message": message}}

    # -- following a session -----------------------------------------------------------

    def _eio_sid(self, sid: str) -> str | None:
        return compat.engineio_of_sid(self.sio, sid, TRACE_NAMESPACE)

    def _follow(self, viewer: Viewer, auth: Mapping[str, Any]) -> None:
        """Point the viewer at the chat session ``auth["eio"]``, if ``auth["token"]`` owns it."""
        assert self.tap is not None and self.trace is not None
        eio, token = auth.get("eio"), auth.get("token")
        if not isinstance(eio, str) or not isinstance(token, str):
            raise Refused("invalid_payload", "auth needs {eio, token}: the chat connection's")
        tokens = self.server.tokens
        user = tokens.verify(token) if tokens is not None else None
        if user is None:
            raise Refused("auth_failed", "wrong or expired token")
        main_sid = compat.sid_of_engineio(self.sio, eio, "/")
        session = self.server.sessions.get(main_sid) if main_sid else None
        lifeline = self.tap.sid_names.get(eio)
        if session is None or session.user != user or lifeline is None:
            raise Refused("unknown_session", "no chat session of yours with this engine id")
        if viewer.unsubscribe is not None:
            viewer.unsubscribe()
        viewer.lifeline, viewer.user = lifeline, user
        viewer.unsubscribe = self.trace.subscribe(lifeline, viewer.changed.set)
        viewer.changed.set()

    async def _drop(self, viewer: Viewer) -> None:
        if viewer.unsubscribe is not None:
            viewer.unsubscribe()
            viewer.unsubscribe = None
        task, viewer.task = viewer.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- pushing -------------------------------------------------------------------------

    async def _pusher(self, viewer: Viewer) -> None:
        """Render and push whenever the followed session has news; at most every 0.3 s."""
        shown: tuple[Any, ...] | None = None
        while True:
            await viewer.changed.wait()
            viewer.changed.clear()
            assert self.trace is not None
            lifeline, layer, user = viewer.lifeline, viewer.layer, viewer.user
            if lifeline is None:
                continue
            kept = self.trace.events_of(lifeline)
            in_layer = latest(kept, layer, len(kept))
            events = in_layer[-self.max_events :]
            key = (lifeline, layer, len(events), id(events[-1]) if events else None)
            if key == shown:
                continue
            label = f"{user} (you)"
            try:
                svg = await asyncio.to_thread(render_svg, lifeline, label, events, layer)
            except Exception as exc:  # graphviz missing or failing: say so, keep going
                log.warning("live diagram: rendering failed: %s", exc)
                await self._emit(
                    "diagram-error", {"message": f"could not render: {exc}"}, viewer.sid
                )
            else:
                shown = key
                payload = {
                    "svg": svg,
                    "layer": layer,
                    "lifeline": lifeline,
                    "user": user,
                    "shown": len(events),
                    "in_layer": len(in_layer),
                    "events": self.trace.total(lifeline),
                    "rows": [redact(chat_label(e) if layer == "chat" else e.label) for e in events],
                    "version": viewer.pushes + 1,
                }
                viewer.pushes += 1
                viewer.drawn[viewer.pushes] = Drawn(lifeline, label, layer, kept, tuple(events))
                viewer.drawn.pop(viewer.pushes - KEEP_DRAWN, None)
                await self._emit("diagram", payload, viewer.sid)
            await asyncio.sleep(self.push_interval)

    async def _emit(self, event: str, data: dict[str, Any], sid: str) -> None:
        with contextlib.suppress(Exception):
            await self.sio.emit(event, data, to=sid, namespace=TRACE_NAMESPACE)


def attach(server: ChatServer, enabled: bool = True) -> LiveView | None:
    """Plug the live diagram into ``server`` (before ``start``), as ``tutorial serve`` does.

    ``enabled``: a [LiveView][tutorial.live.view.LiveView] (the server then listens behind
    its wiretap). Off: ``/trace`` only refuses, saying how to turn it on; nothing is
    recorded and the server listens itself. Returns the view, or None when off.
    """
    if enabled:
        return LiveView(server)
    refuse_when_off(server)
    return None


def refuse_when_off(server: ChatServer) -> None:
    """Make ``/trace`` refuse every CONNECT with ``live_trace_off`` and how to turn it on."""

    async def refuse(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        raise socketio.exceptions.ConnectionRefusedError(
            OFF_MESSAGE, {"code": OFF_CODE, "message": OFF_MESSAGE}
        )

    server.sio.on("connect", refuse, namespace=TRACE_NAMESPACE)


__all__ = [
    "ASSETS",
    "ASSET_PATH",
    "KEEP_DRAWN",
    "OFF_CODE",
    "OFF_MESSAGE",
    "PUSH_INTERVAL",
    "TRACE_NAMESPACE",
    "Drawn",
    "LiveView",
    "Viewer",
    "attach",
    "refuse_when_off",
]
