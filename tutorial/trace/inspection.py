"""A trace, step by step: each event's bytes annotated, linked to its layers, explained.

[inspect_trace][tutorial.trace.inspection.inspect_trace] turns every event of a
[Trace][tutorial.trace.model.Trace] into
a [Step][tutorial.trace.inspection.Step]:

- ``annotated``: its exact bytes cut into named spans
  ([tutorial.protocol.annotate.annotate][tutorial.protocol.annotate.annotate]), or ``None`` for an
  event without bytes
  (a server's note, a TCP connect);
- ``carried_by`` / ``carries``: the links between layers. A WebSocket frame (or a
  long-polling HTTP message) carries Engine.IO packets; an Engine.IO MESSAGE carries a
  Socket.IO packet. The links are found from the bytes themselves: a packet is carried
  by the frame whose (unmasked, inflated) payload *is* that packet, on the same pair
  of lifelines, in recording order;
- ``sentence``: what the step means, in the seed's terms where the trace has them. A
  scenario's story marks (``step`` and its label, e.g. "3. broadcast to room") come
  first; a Socket.IO event adds its description from the event catalog; the rest is
  said from the protocol (RFC 6455, Engine.IO and Socket.IO's own tables). Nothing is
  typed twice: the words come from the trace, the catalog and the annotations.

Pure functions over data, no I/O; the widget, the site and the live panel all show
what this module computes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tutorial.protocol import catalog
from tutorial.protocol.annotate import EIO_USAGE, Annotated, Options, annotate
from tutorial.protocol.engineio import RECORD_SEPARATOR, EioPacketType
from tutorial.protocol.layers import Layer
from tutorial.protocol.websocket import Frame, FrameDecoder, Opcode, accept_key
from tutorial.trace.model import Trace, TraceEvent

_RS = RECORD_SEPARATOR.encode()


@dataclass(frozen=True)
class Step:
    """One event of a trace, ready to be shown."""

    index: int
    event: TraceEvent
    annotated: Annotated | None
    sentence: str
    carried_by: tuple[int, ...] = ()
    carries: tuple[int, ...] = ()

    @property
    def layer(self) -> Layer:
        return self.event.layer

    def __str__(self) -> str:
        return f"{self.index}: {self.sentence}"


# -- links between layers ----------------------------------------------------------------


@dataclass
class _Pending:
    """A unit that carries another: its event indices and the bytes it carried."""

    carriers: tuple[int, ...]
    payload: bytes | None  # None: compressed, and could not be inflated here
    compressed: bool = False


@dataclass
class _Links:
    carried_by: dict[int, list[int]] = field(default_factory=dict)
    carries: dict[int, list[int]] = field(default_factory=dict)
    inflated: dict[int, bytes] = field(default_factory=dict)

    def link(self, carriers: Sequence[int], carried: int) -> None:
        for c in carriers:
            self.carried_by.setdefault(carried, []).append(c)
            self.carries.setdefault(c, []).append(carried)


def _one_frame(raw: bytes) -> Frame | None:
    for item in FrameDecoder().receive_data(raw):
        if isinstance(item, Frame):
            return item
    return None


def _take(pool: list[_Pending], raw: bytes) -> _Pending | None:
    """The pending unit that carried ``raw``: the first whose payload is exactly it, else
    the first compressed one we could not inflate. Older entries are dropped with it."""
    for i, pending in enumerate(pool):
        if pending.payload == raw:
            del pool[: i + 1]
            return pending
    for i, pending in enumerate(pool):
        if pending.payload is None:
            del pool[: i + 1]
            return pending
    return None


def find_links(events: Sequence[TraceEvent]) -> _Links:
    """Which event carried which, from the bytes (see the module docstring)."""
    links = _Links()
    fragments: dict[tuple[str, str], list[tuple[int, Frame]]] = {}
    inflaters: dict[tuple[str, str], Any] = {}
    messages: dict[tuple[str, str], list[_Pending]] = {}
    packets: dict[tuple[str, str], list[_Pending]] = {}
    for i, e in enumerate(events):
        pair = (e.source, e.target)
        if e.raw is None or e.kind == "error" or e.is_self:
            continue
        if e.layer is Layer.HTTP:
            head, sep, body = e.raw.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 101"):  # a new WebSocket: fresh deflate windows
                for key in (pair, (e.target, e.source)):
                    inflaters.pop(key, None)
                    fragments.pop(key, None)
            if sep and body and body[:1] in b"0123456b":
                for record in body.split(_RS):
                    if record:
                        messages.setdefault(pair, []).append(_Pending((i,), record))
        elif e.layer is Layer.WS:
            frame = _one_frame(e.raw)
            if frame is None or frame.opcode.is_control:
                continue
            if frame.opcode is not Opcode.CONT:
                fragments[pair] = []
            run = fragments.setdefault(pair, [])
            run.append((i, frame))
            if not frame.fin:
                continue
            fragments[pair] = []
            data = b"".join(f.payload for _, f in run)
            compressed = run[0][1].rsv1
            payload: bytes | None = data
            if compressed:
                payload = _inflate(inflaters, pair, data)
                if payload is not None:
                    links.inflated[run[-1][0]] = payload
            pending = _Pending(tuple(j for j, _ in run), payload, compressed)
            messages.setdefault(pair, []).append(pending)
        elif e.layer is Layer.EIO:
            carrier = _take(messages.get(pair, []), e.raw)
            if carrier is not None:
                links.link(carrier.carriers, i)
                if carrier.payload is None and carrier.compressed:
                    links.inflated[carrier.carriers[-1]] = e.raw
            if e.raw[:1] == b"4" and e.fields.get("type") == EioPacketType.MESSAGE.name:
                packets.setdefault(pair, []).append(_Pending((i,), e.raw[1:]))
        elif e.layer is Layer.SIO:
            carrier = _take(packets.get(pair, []), e.raw)
            if carrier is not None:
                links.link(carrier.carriers, i)
    return links


def _inflate(
    inflaters: dict[tuple[str, str], Any], pair: tuple[str, str], data: bytes
) -> bytes | None:
    """RFC 7692 7.2.2 with the window kept across messages (context takeover)."""
    inflater = inflaters.get(pair)
    if inflater is None:
        inflater = inflaters[pair] = zlib.decompressobj(-15)
    try:
        return bytes(inflater.decompress(data + b"\x00\x00\xff\xff"))
    except zlib.error:
        inflaters.pop(pair, None)
        return None


# -- sentences ------------------------------------------------------------------------------


def _who(trace: Trace, event: TraceEvent) -> str:
    def name(lid: str) -> str:
        try:
            return trace.lifeline(lid).label
        except KeyError:
            return lid

    if event.is_self:
        return name(event.source)
    return f"{name(event.source)} → {name(event.target)}"


def _field(annotated: Annotated | None, name: str) -> str | None:
    if annotated is None:
        return None
    return next((v for k, v in annotated.decoded if k == name), None)


def _span_value(annotated: Annotated | None, name: str) -> str | None:
    if annotated is None:
        return None
    return next((s.value for s in annotated.spans if s.name == name), None)


def _header(event: TraceEvent, name: str) -> str | None:
    for pair in event.fields.get("headers") or ():
        if isinstance(pair, list | tuple) and len(pair) == 2 and str(pair[0]).lower() == name:
            return str(pair[1])
    return None


def _meaning(event: TraceEvent, annotated: Annotated | None, events: Sequence[TraceEvent]) -> str:
    f = event.fields
    if event.layer is Layer.TCP:
        said = event.label.lower()
        if "refused" in said:
            return (
                "the TCP connection is refused: nothing listens on that port (the server is "
                "down), so the client tries again after its backoff"
            )
        if "connect" in said:
            return "a new TCP connection opens: everything after it rides on this byte stream"
        side = next((w for w in ("server", "client") if w in said), None)
        who = f"the {side}" if side else "one side"
        return f"{who} closes its half of the TCP connection (FIN): it will send nothing more"
    if event.kind == "error":
        return f"bytes the decoder could not read ({f.get('reason', event.label)})"
    if event.layer is Layer.HTTP:
        if "method" in f:
            if (_header(event, "upgrade") or "").lower() == "websocket":
                key = _header(event, "sec-websocket-key") or ""
                return (
                    "the HTTP request that asks to switch this connection to WebSocket "
                    f"(RFC 6455 4.1); the server must answer the key with {accept_key(key)}"
                )
            if "transport=polling" in str(f.get("target", "")):
                if f.get("method") == "POST":
                    return "a long-polling POST: its body carries the client's Engine.IO packets"
                return "a long-polling GET: the server answers when it has packets to send"
            return f"an HTTP {f.get('method')} request"
        if f.get("status") == 101:
            accept = _header(event, "sec-websocket-accept")
            return (
                "the server agrees to switch protocols: from the next byte on, this "
                f"connection carries WebSocket frames (Sec-WebSocket-Accept {accept})"
            )
        return f"the HTTP response {f.get('status')} {f.get('reason', '')}".rstrip()
    if event.layer is Layer.WS:
        opcode = str(f.get("opcode", ""))
        if opcode == "CLOSE" or "code" in f:
            code = f.get("code") or _span_value(annotated, "close status code")
            status = f"status {code}" if code is not None else "without a status code"
            return f"a WebSocket close frame, {status}: the connection ends"
        if opcode in ("PING", "PONG"):
            return f"a WebSocket {opcode.lower()} control frame"
        how = "masked, as every client frame must be" if f.get("masked") else "unmasked (server)"
        packed = ", compressed" if f.get("rsv1") else ""
        return f"a WebSocket {opcode} frame, {how}{packed}: its payload is one Engine.IO packet"
    if event.layer is Layer.EIO:
        kind = str(f.get("type", ""))
        if kind == "OPEN":
            return (
                f"the Engine.IO handshake: session id {f.get('sid')}, a ping every "
                f"{f.get('pingInterval')} ms, upgrades {f.get('upgrades')}"
            )
        if event.raw in (b"2probe", b"3probe"):
            return "the upgrade probe: is the new WebSocket working? (2probe, 3probe)"
        if kind == "UPGRADE":
            return "the client moves the session onto this WebSocket (upgrade)"
        if kind in ("PING", "PONG"):
            return f"the heartbeat: {kind.lower()} (Engine.IO v4: the server pings)"
        if kind == "MESSAGE":
            return "an Engine.IO MESSAGE: its data is one Socket.IO packet"
        usage = next((u for t, u in EIO_USAGE.items() if t.name == kind), "")
        return f"Engine.IO {kind}: {usage.lower().rstrip('.')}".rstrip(": ")
    if event.layer is Layer.SIO:
        return _sio_meaning(event, annotated, events)
    return event.label


def _sio_meaning(
    event: TraceEvent, annotated: Annotated | None, events: Sequence[TraceEvent]
) -> str:
    f = event.fields
    kind = str(f.get("type", ""))
    name = f.get("event")
    if name:
        spec = catalog.CLIENT_EVENTS.get(name) or catalog.SERVER_EVENTS.get(name)
        if event.source == "server":
            spec = catalog.SERVER_EVENTS.get(name, spec)
        ack = f" (ack id {f['id']})" if f.get("id") is not None else ""
        if spec is None:
            return f"the event '{name}'{ack}, which the chat's catalog does not list"
        return f"the '{name}' event{ack}: {spec.description.rstrip('.')}"
    if kind == "CONNECT":
        data = f.get("data")
        if isinstance(data, dict) and "sid" in data:
            namespace = f.get("namespace")
            return f"the server accepts the connection to namespace {namespace}: sid {data['sid']}"
        auth = " with its credentials" if data else ""
        return f"the client asks to connect to namespace {f.get('namespace')}{auth}"
    if kind == "ACK":
        asked = _asked(events, event, f.get("id"))
        what = f"the '{asked}' event" if asked else "the event"
        return f"the acknowledgement of {what} with ack id {f.get('id')}: the handler's answer"
    if kind == "CONNECT_ERROR":
        return f"the server refuses the connection: {f.get('data')}"
    if kind == "DISCONNECT":
        return f"leaves namespace {f.get('namespace')}"
    return f"a Socket.IO {kind} packet"


def _asked(events: Sequence[TraceEvent], ack: TraceEvent, ack_id: Any) -> str | None:
    """The name of the EVENT that asked for this ack (same id, other direction, earlier)."""
    name = None
    for e in events:
        if e is ack:
            return name
        if (
            e.layer is Layer.SIO
            and e.fields.get("id") == ack_id
            and e.fields.get("event")
            and (e.source, e.target) == (ack.target, ack.source)
        ):
            name = str(e.fields["event"])
    return None


def sentence(trace: Trace, event: TraceEvent, annotated: Annotated | None = None) -> str:
    """One sentence: the story mark (if any), who speaks to whom, and what it means."""
    story = f"Step {event.step}: {event.label}" if event.step is not None else ""
    if event.layer is Layer.APP or event.is_self:
        where = "on its own" if event.is_self else "inside the server process"
        text = f"{story or event.label} — {_who(trace, event)}, {where}: no bytes cross the wire."
    else:
        meaning = _meaning(event, annotated, trace.events)
        text = f"{story + ' — ' if story else ''}{_who(trace, event)}: {meaning}."
    return text


# -- the steps -----------------------------------------------------------------------------


def _options(event: TraceEvent, inflated: bytes | None) -> Options:
    polling = None
    if event.layer is Layer.HTTP:
        target = str(event.fields.get("target", ""))
        polling = "transport=polling" in target if "method" in event.fields else None
    binary = event.layer is Layer.EIO and "data_length" in event.fields
    return Options(inflated=inflated, binary=binary, polling=polling)


def _step(trace: Trace, events: Sequence[TraceEvent], links: _Links, i: int) -> Step:
    event = events[i]
    annotated = None
    if event.raw is not None:
        annotated = annotate(event.layer, event.raw, _options(event, links.inflated.get(i)))
    return Step(
        i,
        event,
        annotated,
        sentence(trace, event, annotated),
        tuple(links.carried_by.get(i, ())),
        tuple(links.carries.get(i, ())),
    )


def inspect_trace(trace: Trace) -> tuple[Step, ...]:
    """Every event of ``trace`` as a [Step][tutorial.trace.inspection.Step], in recording order."""
    events = trace.events
    links = find_links(events)
    return tuple(_step(trace, events, links, i) for i in range(len(events)))


def inspect_events(trace: Trace, indices: Iterable[int]) -> dict[int, Step]:
    """Some events of ``trace`` as [Step][tutorial.trace.inspection.Step]s: those at
    ``indices`` and their families (what carried them, what they carried).

    The links are found from every event (a compressed frame's deflate window spans its
    connection), but only these steps are annotated and explained: a long session
    costs one pass over its bytes, not one annotation per event.

    Args:
        trace: The whole trace.
        indices: Positions in ``trace.events``.

    Returns:
        The steps by position, for ``indices`` and every member of their families
        (and of their members' families).
    """
    events = trace.events
    links = find_links(events)
    wanted: set[int] = set()
    todo = set(indices)
    while todo:  # until every member's family is in (a polling body carries several)
        i = todo.pop()
        wanted.add(i)
        found = _family(
            lambda j: links.carried_by.get(j, ()), lambda j: links.carries.get(j, ()), i
        )
        todo.update(j for j in found if j not in wanted)
    return {i: _step(trace, events, links, i) for i in sorted(wanted)}


def family(steps: Sequence[Step] | Mapping[int, Step], index: int) -> list[int]:
    """The step, the units that carried it and the units it carried, in trace order."""

    def up(i: int) -> Sequence[int]:
        return steps[i].carried_by

    def down(i: int) -> Sequence[int]:
        return steps[i].carries

    return _family(up, down, index)


Links = Callable[[int], Sequence[int]]


def _family(up: Links, down: Links, index: int) -> list[int]:
    seen = {index}
    todo = [index]
    while todo:  # up: carriers of carriers
        for j in up(todo.pop()):
            if j not in seen:
                seen.add(j)
                todo.append(j)
    above = set(seen)
    todo = [index]
    while todo:  # down: what it carried, and so on
        for j in down(todo.pop()):
            if j not in seen:
                seen.add(j)
                todo.append(j)
    # A frame's siblings in a fragmented message belong with it too.
    for j in list(above):
        for k in down(j):
            seen.update(up(k))
    return sorted(seen)


__all__ = [
    "Step",
    "family",
    "find_links",
    "inspect_events",
    "inspect_trace",
    "sentence",
]
