"""Normalisation: the deterministic form of a trace, from rules that are data.

Two runs of the same scenario differ in what the machine chose: session ids, message
ids, times, ports, dates, the WebSocket key pair, login tokens, masking keys, and the
order in which simultaneous deliveries were read. A normalised trace replaces each of
them, so that the same story gives the same bytes (the committed ``diagrams/``).

The rules are the tables below; the code only applies them:

* ``TEXT_RULES``: regular expressions applied to
  every string of a trace (labels, string fields, lifeline ids and labels, raw bytes
  that are UTF-8). Each names the part that changes (group ``value``) and what replaces
  it: a fixed text, or a number in order of first appearance (``sid-1``, ``msg-1``).
* ``KEY_RULES``: field keys (case-insensitive)
  whose value is replaced whole, wherever they occur in ``fields`` (header lists of
  ``[name, value]`` pairs included).
* ``STABLE_TEXT_RULES`` and
  ``STABLE_KEY_RULES``: what deterministic
  traces (``tutorial trace --deterministic``) add: login tokens and socket-address ports.

[Trace.normalised][tutorial.trace.model.Trace.normalised] applies the first two;
[stable_trace][tutorial.trace.normalise.stable_trace] applies all four, puts
simultaneous deliveries in column order and re-encodes every WebSocket frame with RFC
6455's sample masking key.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tutorial.protocol import engineio, socketio
from tutorial.protocol.layers import Layer
from tutorial.protocol.websocket import SAMPLE_MASKING_KEY, decode_one_frame, encode_frame
from tutorial.trace.fields import frame_fields, one_line
from tutorial.trace.model import Lifeline, Trace, TraceEvent

FIXED_DATE = "Thu, 01 Jan 1970 00:00:00 GMT"
# RFC 6455 section 1.3: this key gives this accept value, so the pair stays consistent.
SAMPLE_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SAMPLE_WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
FIXED_TOKEN = "TOKEN"


@dataclass(frozen=True)
class Rule:
    """One text rule, applied to every string of a trace.

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


@dataclass(frozen=True)
class KeyRule:
    """One field rule: the value of a field named ``key`` (any case), of type ``kind``.

    When ``match`` is given, the rule applies only to a value it matches (whole value).
    The value becomes ``numbered``'s next number, or ``fixed``; with ``part`` given,
    only that group of the value is replaced by ``fixed`` and the text rules still run
    on the result.
    """

    key: str
    kind: type
    description: str
    fixed: Any = None
    numbered: str | None = None
    match: re.Pattern[str] | None = None
    part: re.Pattern[str] | None = None

    def applies(self, value: Any) -> bool:
        if not isinstance(value, self.kind) or isinstance(value, bool):
            return False
        return self.match is None or bool(self.match.fullmatch(str(value)))


def _rule(name: str, pattern: str, description: str, **kw: Any) -> Rule:
    return Rule(name, re.compile(pattern), description, **kw)


_TOKEN = r"[A-Za-z0-9_-]"

