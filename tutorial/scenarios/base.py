"""What every scenario shares: a stage (server, wiretap, spans, clients) and its result.

A scenario is an ``async def run(...) -> ScenarioResult`` that starts real components,
tells the story of one seed diagram, and stops everything, even on error:

    async with Stage("event-flow", deterministic=True) as stage:
        alice = await stage.client("alice")
        ...
        await stage.close_clients()   # the rest of each connection's life, traced
        return stage.result(figures={...})

[Stage][tutorial.scenarios.base.Stage] starts a teaching server on port 0 with a temporary SQLite
file (or
uses the server it is given), a [Wiretap][tutorial.trace.wiretap.Wiretap] in front of
it, and a [ServerSpans][tutorial.trace.spans.ServerSpans] hook, all recording into one
[Trace][tutorial.trace.model.Trace]. Clients connect through the tap, one at a time,
each on its own named lifeline, and leave the same way inside the traced window
([close_clients][tutorial.scenarios.base.Stage.close_clients]), so that a trace holds
each connection's whole life: from its TCP connect to its closing handshake, its FINs
and the ``user-left`` the others are sent.

**Deterministic mode** (``deterministic=True``) makes the result reproducible byte for
byte: the teaching client sends RFC 6455's sample key
([sample_websocket_key][tutorial.compat.sample_websocket_key]),
clients get fixed ``clientMsgId`` values, and the trace is passed through
[stable_trace][tutorial.trace.normalise.stable_trace] (canonical order of simultaneous
deliveries, normalised sids, ids, times and tokens, frames re-masked with the RFC's
sample masking key). Figures are normalised with the same numbering.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Self

import graphviz

from tutorial.chat.server import ChatServer, ServerConfig
from tutorial.client.client import QUICK_BACKOFF, ChatClient, ClientOptions, fast_options
from tutorial.compat import sample_websocket_key
from tutorial.protocol.catalog import Event
from tutorial.render.sequence import sequence_diagram
from tutorial.trace.model import Trace, TraceEvent
from tutorial.trace.normalise import StableNormaliser, stable_trace
from tutorial.trace.spans import ServerSpans
from tutorial.trace.wiretap import Wiretap

# -- the result ---------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """A finished run: the trace, the figures, and how to draw them.

    ``diagram()`` draws the scenario's own picture: a sequence diagram of the story
    (the events that carry a seed step number) when ``story`` is true, of the trace
    in the ``layers`` view (events kept by ``focus``) otherwise, or the figure
    ``main`` draws (a state machine, an architecture). ``diagram(layers=...)`` always
    draws the whole trace as a sequence diagram in that view.
    """

    name: str
    trace: Trace
    figures: dict[str, Any] = field(default_factory=dict)
    layers: str | None = "packets"
    story: bool = False
    title: str | None = None
    main: Callable[[ScenarioResult], graphviz.Digraph] | None = None
    extras: dict[str, Callable[[ScenarioResult], graphviz.Digraph]] = field(default_factory=dict)
    deterministic: bool = False
    seconds: float = 0.0
    focus: Callable[[TraceEvent], bool] | None = None
    """Which events the scenario's own sequence view keeps (None: all of its layers)."""

    def story_trace(self) -> Trace:
        """Only the events that carry a step number: the seed diagram's rows."""
        return Trace(self.trace.lifelines, (e for e in self.trace.events if e.step is not None))

    def diagram(self, layers: str | Iterable[str] | None = None) -> graphviz.Digraph:
        if layers is not None:
            return sequence_diagram(self.trace, layers=layers, title=self.title)
        if self.main is not None:
            return self.main(self)
        if self.story:
            return sequence_diagram(self.story_trace(), layers=None, title=self.title)
        trace = self.trace
        if self.focus is not None:
            trace = Trace(trace.lifelines, (e for e in trace.events if self.focus(e)))
        return sequence_diagram(trace, layers=self.layers, title=self.title)

    def extra_diagrams(self) -> dict[str, graphviz.Digraph]:
        """Further pictures of the same run, by name (e.g. the rooms of diagram 4)."""
        return {name: draw(self) for name, draw in sorted(self.extras.items())}


