"""The chat event catalog: the single source of truth for the chat contract.

Every event of the seed's diagram 3 ("Event Types and Routing") is listed here once,
with its direction, its payload fields and the error codes it can produce. The server
validates incoming payloads against this table, the teaching client reads its event
names from it, and ``docs/reference/events.md`` is generated from it
([markdown_table][tutorial.protocol.catalog.markdown_table]). Nothing else spells an event name as
a literal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tutorial.protocol.layers import Direction
from tutorial.protocol.limits import MAX_SAFE_INTEGER, MAX_TEXT_LENGTH


class Event(StrEnum):
    """Every event name of the chat contract: the only place one is spelled."""

    AUTHENTICATE = "authenticate"
    JOIN_ROOM = "join-room"
    LEAVE_ROOM = "leave-room"
    SEND_MESSAGE = "send-message"
    TYPING_START = "typing-start"
    TYPING_STOP = "typing-stop"
    DISCONNECT = "disconnect"
    CONNECT_CONFIRMED = "connect-confirmed"
    ROOM_JOINED = "room-joined"
    NEW_MESSAGE = "new-message"
    USER_JOINED = "user-joined"
    USER_LEFT = "user-left"
    ERROR = "error"


class ErrorCode(StrEnum):
    """Codes carried by the ``error`` event (seed diagram 5, "Error Handling")."""

    UNAUTHENTICATED = "unauthenticated"
    AUTH_FAILED = "auth_failed"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_EVENT = "unknown_event"
    ROOM_NOT_FOUND = "room_not_found"
    FORBIDDEN = "forbidden"
    NOT_IN_ROOM = "not_in_room"
    MESSAGE_TOO_LONG = "message_too_long"
    RATE_LIMITED = "rate_limited"
    STORE_UNAVAILABLE = "store_unavailable"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    TOO_MANY_ROOMS = "too_many_rooms"


ERROR_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "The event needs a logged-in user; send `authenticate` first.",
    ErrorCode.AUTH_FAILED: "Wrong username or password, or a forged or expired token.",
    ErrorCode.INVALID_PAYLOAD: "The payload is missing a field, has a wrong type, or is not "
    "a single JSON object.",
    ErrorCode.UNKNOWN_EVENT: "The event name is not in this catalog.",
    ErrorCode.ROOM_NOT_FOUND: "No room has this id.",
    ErrorCode.FORBIDDEN: "The room is private and the user is not one of its members.",
    ErrorCode.NOT_IN_ROOM: "The user has not joined this room.",
    ErrorCode.MESSAGE_TOO_LONG: "The message text is longer than the server allows.",
    ErrorCode.RATE_LIMITED: "Too many events, or too many wrong passwords, too fast; wait "
    "`retryAfter` seconds.",
    ErrorCode.STORE_UNAVAILABLE: "The message store is down; nothing was acknowledged, "
    "retry later.",
    ErrorCode.TOO_MANY_CONNECTIONS: "This user already has as many connections to this "
    "server as it allows; close one (another tab) and retry.",
    ErrorCode.TOO_MANY_ROOMS: "This connection is already in as many rooms as the server "
    "allows; leave one first.",
}

ROOM_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,39}"
USERNAME_PATTERN = r"[a-z][a-z0-9_-]{1,31}"
CLIENT_MSG_ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: its JSON type and the constraints the server checks."""

    name: str
    type: type
    required: bool = True
    description: str = ""
    pattern: str | None = None
    max_length: int | None = None

    @property
    def type_name(self) -> str:
        names = {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            list: "array",
            dict: "object",
        }
        return names[self.type]


@dataclass(frozen=True)
class EventSpec:
    """One event of the contract."""

    name: Event
    direction: Direction
    description: str
    fields: tuple[FieldSpec, ...] = ()
    ack: tuple[str, ...] = ()
    errors: tuple[ErrorCode, ...] = ()
    requires_auth: bool = True
    one_of: tuple[tuple[str, ...], ...] = ()
    replies: tuple[str, ...] = field(default=())

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