TEXT_RULES: tuple[Rule, ...] = (
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
"""Applied in this order to labels, string fields (recursively), lifeline ids and labels, and
raw bytes that are valid UTF-8 (other raw bytes are kept as they are).
"""

NORMALISATION_RULES = TEXT_RULES
"""The old name of ``TEXT_RULES``."""

_ID_VALUE = re.compile(rf"{_TOKEN}*\d{_TOKEN}*")

KEY_RULES: tuple[KeyRule, ...] = (
    KeyRule("sid", str, "a session id: numbered sid", numbered="sid"),
    KeyRule("id", str, "a message id holding a digit: numbered msg", numbered="msg",
            match=_ID_VALUE),
    KeyRule("date", str, "an HTTP date", fixed=FIXED_DATE),
    KeyRule("sec-websocket-key", str, "the RFC 6455 sample nonce", fixed=SAMPLE_WS_KEY),
    KeyRule("sec-websocket-accept", str, "the RFC 6455 sample answer", fixed=SAMPLE_WS_ACCEPT),
    KeyRule("host", str, "the port of host:port becomes PORT", fixed="PORT",
            part=re.compile(r":(?P<value>\d+)$")),
    KeyRule("ts", int, "milliseconds since the epoch (13 digits): 0", fixed=0,
            match=re.compile(r"-?\d{13}")),
    KeyRule("port", int, "a port: 0", fixed=0),
)  # fmt: skip
"""Field keys (any case) whose value is replaced whole; the first rule that applies wins."""

STABLE_TEXT_RULES: tuple[Rule, ...] = (
    _rule("token-json", r'"token"\s*:\s*"(?P<value>[^"]+)"',
          'The "token" JSON value (a signed, timed login token)', fixed=FIXED_TOKEN),
    _rule("address-port", r"\('127\.0\.0\.1', (?P<value>\d+)\)",
          "The port of a Python socket address ('127.0.0.1', port)", fixed="PORT"),
)  # fmt: skip
"""What deterministic traces add to the text rules: the chat's signed login token (it holds a
time of one-second resolution, so two tokens are equal or not depending on the clock: all
become ``TOKEN``), and the port in a "connect call failed" message.
"""

STABLE_KEY_RULES: tuple[KeyRule, ...] = (
    KeyRule("token", str, "a signed, timed login token", fixed=FIXED_TOKEN),
)
"""What deterministic traces add to the key rules: a ``token`` field."""

_PLACEHOLDER = re.compile(r"(?:sid|msg)-\d+")
_MIN_BARE = 6  # known values at least this long are replaced wherever they appear


class Normaliser:
    """Applies text rules and key rules to a whole trace.

    Two passes: the first numbers sids and message ids in order of first appearance
    (lifelines, then events in order; in an event: source, target, label, fields by
    sorted key, raw); the second rewrites every string, and also replaces a known
    value where it appears bare (say a sid in a label), so one value gets one name.
    Reuse a normaliser to give a later value the same name (``normaliser.value(x)``).
    """

    def __init__(
        self,
        rules: tuple[Rule, ...] = TEXT_RULES,
        key_rules: tuple[KeyRule, ...] = KEY_RULES,
    ) -> None:
        self.rules = rules
        self.key_rules: dict[str, list[KeyRule]] = {}
        for rule in key_rules:
            self.key_rules.setdefault(rule.key, []).append(rule)
        self.numbers: dict[str, dict[str, str]] = {"sid": {}, "msg": {}}
        self._bare: re.Pattern[str] | None = None
        self._known: dict[str, str] = {}

    def apply(self, trace: Trace) -> Trace:
        """The normalised copy of ``trace`` (its events' ``t`` become 0.000, 0.001, ...)."""
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
        """The number ``kind-N`` of ``value`` (a new one on first sight)."""
        if _PLACEHOLDER.fullmatch(value):
            return value
        table = self.numbers.setdefault(kind, {})
        if value not in table:
            table[value] = f"{kind}-{len(table) + 1}"
        return table[value]

    def text(self, s: str) -> str:
        """``s`` with every text rule applied, then every known value replaced."""
        for rule in self.rules:
            s = rule.pattern.sub(functools.partial(self._substitute, rule), s)
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
        """A field value under ``key``: key rules first, then the text rules inside it."""
        for rule in self.key_rules.get(key.lower() if key else "", ()):
            if not rule.applies(v):
                continue
            if rule.part is not None:
                v = rule.part.sub(functools.partial(_replace_group, new=str(rule.fixed)), v)
                break
            return self.number(rule.numbered, v) if rule.numbered else rule.fixed
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {str(kk): self.value(v[kk], str(kk)) for kk in sorted(v)}
        if isinstance(v, list | tuple):
            if len(v) == 2 and all(isinstance(x, str) for x in v):  # a [name, value] header
                return [self.text(v[0]), self.value(v[1], v[0])]
            return [self.value(x) for x in v]
        return v

    def raw(self, raw: bytes | None) -> bytes | None:
        """Raw bytes that are UTF-8 text, normalised like text; other bytes as they are."""
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        return self.text(text).encode("utf-8")


def _replace_group(m: re.Match[str], new: str) -> str:
    start, end = m.start("value") - m.start(), m.end("value") - m.start()
    whole = m.group(0)
    return whole[:start] + new + whole[end:]


class StableNormaliser(Normaliser):
    """[Normaliser][tutorial.trace.normalise.Normaliser] with the stable rules added."""

    def __init__(self) -> None:
        super().__init__(TEXT_RULES + STABLE_TEXT_RULES, STABLE_KEY_RULES + KEY_RULES)


# -- deterministic traces ------------------------------------------------------------------


def canonical_order(trace: Trace, server: str = "server") -> Trace:
    """Put runs of server→client wire events in lifeline (column) order.

    The tap reads each TCP connection in order, but the order *between* connections
    (a broadcast reaching four clients) depends on the scheduler. Within a run of
    consecutive events sent by the server to clients, events are stably sorted by
    the column of their target: each connection keeps its own order.
    """
    column = {lf.id: i for i, lf in enumerate(trace.lifelines)}
    events = list(trace.events)
    out: list[TraceEvent] = []
    i = 0

    def in_run(e: TraceEvent) -> bool:
        return e.source == server and not e.is_self and e.raw is not None

    while i < len(events):
        if not in_run(events[i]):
            out.append(events[i])
            i += 1
            continue
        j = i
        while j < len(events) and in_run(events[j]):
            j += 1
        out += sorted(events[i:j], key=lambda e: column.get(e.target, 0))
        i = j
    return Trace(trace.lifelines, out)


def stable_trace(
    trace: Trace, server: str = "server", normaliser: Normaliser | None = None
) -> Trace:
    """The deterministic form of a trace (``tutorial trace --deterministic``).

    1. [canonical_order][tutorial.trace.normalise.canonical_order]; 2. every rule
    (sids, ids, times, ports, dates, the WebSocket key pair, login tokens); 3. every
    WebSocket frame's ``raw`` re-encoded: its payload normalised like any text, and a
    masked frame re-masked with RFC 6455's sample key ``37 fa 21 3d`` (the real key is
    random). Pass a ``normaliser`` to reuse its numbering afterwards
    (``normaliser.value(x)`` gives a figure the same ``sid-N`` names as the trace).
    """
    ordered = canonical_order(trace, server)
    normaliser = normaliser or StableNormaliser()
    normal = normaliser.apply(ordered)
    events = [
        _stable_label(before, _stable_frame(after, normaliser))
        for before, after in zip(ordered.events, normal.events, strict=True)
    ]
    return Trace(normal.lifelines, events)


def _decoded_label(layer: Layer, raw: bytes) -> str | None:
    """What the tap would have labelled these Engine.IO / Socket.IO bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if layer is Layer.EIO:
        return one_line(str(engineio.decode_packet(text)))
    if layer is Layer.SIO:
        return one_line(str(socketio.decode_packet(text)))
    return None


def _stable_label(before: TraceEvent, after: TraceEvent) -> TraceEvent:
    """A label cut short may have cut an id in half, out of reach of the rules: when the
    label is the tap's own, derive it again from the normalised bytes."""
    if before.raw is None or after.raw is None or before.layer not in (Layer.EIO, Layer.SIO):
        return after
    if _decoded_label(before.layer, before.raw) != before.label:
        return after  # a story label, set by a scenario
    label = _decoded_label(after.layer, after.raw)
    return replace(after, label=label) if label else after


def _stable_frame(event: TraceEvent, normaliser: Normaliser) -> TraceEvent:
    if event.layer is not Layer.WS or event.raw is None or event.kind == "error":
        return event
    frame = decode_one_frame(event.raw)
    if frame is None:
        return event
    payload = frame.payload
    if not frame.rsv1:  # a compressed payload is kept as it is
        with contextlib.suppress(UnicodeDecodeError):
            payload = normaliser.text(payload.decode("utf-8")).encode("utf-8")
    key = SAMPLE_MASKING_KEY if frame.masked else None
    raw = encode_frame(frame, payload, key)
    new = decode_one_frame(raw)
    fields = dict(event.fields)
    if new is not None:
        # A Close event keeps its code and reason beside the re-encoded header.
        closing = {k: fields[k] for k in ("code", "reason") if k in fields}
        fields = frame_fields(new) | closing
        label = str(new) if event.label == str(frame) else event.label
    else:
        label = event.label
    return replace(event, raw=raw, fields=fields, label=label)


__all__ = [
    "FIXED_DATE",
    "FIXED_TOKEN",
    "KEY_RULES",
    "NORMALISATION_RULES",
    "SAMPLE_WS_ACCEPT",
    "SAMPLE_WS_KEY",
    "STABLE_KEY_RULES",
    "STABLE_TEXT_RULES",
    "TEXT_RULES",
    "KeyRule",
    "Normaliser",
    "Rule",
    "StableNormaliser",
    "canonical_order",
    "stable_trace",
]