# -- the stage ----------------------------------------------------------------------


class Harness:
    """What every stage shares: one trace, a temporary directory, the deterministic
    mode's sample key and message ids, the clients to close, the clock.

    A subclass starts its parts in ``_start`` and stops them in ``_stop``;
    ``async with`` runs both, and ``close`` stops recording (``_quiet``), closes the
    clients, then calls ``_stop``, even after an error.
    """

    def __init__(
        self,
        name: str,
        *,
        deterministic: bool = False,
        lifelines: Iterable[tuple[str, str, str]] = (),
        config: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.deterministic = deterministic
        self.trace = Trace()
        for lid, label, kind in lifelines:
            self.trace.add_lifeline(lid, label, kind)
        self._config = config or {}
        self._tmp: str | None = None
        self._stack = contextlib.ExitStack()
        self._opened: list[ChatClient] = []
        self._t0 = time.monotonic()
        self._msg_numbers: dict[str, int] = {}

    def use_sample_key(self) -> None:
        """Send RFC 6455's sample key from now until the stage closes."""
        self._stack.enter_context(sample_websocket_key())

    def workdir(self) -> str:
        """This stage's temporary directory (made on first use, deleted on close)."""
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix=f"tutorial-{self.name}-")
        return self._tmp

    def server_config(self, **overrides: Any) -> ServerConfig:
        """The demo configuration on port 0 with the stage's temporary SQLite file."""
        return ServerConfig.for_demo(self.workdir(), **{**self._config, **overrides})

    def options(self, **kw: Any) -> ClientOptions:
        """Client options for a stage ([fast_options][tutorial.client.client.fast_options])."""
        return fast_options(**kw)

    def msg_id(self, client: ChatClient) -> str | None:
        """A fixed clientMsgId in deterministic mode (the client's own has random bits)."""
        if not self.deterministic:
            return None
        n = self._msg_numbers.get(client.name, 0) + 1
        self._msg_numbers[client.name] = n
        return f"{client.name}-{n}"

    def seconds(self) -> float:
        """Seconds since the stage was made."""
        return round(time.monotonic() - self._t0, 3)

    async def __aenter__(self) -> Self:
        try:
            if self.deterministic:
                self.use_sample_key()
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop recording, close the clients, stop every part, delete the directory."""
        self._quiet()
        for client in reversed(self._opened):
            with contextlib.suppress(Exception):
                await client.close()
        self._opened.clear()
        await self._stop()
        self._stack.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def _start(self) -> None:
        raise NotImplementedError

    def _quiet(self) -> None:
        """Stop recording: whatever ``close`` still finds open (after an error, or a
        client a scenario did not close itself) closes off the record."""

    async def _stop(self) -> None:
        raise NotImplementedError


class Stage(Harness):
    """Server + wiretap + spans + clients for one scenario; ``async with`` cleans up."""

    def __init__(
        self,
        name: str,
        *,
        deterministic: bool = False,
        server: ChatServer | None = None,
        lifelines: Iterable[tuple[str, str, str]] = (),
        rooms_lifeline: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name,
            deterministic=deterministic,
            lifelines=[*lifelines, ("server", "Server", "server")],
            config=config,
        )
        self.tap: Wiretap | None = None
        self.spans = ServerSpans(self.trace, "server", rooms_lifeline)
        self.server = server
        self._own_server = server is None
        self._remove_span_hook: Callable[[], None] | None = None
        self.clients: list[ChatClient] = []
        self.closings: list[tuple[int, int, str]] = []
        """The trace windows ``(start, end, lifeline)`` of
        [close_clients][tutorial.scenarios.base.Stage.close_clients]: one per client."""

    @property
    def server_port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    async def _start(self) -> None:
        if self.server is None:
            self.server = ChatServer(self.server_config(), span=self.spans)
            await self.server.start()
        else:
            self._remove_span_hook = self.server.add_span_hook(self.spans)
        self.tap = Wiretap(self.trace, ("127.0.0.1", self.server_port))
        self.spans.sid_names = self.tap.sid_names
        await self.tap.start()

    def _quiet(self) -> None:
        if self.tap is not None:
            self.tap.recording = False
        self.spans.enabled = False

    async def _stop(self) -> None:
        self.clients.clear()
        if self.tap is not None:
            await self.tap.stop()
        if self.server is not None:
            if self._own_server:
                with contextlib.suppress(Exception):
                    await self.server.stop()
            elif self._remove_span_hook is not None:
                self._remove_span_hook()
                self._remove_span_hook = None

    # -- clients -----------------------------------------------------------------

    def make_client(
        self,
        name: str,
        password: str | None = None,
        *,
        options: ClientOptions | None = None,
        label: str | None = None,
        user: str | None = None,
        anonymous: bool = False,
    ) -> ChatClient:
        """A teaching client whose next connection the tap records as lifeline ``name``
        (``anonymous``: it connects without credentials)."""
        assert self.tap is not None
        username = None if anonymous else user or name
        client = ChatClient(
            self.tap.url,
            username,
            password if password is not None or username is None else username,
            options=options or self.options(),
            name=name,
        )
        self.trace.add_lifeline(name, label or name, "client")
        self.tap.name_next_connection(name, label)
        self.clients.append(client)
        self._opened.append(client)
        # With one client, its reconnections (new sessions, no name queued) are its own.
        self.tap.default_name = name if len(self.clients) == 1 else None
        return client

    async def client(self, name: str, password: str | None = None, **kw: Any) -> ChatClient:
        """Connect a client and wait for ``connect-confirmed``, so the wire is quiet."""
        client = self.make_client(name, password, **kw)
        await client.connect()
        if client.username is not None:
            await client.wait_for_event(Event.CONNECT_CONFIRMED)
        return client

    async def join(self, client: ChatClient, room: str, **kw: Any) -> dict[str, Any]:
        """Join and wait until every other member has seen ``user-joined``."""
        ack = await client.join(room, **kw)
        user = client.user or client.username
        for other in self.clients:
            if other is client or other.user not in ack.get("members", []):
                continue
            await other.wait_until(functools.partial(_is_member, other, room, user))
        return ack

    async def send(self, client: ChatClient, room: str, text: str) -> dict[str, Any]:
        """Send, wait for the ack and for every member present to have the message."""
        ack = await client.send(room, text, client_msg_id=self.msg_id(client))
        for other in self.clients:
            if room in other.offsets and other.state.value == "CONNECTED":
                await other.wait_until(functools.partial(_has_seq, other, room, ack["seq"]))
        return ack

    async def close_clients(self, timeout: float = 10.0) -> None:
        """Close every client, one at a time, while the tap still records, so that the
        trace holds each connection's whole life: the client's goodbye (Socket.IO
        DISCONNECT, Engine.IO CLOSE), the WebSocket closing handshake, both TCP FINs,
        and the ``user-left`` every member still connected is sent.

        Each close waits, on the wire, for those ``user-left`` and for every connection
        of the client to be closed on both sides (no pause): the next client leaves only
        then, and each close is one window of the trace (``closings``), which a
        deterministic result puts in a canonical order
        ([leaving_order][tutorial.scenarios.base.leaving_order]).
        """
        assert self.tap is not None
        for i, client in enumerate(self.clients):
            start = self.mark()
            told = [
                (other.name, room)
                for other in self.clients[i + 1 :]
                if other.state.value == "CONNECTED" and client.user is not None
                for room, members in sorted(other.members.items())
                if client.user in members
            ]
            await client.close()
            for name, room in told:
                await self.trace.wait_for(
                    functools.partial(_is_user_left, name, room, client.user), timeout
                )
            await self.tap.wait_closed(self.tap.connections_of(client.name), timeout)
            self.closings.append((start, self.mark(), client.name))

    def mark(self) -> int:
        """The index the next event will have (to mark a story window)."""
        return len(self.trace)

    # -- the result ----------------------------------------------------------------

    def result(
        self,
        trace: Trace | None = None,
        figures: dict[str, Any] | None = None,
        **kw: Any,
    ) -> ScenarioResult:
        """Freeze the trace (stable in deterministic mode) and the figures."""
        trace = trace if trace is not None else Trace(self.trace.lifelines, self.trace.events)
        figures = dict(figures or {})
        if self.deterministic:
            trace = leaving_order(trace, self.closings)
            normaliser = StableNormaliser()
            trace = stable_trace(trace, "server", normaliser)
            figures = {k: normaliser.value(v, k) for k, v in figures.items()}
        return ScenarioResult(
            self.name,
            trace,
            figures,
            deterministic=self.deterministic,
            seconds=self.seconds(),
            **kw,
        )


def _is_user_left(target: str, room: str, user: str | None, event: TraceEvent) -> bool:
    """The server's ``user-left {roomId: room, user}`` on its way to ``target``."""
    if event.target != target or not sio_event(event, Event.USER_LEFT):
        return False
    args = event.fields.get("args")
    payload = args[0] if isinstance(args, list | tuple) and args else None
    return isinstance(payload, dict) and payload == {"roomId": room, "user": user}


