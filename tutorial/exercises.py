"""Check cells for the chapters' exercises.

Each check compares the learner's answer with what the code (or a real run) says, prints
a verdict with a hint, and returns whether the answer is right. The expected values
are computed, never typed in, so an exercise cannot drift from the code.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from tutorial.chat.demo import ROOMS
from tutorial.client.recovery import Backoff
from tutorial.client.states import State, allowed_targets
from tutorial.protocol.catalog import ErrorCode

RFC_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Verdict:
    """True or false, shown in a notebook as "✓ right" or "✗ not yet: hint"."""

    def __init__(self, ok: bool, hint: str) -> None:
        self.ok = ok
        self.hint = hint

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return "✓ right" if self.ok else f"✗ not yet: {self.hint}"


def _verdict(ok: bool, hint: str) -> Verdict:
    return Verdict(ok, hint)


def _independent_accept(key: str) -> str:
    # Written out again on purpose: the check must not reuse the decoder it checks.
    return base64.b64encode(hashlib.sha1((key + RFC_GUID).encode()).digest()).decode()


def accept_key(key: str, answer: Any) -> Verdict:
    """Chapter 1: ``Sec-WebSocket-Accept`` for ``key``."""
    return _verdict(
        answer == _independent_accept(key),
        "base64(sha1(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')), on the key as text",
    )


def frame_header(payload: bytes, masked: bool, answer: Any) -> Verdict:
    """Chapter 1: the first two bytes of a final text frame carrying ``payload``."""
    if len(payload) > 125:
        raise ValueError("use a payload of at most 125 bytes")
    expected = bytes([0x81, (0x80 if masked else 0) | len(payload)])
    return _verdict(
        answer == expected,
        "byte 1 = FIN (0x80) | opcode 1 (text); byte 2 = MASK bit (0x80) | payload length",
    )


def deliveries(members: int, answer: Any) -> Verdict:
    """Chapter 3: how many ``new-message`` a room of ``members`` sockets receives per send."""
    return _verdict(answer == members, "the sender gets its own echo (step 4)")


def private_room_members(room: str, answer: Iterable[str]) -> Verdict:
    """Chapter 4: who may join a private room."""
    expected = set(ROOMS.get(room) or ())
    return _verdict(set(answer) == expected, f"look at the rooms of the demo cast for {room!r}")


def error_code(expected: ErrorCode, answer: Any) -> Verdict:
    return _verdict(answer == expected.value, "see the error codes in the event catalog")


def reachable_from(state: State, answer: Iterable[str]) -> Verdict:
    """Chapter 5: the states one move away from ``state`` in the transition table."""
    expected = {s.value for s in allowed_targets(state)}
    return _verdict({str(a) for a in answer} == expected, "read the rows whose source it is")


def total_backoff(backoff: Backoff, retries: int, answer: float) -> Verdict:
    """Chapter 5: the longest total wait before FAILED (jitter only shortens delays)."""
    expected = sum(min(backoff.cap, backoff.base * backoff.factor**i) for i in range(retries))
    return _verdict(abs(float(answer) - expected) < 1e-6, "base * factor**attempt, capped")


def value(answer: Any, expected: Any, hint: str) -> Verdict:
    """A plain comparison, for answers read off a live run."""
    return _verdict(answer == expected, hint)
