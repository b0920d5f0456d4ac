"""What a trace event says about one decoded wire event: label, fields, phase, status.

The wiretap turns every [WireEvent][tutorial.protocol.stream.WireEvent] into one trace
event with [describe][tutorial.trace.fields.describe]: the label is ``str(event)`` on
one line, the fields a small JSON-able dict of what was decoded
([fields_of][tutorial.trace.fields.fields_of]), the phase says whether the connection
was still HTTP or already a WebSocket, and the status marks the two successes a diagram
colours green (the ``101`` and the Socket.IO CONNECT reply).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from tutorial.protocol.engineio import EioPacket, EioPacketType
from tutorial.protocol.http import HttpRequest, HttpResponse
from tutorial.protocol.layers import S2C, DecodeError, Direction, Layer
from tutorial.protocol.socketio import SioPacket, SioPacketType
from tutorial.protocol.stream import WireEvent
from tutorial.protocol.websocket import Close, Frame


@dataclass(frozen=True)
class Described:
    """The parts of a trace event that come from one decoded wire event."""

    label: str
    fields: dict[str, Any]
    kind: str
    phase: str
    status: str | None


def one_line(text: str) -> str:
    """``text`` with CR and LF shown as ``\\r`` and ``\\n`` (a trace label is one line)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def describe(event: WireEvent, direction: Direction, is_websocket: bool) -> Described:
    """The label, fields, kind, phase and status of one wire event."""
    decoded = event.event
    layer = event.layer
    if layer is Layer.HTTP:
        phase = "http"
    elif layer is Layer.WS:
        phase = "ws"
    else:
        phase = "ws" if is_websocket else "http"
    status = None
    if isinstance(decoded, HttpResponse) and decoded.status == 101:
        status = "ok"
    if (
        direction is S2C
        and isinstance(decoded, SioPacket)
        and decoded.type is SioPacketType.CONNECT
    ):
        status = "ok"
    kind = "error" if isinstance(decoded, DecodeError) else "message"
    return Described(one_line(str(event)), fields_of(decoded), kind, phase, status)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def fields_of(event: Any) -> dict[str, Any]:
    """The decoded fields of one wire event: small, JSON-able, one level deep mostly."""
    if isinstance(event, HttpRequest | HttpResponse):
        out: dict[str, Any] = (
            {"method": event.method, "target": event.target}
            if isinstance(event, HttpRequest)
            else {"status": event.status, "reason": event.reason}
        )
        out["headers"] = [[k, v] for k, v in event.headers]
        if event.body:
            out["body_length"] = len(event.body)
        return out
    if isinstance(event, Close):
        return frame_fields(event.frame) | {"code": int(event.code), "reason": event.reason}
    if isinstance(event, Frame):
        return frame_fields(event)
    if isinstance(event, EioPacket):
        out = {"type": event.type.name}
        opened = event.open_payload
        if opened is not None:
            out |= {
                "sid": opened.sid,
                "upgrades": list(opened.upgrades),
                "pingInterval": opened.ping_interval,
                "pingTimeout": opened.ping_timeout,
            }
        elif isinstance(event.data, bytes):
            out["data_length"] = len(event.data)
        elif event.data is not None and event.type is not EioPacketType.MESSAGE:
            out["data"] = event.data
        return out
    if isinstance(event, SioPacket):
        out = {"type": event.type.name, "namespace": event.namespace}
        if event.id is not None:
            out["id"] = event.id
        name = event.event_name
        if name is not None:
            out["event"] = name
            out["args"] = _jsonable(event.args)
        elif event.data is not None:
            out["data"] = _jsonable(event.data)
        return out
    if isinstance(event, DecodeError):
        return {"reason": event.reason, "layer": str(event.layer)}
    return {}


def frame_fields(frame: Frame) -> dict[str, Any]:
    """A frame's header fields (opcode, FIN, MASK, length, RSV1, masking key)."""
    out: dict[str, Any] = {
        "opcode": frame.opcode.name,
        "fin": frame.fin,
        "masked": frame.masked,
        "payload_length": frame.payload_length,
    }
    if frame.rsv1:
        out["rsv1"] = True
    if frame.masking_key is not None:
        out["masking_key"] = frame.masking_key.hex()
    return out


__all__ = ["Described", "describe", "fields_of", "frame_fields", "one_line"]
