"""The Trace model: lifelines and a timeline of events, pure data, no I/O.

A :class:`Trace` is what a scenario records and what the renderers draw: an ordered
list of :class:`Lifeline` (the columns of a sequence diagram) and an ordered list of
:class:`TraceEvent` (the rows). The wiretap records wire events (with their exact
bytes), the server records its own steps as notes, and a trace can be written to and
read from a documented, versioned JSON form (``docs/reference/trace-format.md``)::

    trace = Trace()
    trace.add_lifeline("client", "Client", "client")
    trace.add_lifeline("server", "Server", "server")
    trace.record("client", "server", Layer.SIO, "CONNECT /", raw=b"40", phase="ws")
    trace.note("server", "validate message, add metadata", step=2)
    text = trace.normalised().to_json()   # the same scenario twice gives the same text

Events keep the order in which they were recorded; ``t`` is informative only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
        with self._lock:
            self._events.append(event)
        return event

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
        """A deterministic copy: see :data:`NORMALISATION_RULES` and :class:`Normaliser`."""
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


# -- normalisation -------------------------------------------------------------------

FIXED_DATE = "Thu, 01 Jan 1970 00:00:00 GMT"
# RFC 6455 section 1.3: this key gives this accept value, so the pair stays consistent.
SAMPLE_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SAMPLE_WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@dataclass(frozen=True)
class Rule:
    """One normalisation rule, applied to every string of a trace.

    The pattern's named group ``value`` is the part that changes. ``numbered`` rules
    replace it with ``<numbered>-1``, ``<numbered>-2``, ... in order of first
    appearance (the same value always gets the same number); the others replace it
    with ``fixed``.
    """

    name: str
    pattern: re.Pattern[str]
    description: str
    fixed: str | None = None
    numbered: str | None = None


def _rule(name: str, pattern: str, description: str, **kw: Any) -> Rule:
    return Rule(name, re.compile(pattern), description, **kw)


_TOKEN = r"[A-Za-z0-9_-]"
#: Applied in this order to labels, string fields (recursively), lifeline ids and
#: labels, and raw bytes that are valid UTF-8 (other raw bytes are kept as they are).
NORMALISATION_RULES: tuple[Rule, ...] = (
    _rule("sid-json", r'"sid"\s*:\s*"(?P<value>[^"]+)"', 'The "sid" JSON value', numbered="sid"),
    _rule("sid-query", r"[?&]sid=(?P<value>[^&\s\"'#]+)", "The sid= query parameter",
          numbered="sid"),
    _rule("uuid", r"\b(?P<value>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
          r"-[0-9a-fA-F]{12})\b", "A UUID anywhere (message ids)", numbered="msg"),
    _rule("hex-id", r"\b(?P<value>[0-9a-f]{32})\b", "32 hex digits anywhere (uuid4().hex)",
          numbered="msg"),
    _rule("id-json", rf'"id"\s*:\s*"(?P<value>{_TOKEN}*\d{_TOKEN}*)"',
          'The "id" JSON value when it holds a digit', numbered="msg"),
    _rule("ts-json", r'"ts"\s*:\s*(?P<value>\d{13})\b', 'A "ts" of 13 digits (ms since epoch)',
          fixed="0"),
    _rule("date-header", r"(?im)^Date:[ \t]*(?P<value>[^\r\n]+)", "The Date: header value",
          fixed=FIXED_DATE),
    _rule("host-port", r"(?im)^Host:[ \t]*[^\s:]+:(?P<value>\d+)", "The port of a Host: header",
          fixed="PORT"),
    _rule("loopback-port", r"\b(?:127\.0\.0\.1|localhost):(?P<value>\d{1,5})\b",
          "A port after 127.0.0.1 or localhost", fixed="PORT"),
    _rule("query-t", r"[?&]t=(?P<value>[^&\s\"'#]+)", "The t= cache-buster query parameter",
          fixed="0"),
    _rule("ws-key", r"(?im)^Sec-WebSocket-Key:[ \t]*(?P<value>[A-Za-z0-9+/=]+)",
          "The Sec-WebSocket-Key value: the RFC 6455 sample nonce", fixed=SAMPLE_WS_KEY),
    _rule("ws-accept", r"(?im)^Sec-WebSocket-Accept:[ \t]*(?P<value>[A-Za-z0-9+/=]+)",
          "The Sec-WebSocket-Accept value: the RFC 6455 sample answer", fixed=SAMPLE_WS_ACCEPT),
)  # fmt: skip

#: Field keys (case-insensitive) whose value is replaced whole, wherever they occur
#: in ``fields``, including header lists of ``[name, value]`` pairs.
KEY_RULES: dict[str, str] = {
    "sid": "numbered sid",
    "id": "numbered msg, when the value holds a digit",
    "ts": "0, when an integer of 13 digits",
    "date": FIXED_DATE,
    "host": "the port becomes PORT",
    "port": "0, when an integer",
    "sec-websocket-key": SAMPLE_WS_KEY,
    "sec-websocket-accept": SAMPLE_WS_ACCEPT,
}

_PLACEHOLDER = re.compile(r"(?:sid|msg)-\d+")
_ID_VALUE = re.compile(rf"{_TOKEN}*\d{_TOKEN}*")
_MIN_BARE = 6  # known values at least this long are replaced wherever they appear


class Normaliser:
    """Applies :data:`NORMALISATION_RULES` and :data:`KEY_RULES` to a whole trace.

    Two passes: the first numbers sids and message ids in order of first appearance
    (lifelines, then events in order; in an event: source, target, label, fields by
    sorted key, raw); the second rewrites every string, and also replaces a known
    value where it appears bare (say a sid in a label), so one value gets one name.
    """

    def __init__(self, rules: tuple[Rule, ...] = NORMALISATION_RULES) -> None:
        self.rules = rules
        self.numbers: dict[str, dict[str, str]] = {"sid": {}, "msg": {}}
        self._bare: re.Pattern[str] | None = None

    def apply(self, trace: Trace) -> Trace:
        self._walk(trace)  # pass 1: numbering
        known = {v: k for table in self.numbers.values() for v, k in table.items()}
        long_values = sorted((v for v in known if len(v) >= _MIN_BARE), key=lambda v: (-len(v), v))
        if long_values:
            self._bare = re.compile("|".join(re.escape(v) for v in long_values))
        self._known = known
        return self._walk(trace)  # pass 2: the same walk, now with bare replacement

    def _walk(self, trace: Trace) -> Trace:
        lifelines = [
            Lifeline(self.text(lf.id), self.text(lf.label), lf.kind) for lf in trace.lifelines
        ]
        events = []
        for index, e in enumerate(trace.events):
            source, target, label = self.text(e.source), self.text(e.target), self.text(e.label)
            fields = {k: self.value(e.fields[k], k) for k in sorted(e.fields)}
            events.append(
                replace(
                    e,
                    t=round(index / 1000, 3),
                    source=source,
                    target=target,
                    label=label,
                    fields=fields,
                    raw=self.raw(e.raw),
                )
            )
        return Trace(lifelines, events)

    def number(self, kind: str, value: str) -> str:
        if _PLACEHOLDER.fullmatch(value):
            return value
        table = self.numbers[kind]
        if value not in table:
            table[value] = f"{kind}-{len(table) + 1}"
        return table[value]

    def text(self, s: str) -> str:
        for rule in self.rules:
            s = rule.pattern.sub(lambda m, rule=rule: self._substitute(rule, m), s)
        if self._bare is not None:
            s = self._bare.sub(lambda m: self._known[m.group(0)], s)
        return s

    def _substitute(self, rule: Rule, m: re.Match[str]) -> str:
        value = m.group("value")
        new = self.number(rule.numbered, value) if rule.numbered else str(rule.fixed)
        start, end = m.start("value") - m.start(), m.end("value") - m.start()
        whole = m.group(0)
        return whole[:start] + new + whole[end:]

    def value(self, v: Any, key: str | None = None) -> Any:
        k = key.lower() if key else None
        if isinstance(v, str):
            if k == "sid":
                return self.number("sid", v)
            if k == "id" and _ID_VALUE.fullmatch(v):
                return self.number("msg", v)
            if k == "date":
                return FIXED_DATE
            if k == "sec-websocket-key":
                return SAMPLE_WS_KEY
            if k == "sec-websocket-accept":
                return SAMPLE_WS_ACCEPT
            if k == "host":
                v = re.sub(r":\d+$", ":PORT", v)
            return self.text(v)
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int):
            if k == "ts" and len(str(abs(v))) == 13:
                return 0
            if k == "port":
                return 0
            return v
        if isinstance(v, Mapping):
            return {str(kk): self.value(v[kk], str(kk)) for kk in sorted(v)}
        if isinstance(v, list | tuple):
            if len(v) == 2 and all(isinstance(x, str) for x in v):  # a [name, value] header
                return [self.text(v[0]), self.value(v[1], v[0])]
            return [self.value(x) for x in v]
        return v

    def raw(self, raw: bytes | None) -> bytes | None:
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        return self.text(text).encode("utf-8")
