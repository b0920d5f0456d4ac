"""Check cells for the chapters' exercises.

Every exercise has an answer cell (``answer = None``), a check cell, and a solution
hidden in a collapsed Markdown cell, so *Run All* leaves the exercise unanswered and its
check says so. A check returns a [Verdict][tutorial.exercises.Verdict] in one of three states:

* **not answered yet**: ``answer`` is still ``None``;
* **✓ right**;
* **✗ not yet**, with an explanation of what the answer got wrong.

Expected values come from a real run (a trace, an acknowledgement, a server asked on
the spot) or from the code (the transition table, the RFC's formula written out again),
never from a constant typed next to the question. A check raises only on a mistake in
the *question* (an expected value that is missing, a room that is not private), never
on a learner's answer. The test suite runs each chapter's solution through its check
(it must pass) and at least one wrong answer (it must be rejected).
"""

from __future__ import annotations

import base64
import hashlib
import html
import numbers
from collections.abc import Iterable
from typing import Any

from tutorial.chat.demo import ROOMS
from tutorial.client.recovery import Backoff
from tutorial.protocol.catalog import ErrorCode, Event
from tutorial.protocol.states import State, allowed_targets
from tutorial.trace.model import Trace

RFC_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

UNANSWERED = "unanswered"
RIGHT = "right"
WRONG = "wrong"


class Verdict:
    """The outcome of a check: true only when the answer is right."""

    def __init__(self, status: str, explanation: str = "") -> None:
        if status not in (UNANSWERED, RIGHT, WRONG):
            raise ValueError(f"verdict {status!r}")
        self.status = status
        self.explanation = explanation

    @property
    def ok(self) -> bool:
        return self.status == RIGHT

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        if self.status == UNANSWERED:
            return "… not answered yet: set `answer` in the cell above, run it, then this one"
        if self.status == RIGHT:
            return "✓ right" + (f": {self.explanation}" if self.explanation else "")
        return f"✗ not yet: {self.explanation}"

    def _repr_html_(self) -> str:
        colour = {UNANSWERED: "#664d03", RIGHT: "#0f5132", WRONG: "#842029"}[self.status]
        return (
            f"<div class='tutorial-verdict' data-verdict='{self.status}'"
            f" style='color:{colour};font-weight:600'>{html.escape(repr(self))}</div>"
        )


def unanswered() -> Verdict:
    return Verdict(UNANSWERED)


def right(explanation: str = "") -> Verdict:
    return Verdict(RIGHT, explanation)


def wrong(explanation: str) -> Verdict:
    return Verdict(WRONG, explanation)


def _type_name(answer: Any) -> str:
    return type(answer).__name__


# -- chapter 1 -------------------------------------------------------------------------


def _independent_accept(key: str) -> str:
    # Written out again on purpose: the check must not reuse the decoder it checks.
    return base64.b64encode(hashlib.sha1((key + RFC_GUID).encode()).digest()).decode()


def accept_key(key: str, answer: Any) -> Verdict:
    """Chapter 1: ``Sec-WebSocket-Accept`` for ``key``."""
    if answer is None:
        return unanswered()
    if isinstance(answer, bytes):
        return wrong("close: give it as text (`.decode()` the base64 bytes)")
    if not isinstance(answer, str):
        return wrong(f"a {_type_name(answer)}: the header value is text (a str)")
    expected = _independent_accept(key)
    if answer == expected:
        return right()
    if answer == base64.b64encode(hashlib.sha1(key.encode()).digest()).decode():
        return wrong("you hashed the key alone: append the GUID 258EAFA5-… before SHA-1")
    if answer == hashlib.sha1((key + RFC_GUID).encode()).hexdigest():
        return wrong("that is the SHA-1 in hex: base64-encode the 20 raw bytes (`.digest()`)")
    return wrong("base64(sha1(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')), key as text")


