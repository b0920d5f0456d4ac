"""The Trace model: lifelines and a timeline of events, pure data, no I/O.

A [Trace][tutorial.trace.model.Trace] is what a scenario records and what the renderers draw: an
ordered
list of [Lifeline][tutorial.trace.model.Lifeline] (the columns of a sequence diagram) and an
ordered list of
[TraceEvent][tutorial.trace.model.TraceEvent] (the rows). The wiretap records wire events
(with their exact
bytes), the server records its own steps as notes, and a trace can be written to and
read from a documented, versioned JSON form (``docs/reference/trace-format.md``):

    trace = Trace()
    trace.add_lifeline("client", "Client", "client")
    trace.add_lifeline("server", "Server", "server")
    trace.record("client", "server", Layer.SIO, "CONNECT /", raw=b"40", phase="ws")
    trace.note("server", "validate message, add metadata", step=2)
    text = trace.normalised().to_json()   # the same scenario twice gives the same text

Events keep the order in which they were recorded; ``t`` is informative only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tutorial.protocol.layers import Layer

FORMAT = "socketio-tutorial-trace"
VERSION = 1

LIFELINE_KINDS = frozenset({"client", "server", "proxy", "store", "redis", "balancer", "room"})
EVENT_KINDS = frozenset({"message", "note", "error"})
PHASES = frozenset({"http", "ws"})


@dataclass(frozen=True)
class Lifeline:
    """One participant: a column of the sequence diagram."""

    id: str
    label: str
    kind: str = "client"

    def __post_init__(self) -> None:
        if self.kind not in LIFELINE_KINDS:
            raise ValueError(f"lifeline kind {self.kind!r} not in {sorted(LIFELINE_KINDS)}")

    def __str__(self) -> str:
        return f"{self.label} ({self.kind})"


@dataclass(frozen=True)
class TraceEvent:
    """One row of the timeline.

    ``source == target`` is a self-step: something one lifeline did on its own (a
    server-side span), drawn as a note. ``fields`` is read-only and must be JSON-able.
    """

    t: float
    source: str
    target: str
    layer: Layer
    label: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes | None = None
    kind: str = "message"
    step: int | None = None
    phase: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", Layer(self.layer))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        if "\n" in self.label:
            raise ValueError(f"an event label is one line: {self.label!r}")
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind {self.kind!r} not in {sorted(EVENT_KINDS)}")
        if self.phase is not None and self.phase not in PHASES:
            raise ValueError(f"phase {self.phase!r} not in {sorted(PHASES)} or None")
        if self.raw is not None and not isinstance(self.raw, bytes):
            object.__setattr__(self, "raw", bytes(self.raw))

    @property
    def is_self(self) -> bool:
        """True for a self-step (a note on one lifeline)."""
        return self.source == self.target

    def __str__(self) -> str:
        arrow = f"{self.source}" if self.is_self else f"{self.source} → {self.target}"
        return f"{self.t:9.6f} {arrow} [{self.layer}] {self.label}"


@dataclass
class _Waiter:
    """One [Trace.wait_for][tutorial.trace.model.Trace.wait_for] call."""

    predicate: Callable[[TraceEvent], bool]
    future: asyncio.Future[TraceEvent]
    loop: asyncio.AbstractEventLoop

    def offer(self, event: TraceEvent) -> None:
        if self.future.done():
            return
        try:
            if self.predicate(event):
                self.future.set_result(event)
        except Exception as exc:  # a bad predicate fails its own waiter only
            self.future.set_exception(exc)


class Trace:
    """Lifelines plus events, in recording order.

    ``record`` and ``note`` take the time from a monotonic clock whose origin is the
    creation of the trace (or an explicit ``t``). A lock makes recording from the
    wiretap's callbacks and the server's handlers safe in one process.
    """

    def __init__(
        self,
        lifelines: Iterable[Lifeline] = (),
        events: Iterable[TraceEvent] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifelines: dict[str, Lifeline] = {}
        for lifeline in lifelines:
            self._lifelines.setdefault(lifeline.id, lifeline)
        self._events: list[TraceEvent] = list(events)
        self._clock = clock
        self._origin = clock()
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []

    # -- reading -------------------------------------------------------------------

    @property
    def lifelines(self) -> tuple[Lifeline, ...]:
        return tuple(self._lifelines.values())

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        with self._lock:
            return tuple(self._events)

    def lifeline(self, id: str) -> Lifeline:
        return self._lifelines[id]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self.lifelines == other.lifelines and self.events == other.events

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Trace {len(self._lifelines)} lifelines, {len(self._events)} events>"

    # -- recording -----------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the trace's clock origin, rounded to the microsecond."""
        return round(self._clock() - self._origin, 6)

    def add_lifeline(self, id: str, label: str | None = None, kind: str = "client") -> Lifeline:
        """Add a lifeline, or return the existing one with this id (the first one wins)."""
        with self._lock:
            existing = self._lifelines.get(id)
            if existing is not None:
                return existing
            lifeline = Lifeline(id, label if label is not None else id, kind)
            self._lifelines[id] = lifeline
            return lifeline

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
        """Append one event and return it. Both lifelines must have been added."""
        for lifeline_id in (source, target):
            if lifeline_id not in self._lifelines:
                raise ValueError(f"unknown lifeline {lifeline_id!r}: call add_lifeline first")
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
        self._append(event)
        return event

    def _append(self, event: TraceEvent) -> None:
        """Keep a recorded event (a bounded trace keeps it elsewhere) and wake waiters."""
        with self._lock:
            self._events.append(event)
        if self._waiters:
            self._wake(event)

    async def wait_for(
        self, predicate: Callable[[TraceEvent], bool], timeout: float = 5.0
    ) -> TraceEvent:
        """The first event for which ``predicate(event)`` holds: one already recorded,
        or else the next one recorded that does (no polling: each new event is checked
        as it is recorded). Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(predicate, loop.create_future(), loop)
        self._waiters.append(waiter)  # first, so that no event falls between the two
        try:
            for event in self.events:
                if predicate(event):
                    return event
            return await asyncio.wait_for(waiter.future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake(self, event: TraceEvent) -> None:
        """Give ``event`` to every waiter whose predicate it meets (from any thread)."""
        for waiter in list(self._waiters):
            waiter.loop.call_soon_threadsafe(waiter.offer, event)

    def new_event(
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
        """An event stamped with this trace's clock (unless ``t`` is given), not recorded."""
        return TraceEvent(
            t=self.elapsed() if t is None else t,
            source=source,
            target=target,
            layer=Layer(layer),
            label=label,
            fields=fields or {},
            raw=raw,
            kind=kind,
            step=step,
            phase=phase,
            status=status,
        )

    def note(
        self, lifeline: str, label: str, *, layer: Layer | str = Layer.APP, **kw: Any
    ) -> TraceEvent:
        """A self-step on one lifeline (a server-side span): ``kind="note"`` by default."""
        kw.setdefault("kind", "note")
        return self.record(lifeline, lifeline, layer, label, **kw)

    # -- views ---------------------------------------------------------------------

    def filter(self, layers: Iterable[Layer | str]) -> Trace:
        """A copy with only the events of these layers (all lifelines kept)."""
        wanted = {Layer(layer) for layer in layers}
        return Trace(self.lifelines, (e for e in self.events if e.layer in wanted))

    def normalised(self) -> Trace:
        """A deterministic copy: see [tutorial.trace.normalise][]."""
        from tutorial.trace.normalise import Normaliser

        return Normaliser().apply(self)

    # -- JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "lifelines": [
                {"id": lf.id, "label": lf.label, "kind": lf.kind} for lf in self.lifelines
            ],
            "events": [_event_to_dict(e) for e in self.events],
        }

    def to_json(self) -> str:
        """The versioned JSON form: keys sorted, two-space indent, one final newline."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a trace: format is {data.get('format')!r}, not {FORMAT!r}")
        version = data.get("version")
        if version != VERSION:
            raise ValueError(f"trace format version {version!r} is not supported (want 1)")
        lifelines = [Lifeline(d["id"], d["label"], d["kind"]) for d in data["lifelines"]]
        return cls(lifelines, (_event_from_dict(d) for d in data["events"]))

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))


def _event_to_dict(event: TraceEvent) -> dict[str, Any]:
    raw: dict[str, str] | None = None
    if event.raw is not None:
        raw = {"base64": base64.b64encode(event.raw).decode("ascii")}
        with contextlib.suppress(UnicodeDecodeError):
            raw["text"] = event.raw.decode("utf-8")
    return {
        "t": event.t,
        "source": event.source,
        "target": event.target,
        "layer": event.layer.value,
        "label": event.label,
        "fields": dict(event.fields),
        "raw": raw,
        "kind": event.kind,
        "step": event.step,
        "phase": event.phase,
        "status": event.status,
    }


def _event_from_dict(d: Mapping[str, Any]) -> TraceEvent:
    raw = d.get("raw")
    return TraceEvent(
        t=d["t"],
        source=d["source"],
        target=d["target"],
        layer=Layer(d["layer"]),
        label=d["label"],
        fields=d.get("fields") or {},
        raw=None if raw is None else base64.b64decode(raw["base64"], validate=True),
        kind=d.get("kind", "message"),
        step=d.get("step"),
        phase=d.get("phase"),
        status=d.get("status"),
    )