def leaving_order(
    trace: Trace, windows: Iterable[tuple[int, int, str]], server: str = "server"
) -> Trace:
    """Each client's leaving (a window ``(start, end, lifeline)`` of
    [close_clients][tutorial.scenarios.base.Stage.close_clients]) in a canonical order:
    the leaving client's own connection first, then the server's notes, then what the
    others were sent, column by column.

    Which of those streams the tap read first is the scheduler's choice; each stream
    keeps its own recorded order (a stable sort), so no event moves within its stream.
    """
    column = {lf.id: i for i, lf in enumerate(trace.lifelines)}
    events = list(trace.events)
    for start, end, lifeline in windows:

        def key(e: TraceEvent, lifeline: str = lifeline) -> int:
            if lifeline in (e.source, e.target):
                return 0
            if e.is_self:
                return 1
            other = e.target if e.source == server else e.source
            return 2 + column.get(other, 0)

        events[start:end] = sorted(events[start:end], key=key)
    return Trace(trace.lifelines, events)


def _is_member(client: ChatClient, room: str, user: str | None) -> bool:
    return user in client.members.get(room, [])


def _has_seq(client: ChatClient, room: str, seq: int) -> bool:
    return seq <= client.offsets.get(room, 0)


def not_a_carrier(event: TraceEvent) -> bool:
    """False for an Engine.IO MESSAGE packet: the Socket.IO packet it carries is the
    next row, so a diagram that shows both says the same thing twice."""
    return not (event.layer.value == "eio" and event.fields.get("type") == "MESSAGE")