def frame_header(payload: bytes, masked: bool, answer: Any) -> Verdict:
    """Chapter 1: the first two bytes of a final text frame carrying ``payload``."""
    if len(payload) > 125:
        raise ValueError("use a payload of at most 125 bytes")
    if answer is None:
        return unanswered()
    if not isinstance(answer, bytes | bytearray):
        return wrong(f"a {_type_name(answer)}: give bytes, e.g. bytes([0x81, 0x05])")
    expected = bytes([0x81, (0x80 if masked else 0) | len(payload)])
    if bytes(answer) == expected:
        return right()
    if len(answer) != 2:
        return wrong(f"{len(answer)} bytes: the question asks for the first two")
    if answer[0] != expected[0]:
        return wrong(f"byte 1 is FIN (0x80) | opcode 1 (text) = {expected[0]:#04x}")
    return wrong(
        "byte 2 is the MASK bit (0x80: a client always masks) | the payload length"
        f" ({len(payload)})"
    )


# -- chapters 0, 2, 3, 6: values read off a run -------------------------------------------


def value(answer: Any, expected: Any, hint: str) -> Verdict:
    """A comparison with a value the run produced (``expected`` must exist)."""
    if expected is None:
        raise ValueError("the run produced no expected value for this exercise")
    if answer is None:
        return unanswered()
    if isinstance(expected, numbers.Number) and not isinstance(expected, bool):
        if isinstance(answer, bool) or not isinstance(answer, numbers.Number):
            return wrong(f"a {_type_name(answer)}: the answer is a number. {hint}")
    elif isinstance(expected, str) and not isinstance(answer, str):
        return wrong(f"a {_type_name(answer)}: the answer is text, in quotes. {hint}")
    return right() if answer == expected else wrong(hint)


def same_members(answer: Any, expected: Iterable[str], hint: str) -> Verdict:
    """A set of names, in any order."""
    want = set(expected)
    if answer is None:
        return unanswered()
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        return wrong(f"a {_type_name(answer)}: give a list of names, e.g. ['alice', 'bob']")
    got = {str(a) for a in answer}
    if got == want:
        return right()
    parts = []
    if got - want:
        parts.append(f"{', '.join(sorted(got - want))} should not be there")
    if want - got:
        parts.append(f"{len(want - got)} missing")
    return wrong(f"{'; '.join(parts)}. {hint}")


def new_messages_sent(trace: Trace) -> int:
    """How many ``new-message`` events the server sent in a traced run (from the wire)."""
    return sum(
        1
        for e in trace.events
        if e.layer.value == "sio"
        and e.fields.get("event") == Event.NEW_MESSAGE
        and e.fields.get("type") == "EVENT"
        and e.source.startswith("server")
    )


