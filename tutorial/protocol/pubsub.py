"""python-socketio's pub/sub adapter messages: what one server asks the others to do.

Every server of a cluster publishes its broadcasts on one Redis channel,
[CHANNEL][tutorial.protocol.pubsub.CHANNEL], as JSON:
``{"method": "emit", "event": ..., "data": ..., "namespace": "/", "room": ...,
"host_id": ...}``, and every subscribed server delivers it to its own clients. These
helpers read such a message for a diagram label; they never raise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CHANNEL = "socketio"
"""The channel python-socketio's ``AsyncRedisManager`` uses by default."""


def payload_text(value: Any) -> str | None:
    """A RESP bulk string (bytes) as text; None if it is not UTF-8 or not a string."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def adapter_fields(payload: str | None) -> dict[str, Any]:
    """method/event/room/namespace of an adapter message (``{}`` if it is not JSON)."""
    if payload is None:
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(data, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in ("method", "event", "room", "namespace"):
        if key in data and isinstance(data[key], str | int | float | bool | type(None)):
            out[key] = data[key]
    return out


def describe(fields: Mapping[str, Any]) -> str:
    """``emit new-message to room general`` (what the adapter message asks for)."""
    method = fields.get("method")
    if method is None:
        return "(not an adapter message)"
    words = [str(method)]
    if fields.get("event") is not None:
        words.append(str(fields["event"]))
    if "room" in fields:
        room = fields["room"]
        words.append("to everyone" if room is None else f"to room {room}")
    return " ".join(words)


__all__ = ["CHANNEL", "adapter_fields", "describe", "payload_text"]