def sequence_view(
    result: ScenarioResult,
    layers: Iterable[str] | str | None,
    keep: Callable[[TraceEvent], bool] = not_a_carrier,
) -> graphviz.Digraph:
    """A sequence diagram of the events of ``layers`` that ``keep`` keeps, numbered
    in order (the seed's step numbers belong to the story view)."""
    events = (replace(e, step=None) for e in result.trace.events if keep(e))
    return sequence_diagram(
        Trace(result.trace.lifelines, events), layers=layers, title=result.title
    )


def mark_story(
    trace: Trace,
    start: int,
    end: int,
    relabel: Callable[[TraceEvent], dict[str, Any] | None] = lambda e: None,
) -> Trace:
    """A copy where only events ``start <= i < end`` keep (or get) a step number.

    ``relabel(event)`` may return replacements (``step``, ``label``) for an event in
    the window: that is how wire events become the seed's numbered rows.
    """
    events = []
    for i, event in enumerate(trace.events):
        if start <= i < end:
            changes = relabel(event)
            if changes:
                event = replace(event, **changes)
        elif event.step is not None:
            event = replace(event, step=None)
        events.append(event)
    return Trace(trace.lifelines, events)


def sio_event(event: TraceEvent, name: str) -> bool:
    """A Socket.IO EVENT packet named ``name`` (the tap puts the name in ``fields``)."""
    return event.layer.value == "sio" and event.fields.get("event") == name


__all__ = [
    "QUICK_BACKOFF",
    "Harness",
    "ScenarioResult",
    "Stage",
    "leaving_order",
    "mark_story",
    "not_a_carrier",
    "sequence_view",
    "sio_event",
]