class PayloadError(Exception):
    """A payload that breaks the catalog. Carries the ``error`` event's code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_ROOM = FieldSpec("roomId", str, description="Room id", pattern=ROOM_ID_PATTERN)
_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT

EVENTS: tuple[EventSpec, ...] = (
    # Client to server (seed diagram 3, "Client to Server Events").
    EventSpec(
        Event.AUTHENTICATE,
        _C2S,
        "User login validation: a username and password, or a token from an earlier login.",
        (
            FieldSpec("username", str, False, "Login name", USERNAME_PATTERN),
            FieldSpec("password", str, False, "Password", max_length=200),
            FieldSpec("token", str, False, "Signed token from an earlier ack", max_length=1000),
        ),
        ack=("ok", "user", "token"),
        errors=(
            ErrorCode.AUTH_FAILED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.RATE_LIMITED,
            ErrorCode.TOO_MANY_CONNECTIONS,
        ),
        requires_auth=False,
        one_of=(("username", "password"), ("token",)),
        replies=(Event.CONNECT_CONFIRMED,),
    ),
    EventSpec(
        Event.JOIN_ROOM,
        _C2S,
        "Room membership: join a room (optionally leaving the others first, the seed's "
        "'switch room' flow).",
        (
            _ROOM,
            FieldSpec("leaveOthers", bool, False, "Leave every other room first"),
            FieldSpec("since", int, False, "Last seq already seen; history starts after it"),
            FieldSpec(
                "atLeast",
                int,
                False,
                "Highest seq the client knows exists (its own acked sends, messages held "
                "back): history must reach it, read from the primary if a replica lags",
            ),
        ),
        ack=("ok", "roomId", "members"),
        errors=(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.ROOM_NOT_FOUND,
            ErrorCode.FORBIDDEN,
            ErrorCode.RATE_LIMITED,
            ErrorCode.TOO_MANY_ROOMS,
        ),
        replies=(Event.ROOM_JOINED, Event.USER_JOINED, Event.USER_LEFT),
    ),
    EventSpec(
        Event.LEAVE_ROOM,
        _C2S,
        "Leave a room.",
        (_ROOM,),
        ack=("ok", "roomId"),
        errors=(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.NOT_IN_ROOM,
            ErrorCode.RATE_LIMITED,
        ),
        replies=(Event.USER_LEFT,),
    ),
    EventSpec(
        Event.SEND_MESSAGE,
        _C2S,
        "Message broadcasting: validate, add metadata, persist, broadcast to the room.",
        (
            _ROOM,
            FieldSpec("text", str, description="Message text, shown as text, never HTML"),
            FieldSpec(
                "clientMsgId",
                str,
                description="Client-chosen id; the same id twice is stored and delivered once",
                pattern=CLIENT_MSG_ID_PATTERN,
            ),
        ),
        ack=("ok", "id", "seq", "duplicate"),
        errors=(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.NOT_IN_ROOM,
            ErrorCode.MESSAGE_TOO_LONG,
            ErrorCode.RATE_LIMITED,
            ErrorCode.STORE_UNAVAILABLE,
        ),
        replies=(Event.NEW_MESSAGE,),
    ),
    EventSpec(
        Event.TYPING_START,
        _C2S,
        "Activity indicator: relayed to the other members of the room.",
        (_ROOM,),
        ack=("ok",),
        errors=(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.NOT_IN_ROOM,
            ErrorCode.RATE_LIMITED,
        ),
        replies=(Event.TYPING_START,),
    ),
    EventSpec(
        Event.TYPING_STOP,
        _C2S,
        "Activity indicator: relayed to the other members of the room.",
        (_ROOM,),
        ack=("ok",),
        errors=(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.INVALID_PAYLOAD,
            ErrorCode.NOT_IN_ROOM,
            ErrorCode.RATE_LIMITED,
        ),
        replies=(Event.TYPING_STOP,),
    ),
    EventSpec(
        Event.DISCONNECT,
        _C2S,
        "Cleanup: the connection ends; each room the user was in hears `user-left`.",
        requires_auth=False,
        replies=(Event.USER_LEFT,),
    ),
    # Server to client (seed diagram 3, "Server to Client Events").
    EventSpec(
        Event.CONNECT_CONFIRMED,
        _S2C,
        "Authentication success.",
        (
            FieldSpec("user", str, description="The logged-in user"),
            FieldSpec("sid", str, description="This connection's Socket.IO session id"),
            FieldSpec("rooms", list, description="Rooms this user may join"),
            FieldSpec("token", str, description="Signed token for reconnecting without a password"),
        ),
    ),
    EventSpec(
        Event.ROOM_JOINED,
        _S2C,
        "Membership confirmation, with the member list and the recent history.",
        (
            _ROOM,
            FieldSpec("members", list, description="Users in the room, sorted"),
            FieldSpec("history", list, description="Last 50 messages (or those after `since`)"),
        ),
    ),
    EventSpec(
        Event.NEW_MESSAGE,
        _S2C,
        "Message delivery, to every member of the room, the sender included.",
        (
            _ROOM,
            FieldSpec("id", str, description="Server-assigned message id"),
            FieldSpec("seq", int, description="Per-room sequence number, 1, 2, 3 ..."),
            FieldSpec("ts", int, description="Server time, milliseconds since the epoch"),
            FieldSpec("user", str, description="Sender"),
            FieldSpec("text", str, description="Message text"),
            FieldSpec("clientMsgId", str, description="The sender's id for this message"),
        ),
    ),
    EventSpec(
        Event.USER_JOINED,
        _S2C,
        "Presence update: somebody joined a room you are in.",
        (_ROOM, FieldSpec("user", str, description="Who joined")),
    ),
    EventSpec(
        Event.USER_LEFT,
        _S2C,
        "Presence update: somebody left a room you are in (or disconnected).",
        (_ROOM, FieldSpec("user", str, description="Who left")),
    ),
    EventSpec(
        Event.TYPING_START,
        _S2C,
        "Somebody in the room started typing.",
        (_ROOM, FieldSpec("user", str, description="Who is typing")),
    ),
    EventSpec(
        Event.TYPING_STOP,
        _S2C,
        "Somebody in the room stopped typing.",
        (_ROOM, FieldSpec("user", str, description="Who stopped")),
    ),
    EventSpec(
        Event.ERROR,
        _S2C,
        "Error notification.",
        (
            FieldSpec("code", str, description="One of the error codes below"),
            FieldSpec("message", str, description="Human-readable explanation"),
            FieldSpec("event", str, False, "The event that failed, if any"),
            FieldSpec("retryAfter", float, False, "Seconds to wait (rate_limited)"),
        ),
    ),
)

CLIENT_EVENTS: Mapping[str, EventSpec] = {
    e.name: e for e in EVENTS if e.direction is Direction.CLIENT_TO_SERVER
}
SERVER_EVENTS: Mapping[str, EventSpec] = {
    e.name: e for e in EVENTS if e.direction is Direction.SERVER_TO_CLIENT
}

_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(p: str) -> re.Pattern[str]:
    if p not in _COMPILED:
        _COMPILED[p] = re.compile(p)
    return _COMPILED[p]


def _is_unicode_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate(event: str, args: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    """Check the arguments a client sent with ``event`` against the catalog.

    A valid call carries exactly one JSON object. Returns that object with only the
    catalog's fields kept; raises [PayloadError][tutorial.protocol.catalog.PayloadError] with the
    right code otherwise.
    """
    spec = CLIENT_EVENTS.get(event)
    if spec is None:
        raise PayloadError(ErrorCode.UNKNOWN_EVENT, f"unknown event {event[:40]!r}")
    if len(args) != 1 or not isinstance(args[0], dict):
        raise PayloadError(
            ErrorCode.INVALID_PAYLOAD, f"{event} takes one JSON object as its payload"
        )
    payload: dict[str, Any] = args[0]
    clean: dict[str, Any] = {}
    for f in spec.fields:
        if f.name not in payload or payload[f.name] is None:
            if f.required:
                raise PayloadError(ErrorCode.INVALID_PAYLOAD, f"{event}: missing field {f.name}")
            continue
        value = payload[f.name]
        # bool is a subclass of int in Python, not in JSON.
        if not isinstance(value, f.type) or (f.type is int and isinstance(value, bool)):
            raise PayloadError(
                ErrorCode.INVALID_PAYLOAD, f"{event}: field {f.name} must be a {f.type_name}"
            )
        if isinstance(value, int) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise PayloadError(
                ErrorCode.INVALID_PAYLOAD, f"{event}: field {f.name} is out of range"
            )
        if isinstance(value, str) and not _is_unicode_text(value):
            # JSON lets "\ud800" through; UTF-8 (the database, the password hash) does not.
            raise PayloadError(
                ErrorCode.INVALID_PAYLOAD, f"{event}: field {f.name} has a lone surrogate"
            )
        if f.max_length is not None and isinstance(value, str) and len(value) > f.max_length:
            raise PayloadError(ErrorCode.INVALID_PAYLOAD, f"{event}: field {f.name} is too long")
        if (
            f.pattern is not None
            and isinstance(value, str)
            and not _pattern(f.pattern).fullmatch(value)
        ):
            raise PayloadError(
                ErrorCode.INVALID_PAYLOAD,
                f"{event}: field {f.name} must match {f.pattern}",
            )
        clean[f.name] = value
    if spec.one_of and not any(all(n in clean for n in group) for group in spec.one_of):
        alternatives = " or ".join("{" + ", ".join(g) + "}" for g in spec.one_of)
        raise PayloadError(ErrorCode.INVALID_PAYLOAD, f"{event} takes {alternatives}")
    return clean


def markdown_table() -> str:
    """The catalog as the Markdown page ``docs/reference/events.md``."""
    lines = [
        "# Event catalog",
        "",
        "Generated from `tutorial/protocol/catalog.py` by `tutorial docs`; do not edit by hand.",
        "A test fails when this page and the catalog disagree.",
        "",
    ]
    for direction in Direction:
        lines += [f"## {direction.label}", ""]
        lines += ["| event | payload | ack | errors | what it is for |", "|---|---|---|---|---|"]
        for e in EVENTS:
            if e.direction is not direction:
                continue
            fields = "<br>".join(
                f"`{f.name}`: {f.type_name}{'' if f.required else ' (optional)'}" for f in e.fields
            )
            if e.one_of:
                fields += "<br>one of: " + " or ".join("{" + ", ".join(g) + "}" for g in e.one_of)
            ack = ", ".join(f"`{a}`" for a in e.ack)
            errors = ", ".join(f"`{c.value}`" for c in e.errors)
            lines.append(f"| `{e.name}` | {fields} | {ack} | {errors} | {e.description} |")
        lines.append("")
    lines += ["## Error codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| `{c.value}` | {ERROR_MEANINGS[c]} |" for c in ErrorCode]
    lines += [
        "",
        "## Limits",
        "",
        f"- room id: `{ROOM_ID_PATTERN}`",
        f"- username: `{USERNAME_PATTERN}`",
        f"- clientMsgId: `{CLIENT_MSG_ID_PATTERN}`",
        f"- message text: at most {MAX_TEXT_LENGTH} characters (`message_too_long`)",
        "",
    ]
    return "\n".join(lines)
