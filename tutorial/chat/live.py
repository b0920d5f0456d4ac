"""The browser's live diagram: ``tutorial serve --live-trace``.

With ``ServerConfig.live_trace`` on, :meth:`ChatServer.start` binds the aiohttp app to
an internal port on 127.0.0.1 and puts a :class:`~tutorial.trace.wiretap.Wiretap` on
the public address in front of it. Every byte a browser exchanges with the chat is
relayed unchanged and recorded, layer by layer, into one shared :class:`LiveTrace`
(one lifeline per Engine.IO session, see the wiretap's docstring).

The page asks for the diagram of its own session on the ``/trace`` namespace, over a
*second* Engine.IO connection (``io("/trace", {forceNew: true, transports: ["websocket"]})``)::

    CONNECT /trace  auth = {eio: <main connection's engine id>, token, layer}
    <- diagram {svg, layer, user, lifeline, shown, in_layer, events, rows}  (pushed)
    -> layer {layer}      -> follow {eio, token}        (ack {ok, ...})

Why a second connection: the diagram pushes must not draw themselves. Because they
travel on a connection of their own, its lifeline is simply dropped from the trace
(:meth:`LiveTrace.ignore`), and the chat connection's diagram keeps *every* frame and
packet it really carried, with no filtering of shared frames or polling bodies.

Which lifeline is which session: a browser sends any request on any of its pooled
HTTP/1.1 connections, so :class:`SessionWiretap` names the lifeline request by request
(by the request's ``sid``), not once per TCP connection.

The server re-renders with the project's renderer
(:func:`~tutorial.render.sequence.sequence_diagram`) over that client's events only
(its lifeline and the server), the last :data:`MAX_EVENTS` of the chosen layers, in a
thread (graphviz runs ``dot``), at most every :data:`PUSH_INTERVAL` seconds; a burst
of events becomes one push. In the chat layer a Socket.IO packet is labelled with its
event and payload (:func:`chat_label`), and the server's own steps (its ``span`` hook:
"validate message / add metadata", "broadcast to room", ...) are notes in the diagram
of the client whose event they serve. Every label goes through the renderer's escaping
(``& < >`` become entities), so a message text can never become markup in the SVG;
login secrets (``"password"``, ``"token"`` values) are shown as ``•••``.

With live tracing off, ``/trace`` refuses the CONNECT with ``live_trace_off`` and a
message saying how to turn it on; nothing is recorded and nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import json
import logging
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import socketio

from tutorial.protocol.http import HttpRequest
from tutorial.protocol.layers import Direction, Layer
from tutorial.protocol.stream import C2S, WireEvent
from tutorial.render.sequence import PRESETS, sequence_diagram
from tutorial.trace.model import Lifeline, Trace, TraceEvent
from tutorial.trace.wiretap import TappedConnection, Wiretap

if TYPE_CHECKING:
    from tutorial.chat.server import ChatServer

log = logging.getLogger("tutorial.chat.live")

TRACE_NAMESPACE = "/trace"
LAYERS: tuple[str, ...] = ("chat", "packets", "frames")
#: The diagram shows at most this many events (the latest), so it stays readable.
MAX_EVENTS = 40
#: At most one push per viewer in this many seconds; a burst becomes one push.
PUSH_INTERVAL = 0.3
#: What the live trace keeps: events per client session, and sessions.
KEEP_EVENTS = 2000
KEEP_SESSIONS = 200
MAX_LABEL = 56
SERVER_LIFELINE = "server"
#: The lifeline of plain HTTP requests (the page, its scripts and styles).
WEB_LIFELINE = "web"
ENGINEIO_PATH = "/socket.io/"
OFF_CODE = "live_trace_off"
OFF_MESSAGE = "Live tracing is off. Start the server with: tutorial serve --live-trace"


class LiveTrace(Trace):
    """A bounded :class:`Trace` for a long-running server, kept per client lifeline.

    The wiretap only calls :meth:`add_lifeline`, :meth:`record` and :meth:`elapsed`.
    Each client lifeline keeps its last ``keep_events`` events (the server lifeline is
    shared: an event belongs to its client end); at most ``keep_sessions`` client
    lifelines are kept, the oldest are forgotten first. :meth:`ignore` drops a
    lifeline for good (the ``/trace`` connections). :meth:`subscribe` calls back,
    synchronously, on every event recorded for a lifeline.
    """

    def __init__(
        self,
        server_lifeline: str = SERVER_LIFELINE,
        *,
        keep_events: int = KEEP_EVENTS,
        keep_sessions: int = KEEP_SESSIONS,
    ) -> None:
        super().__init__()
        self.server_lifeline = server_lifeline
        self.keep_events = keep_events
        self.keep_sessions = keep_sessions
        self.ignored: set[str] = set()
        self._sessions: OrderedDict[str, deque[tuple[int, TraceEvent]]] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._listeners: dict[str, set[Callable[[], None]]] = {}
        self._seq = itertools.count()

    def _client_of(self, source: str, target: str) -> str:
        return target if source == self.server_lifeline else source

    def record(
        self,
        source: str,
        target: str,
        layer: Layer | str,
        label: str,
        *,
        fields: Mapping[str, Any] | None = None,
        raw: bytes | None = None,
        kind: str = "message",
        step: int | None = None,
        phase: str | None = None,
        status: str | None = None,
        t: float | None = None,
    ) -> TraceEvent:
        event = self.new_event(
            source,
            target,
            layer,
            label,
            fields=fields,
            raw=raw,
            kind=kind,
            step=step,
            phase=phase,
            status=status,
            t=t,
        )
        self._store(self._client_of(source, target), event)
        return event

    def note_for(
        self,
        client: str,
        label: str,
        *,
        kind: str = "note",
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """A server step taken for ``client``: a note on the server, in its events."""
        event = self.new_event(
            self.server_lifeline,
            self.server_lifeline,
            Layer.APP,
            label.replace("\n", " "),
            fields=fields,
            kind=kind,
        )
        self._store(client, event)

    def _store(self, client: str, event: TraceEvent) -> None:
        if client in self.ignored:
            return
        with self._lock:
            events = self._sessions.get(client)
            if events is None:
                events = self._sessions[client] = deque(maxlen=self.keep_events)
                while len(self._sessions) > self.keep_sessions:
                    old, _ = self._sessions.popitem(last=False)
                    self._counts.pop(old, None)
            self._sessions.move_to_end(client)  # the least recently active goes first
            events.append((next(self._seq), event))
            self._counts[client] = self._counts.get(client, 0) + 1
        for callback in list(self._listeners.get(client, ())):
            with contextlib.suppress(Exception):
                callback()

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """Every kept event, in recording order."""
        with self._lock:
            pairs = sorted(itertools.chain.from_iterable(self._sessions.values()))
        return tuple(event for _, event in pairs)

    def __len__(self) -> int:
        return len(self.events)

    def events_of(self, lifeline: str) -> tuple[TraceEvent, ...]:
        """The kept events between this client lifeline and the server."""
        with self._lock:
            return tuple(event for _, event in self._sessions.get(lifeline, ()))

    def total(self, lifeline: str) -> int:
        """How many events were ever recorded for this lifeline (kept or not)."""
        return self._counts.get(lifeline, 0)

    def ignore(self, lifeline: str) -> None:
        """Forget this lifeline's events, and record none of it from now on."""
        with self._lock:
            self.ignored.add(lifeline)
            self._sessions.pop(lifeline, None)
            self._counts.pop(lifeline, None)

    def subscribe(self, lifeline: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on every event of ``lifeline``; returns the unsubscriber."""
        self._listeners.setdefault(lifeline, set()).add(callback)

        def unsubscribe() -> None:
            listeners = self._listeners.get(lifeline)
            if listeners is not None:
                listeners.discard(callback)
                if not listeners:
                    del self._listeners[lifeline]

        return unsubscribe


class SessionWiretap(Wiretap):
    """A :class:`Wiretap` whose lifelines follow Engine.IO sessions request by request.

    A browser keeps a few HTTP/1.1 connections per origin and sends any request on any
    of them: the page's scripts, the polling requests of its chat connection, and the
    handshake of its ``/trace`` connection may share one TCP connection. The base tap
    names a connection once, by its first request; here every request names it again
    (HTTP/1.1 without pipelining: the previous response is complete by then): a
    request with a known ``sid`` goes to that session's lifeline, an Engine.IO
    handshake starts a new one, and anything else (the page, static files) goes to the
    :data:`WEB_LIFELINE`. A WebSocket connection keeps the lifeline of its upgrade.
    """

    def _event(
        self,
        conn: TappedConnection,
        t: float,
        direction: Direction,
        event: WireEvent | str,
    ) -> None:
        if (
            direction is C2S
            and isinstance(event, WireEvent)
            and isinstance(event.event, HttpRequest)
        ):
            request = event.event
            if not request.target.startswith(ENGINEIO_PATH):
                self.trace.add_lifeline(self.server_lifeline, self.server_label, "server")
                self.trace.add_lifeline(WEB_LIFELINE, "page & static files", "client")
                conn.lifeline = WEB_LIFELINE
                self._flush_pending(conn)  # the TCP connect that waited for a name
            elif conn.lifeline is not None:
                sid = request.query.get("sid")
                if sid is None or self.sid_names.get(sid) != conn.lifeline:
                    conn.lifeline = None  # the base tap resolves it from this request
        super()._event(conn, t, direction, event)


# -- rendering --------------------------------------------------------------------------


#: In a chat label, these keys of a payload come first (a label is cut at MAX_LABEL).
FIRST_KEYS = ("user", "text", "ok", "roomId", "seq")


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        first = [k for k in FIRST_KEYS if k in value]
        value = {k: value[k] for k in [*first, *(k for k in value if k not in first)]}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def chat_label(event: TraceEvent) -> str:
    """A Socket.IO packet read as a chat event: ``new-message {"user":"bob","text":...}``.

    Only the label changes: it is made from the decoded packet, with the keys a reader
    looks for first (:data:`FIRST_KEYS`); the other layers keep the wiretap's labels.
    """
    f = event.fields
    if event.layer is not Layer.SIO or f.get("namespace") not in (None, "/"):
        return event.label
    name = f.get("event")
    ack = f" #{f['id']}" if "id" in f else ""
    if isinstance(name, str):
        args = f.get("args")
        args = args if isinstance(args, list) else []
        body = " ".join(_compact(a) for a in args)
        return f"{name}{ack} {body}".strip()
    if f.get("type") == "ACK":
        data = f.get("data")
        body = " ".join(_compact(a) for a in data) if isinstance(data, list) else ""
        return f"ack{ack} {body}".strip()
    return event.label


SECRET = re.compile(r'("(?:password|token)"\s*:\s*)"[^"]*"')


def redact(label: str) -> str:
    """Hide login secrets (``"password"``, ``"token"`` values) in a label: the panel is
    on screen, and screenshots travel. The only change made to what the wire said."""
    return SECRET.sub(r'\1"•••"', label)


def render_svg(
    lifeline: str,
    label: str,
    events: Sequence[TraceEvent],
    layer: str,
    *,
    max_label: int = MAX_LABEL,
) -> str:
    """The SVG of one client's events: its lifeline and the server's, nothing else."""
    labels = chat_label if layer == "chat" else (lambda e: e.label)
    events = [replace(e, label=redact(labels(e))) for e in events]
    trace = Trace(
        [Lifeline(lifeline, label, "client"), Lifeline(SERVER_LIFELINE, "Server", "server")],
        events,
    )
    graph = sequence_diagram(trace, layers=layer, max_label=max_label, show_legend=False)
    # The renderer captions a client "teaching client"; this one is a browser.
    graph.body = [line.replace("(teaching client)", "(this browser)") for line in graph.body]
    svg = graph.pipe(format="svg", encoding="utf-8")
    # Keep the <svg> element only (no XML prolog, DOCTYPE or comments).
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def latest(events: Sequence[TraceEvent], layer: str, limit: int = MAX_EVENTS) -> list[TraceEvent]:
    """The last ``limit`` events of a layer preset."""
    wanted = PRESETS[layer].layers
    return [e for e in events if e.layer in wanted][-limit:]


# -- server steps ---------------------------------------------------------------------------

#: The Socket.IO sid whose event the running handler serves (each handler has its task).
HANDLER_SID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "live_handler_sid", default=None
)

#: The server's span kinds drawn as notes (``app`` messages are on the wire already).
NOTE_KINDS = frozenset({"step", "rooms", "error"})


def _with_sid(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``/`` handler so that the spans it records know whose event it serves."""

    @functools.wraps(handler)
    async def run(sid: str, *args: Any) -> Any:
        HANDLER_SID.set(sid)
        result = handler(sid, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    run.__live_wrapped__ = True  # type: ignore[attr-defined]
    return run


# -- the /trace namespace -----------------------------------------------------------------


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


class LiveDiagrams:
    """The live trace of a :class:`ChatServer`: the tap, the trace, the viewers."""

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
        on("*", self.on_unknown, namespace=TRACE_NAMESPACE)

    @property
    def enabled(self) -> bool:
        return self.tap is not None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, upstream_port: int) -> int:
        """Put the wiretap on the public address, in front of ``upstream_port``."""
        config = self.server.config
        self.trace = LiveTrace()
        self.tap = SessionWiretap(
            self.trace,
            ("127.0.0.1", upstream_port),
            host=config.host,
            port=config.port,
            server_lifeline=SERVER_LIFELINE,
            server_label="Server",
        )
        port = await self.tap.start()
        self._hook_spans()
        return port

    def _hook_spans(self) -> None:
        """Draw the server's own steps (notes) in the diagram of the client they serve."""
        handlers = self.sio.handlers.get("/", {})
        for name, handler in list(handlers.items()):
            if name != "*" and not getattr(handler, "__live_wrapped__", False):
                handlers[name] = _with_sid(handler)
        if getattr(self.server.span, "__self__", None) is self:
            return
        previous = self.server.span
        if previous is None:
            self.server.span = self.span
        else:

            def both(*args: Any, **kw: Any) -> None:
                previous(*args, **kw)
                self.span(*args, **kw)

            both.__self__ = self  # type: ignore[attr-defined]
            self.server.span = both

    def span(
        self,
        kind: str,
        label: str,
        *,
        target: str | None = None,
        fields: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """The server's span hook: a note in the followed client's events."""
        if kind not in NOTE_KINDS or self.trace is None:
            return
        with contextlib.suppress(Exception):  # a trace must never break the server
            sid = target if target is not None else HANDLER_SID.get()
            lifeline = self._lifeline_of(sid)
            if lifeline is not None:
                note = "error" if kind == "error" else "note"
                self.trace.note_for(lifeline, label, kind=note, fields=dict(fields or {}))

    def _lifeline_of(self, sid: str | None) -> str | None:
        """The lifeline of a ``/`` Socket.IO sid (learned by the tap, or via its eio sid)."""
        if sid is None or self.tap is None:
            return None
        names = self.tap.sid_names
        if sid in names:
            return names[sid]
        eio = self.sio.manager.eio_sid_from_sid(sid, "/")
        return names.get(eio) if eio else None

    async def stop(self) -> None:
        """Stop the viewers and the tap (its relayed connections close). Safe twice."""
        for viewer in list(self.viewers.values()):
            await self._drop(viewer)
        self.viewers.clear()
        if self.tap is not None:
            await self.tap.stop()

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

    async def on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        message = f"unknown event {event[:40]!r} on {TRACE_NAMESPACE}"
        return {"ok": False, "error": {"code": "unknown_event", "message": message}}

    # -- following a session -----------------------------------------------------------

    def _eio_sid(self, sid: str) -> str | None:
        with contextlib.suppress(Exception):
            return self.sio.manager.eio_sid_from_sid(sid, TRACE_NAMESPACE)
        return None

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
        main_sid = self.sio.manager.sid_from_eio_sid(eio, "/")
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
            try:
                svg = await asyncio.to_thread(render_svg, lifeline, f"{user} (you)", events, layer)
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
                }
                viewer.pushes += 1
                await self._emit("diagram", payload, viewer.sid)
            await asyncio.sleep(self.push_interval)

    async def _emit(self, event: str, data: dict[str, Any], sid: str) -> None:
        with contextlib.suppress(Exception):
            await self.sio.emit(event, data, to=sid, namespace=TRACE_NAMESPACE)


__all__ = [
    "LAYERS",
    "OFF_CODE",
    "OFF_MESSAGE",
    "TRACE_NAMESPACE",
    "LiveDiagrams",
    "LiveTrace",
    "SessionWiretap",
    "chat_label",
    "render_svg",
]