def deliveries(answer: Any, trace: Trace, sends: int = 1) -> Verdict:
    """Chapter 3: ``new-message`` events the server sent per ``send-message`` in ``trace``."""
    sent = new_messages_sent(trace)
    if sent == 0 or sent % sends:
        raise ValueError(f"the trace holds {sent} new-message events for {sends} send(s)")
    return value(answer, sent // sends, "count the arrows of steps 4 to 6: the sender too")


# -- chapter 4 ---------------------------------------------------------------------------


def private_room_members(room: str, answer: Any) -> Verdict:
    """Chapter 4: who may join a private room (from the demo configuration)."""
    members = ROOMS.get(room)
    if not members:
        raise ValueError(f"{room!r} is not a private room of the demo cast")
    return same_members(answer, members, f"look at the rooms of the demo cast for {room!r}")


def error_code(expected: ErrorCode | str, answer: Any) -> Verdict:
    """An error code a real server answered (or one from the catalog)."""
    expected = ErrorCode(expected)
    if isinstance(answer, str) and answer not in {c.value for c in ErrorCode}:
        return wrong(f"{answer!r} is not one of the catalog's error codes")
    return value(answer, expected.value, "see the error codes in the event catalog")


# -- chapter 5 ---------------------------------------------------------------------------


def reachable_from(state: State, answer: Any) -> Verdict:
    """Chapter 5: the states one move away from ``state`` in the transition table."""
    expected = {s.value for s in allowed_targets(state)}
    return same_members(answer, expected, f"read the rows whose source is {state.value}")


def total_backoff(backoff: Backoff, retries: int, answer: Any) -> Verdict:
    """Chapter 5: the longest total wait before FAILED (jitter only shortens delays)."""
    expected = sum(min(backoff.cap, backoff.base * backoff.factor**i) for i in range(retries))
    if answer is None:
        return unanswered()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        return wrong(f"a {_type_name(answer)}: give a number of seconds, e.g. 3.5")
    if abs(float(answer) - expected) < 1e-6:
        return right()
    uncapped = sum(backoff.base * backoff.factor**i for i in range(retries))
    if abs(float(answer) - uncapped) < 1e-6 and uncapped != expected:
        return wrong(f"each delay is capped at {backoff.cap} s")
    return wrong("add base × factor**attempt for attempt 0, 1, …, each capped")


# -- questions the real server answers on the spot ---------------------------------------


async def ask_server_error(
    attempt_as: str, event: str, payload: dict[str, Any], joined: Iterable[str] = ()
) -> str:
    """Start a throwaway demo server, send ``event`` as ``attempt_as`` (logged in, a
    member of the rooms ``joined``), and return the error code it answers (``"ok"`` if
    it accepted)."""
    from tutorial.lab import LiveChat, attempt

    chat = LiveChat(users=(attempt_as,), rooms=tuple(joined))
    try:
        await chat.start()
        return await attempt(chat.clients[attempt_as].call(event, payload))
    finally:
        await chat.close()


async def dedup_field(answer: Any) -> Verdict:
    """Chapter 3: which ``send-message`` field makes the server store a resend only once.

    Asked of a real server: alice sends a message, then another one to the same room
    that keeps only the field named in ``answer`` (every other field is new). A
    duplicate ack means that field is what the server deduplicates on (per room and
    user: the same ``clientMsgId`` in another room is another message).
    """
    if answer is None:
        return unanswered()
    fields = ("roomId", "text", "clientMsgId")
    if answer not in fields:
        return wrong(f"{answer!r} is not a field of send-message: one of {', '.join(fields)}")
    from tutorial.lab import LiveChat

    chat = LiveChat(users=("alice",), rooms=("general",))
    try:
        await chat.start()
        alice = chat.clients["alice"]
        first = {"roomId": "general", "text": "first", "clientMsgId": "a-1"}
        fresh = {"roomId": "general", "text": "second", "clientMsgId": "a-2"}
        await alice.call(Event.SEND_MESSAGE, first)
        again = await alice.call(Event.SEND_MESSAGE, fresh | {answer: first[answer]})
    finally:
        await chat.close()
    if again.get("duplicate"):
        return right(
            "the server answered duplicate: it stored the message once (one row per"
            " room, user and clientMsgId)"
        )
    return wrong(
        f"a resend with the same {answer} but a new clientMsgId was stored again (a new"
        f" seq {again.get('seq')}): the server deduplicates on another field"
    )


async def sticky_free_transport(answer: Any) -> Verdict:
    """Chapter 6: the transport that needs no sticky sessions, found by running both
    handshakes for real: the one whose whole session is a single HTTP request (an
    upgrade), so it can never reach two servers."""
    from tutorial.scenarios import run_scenario

    if answer is None:
        return unanswered()
    if answer not in ("websocket", "polling"):
        return wrong(f"{answer!r}: answer 'websocket' or 'polling'")
    requests = {}
    for transport in ("websocket", "polling"):
        run = await run_scenario("handshake", transport=transport)
        requests[transport] = sum(
            1 for e in run.trace.events if e.layer.value == "http" and e.source == "client"
        )
    single = [t for t, n in requests.items() if n == 1]
    if len(single) != 1:
        raise ValueError(f"HTTP requests per transport: {requests}")
    if answer == single[0]:
        return right(f"HTTP requests per session: {requests}")
    return wrong(
        f"{answer} used {requests[answer]} HTTP requests in one session; each may reach a"
        " different server unless the balancer keeps the session on one"
    )
