"""Tables that explain wire units bit by bit, for the chapters.

Each function takes real bytes or packets (from a trace or the RFC), decodes them with
[tutorial.protocol][tutorial.protocol], and returns Markdown, which a notebook shows with
``IPython.display.Markdown``.
"""

from __future__ import annotations

import json
from typing import Any

from tutorial.protocol import engineio, socketio
from tutorial.protocol.websocket import Frame, FrameDecoder

SIO_TYPE_NAMES = {
    0: "connect",
    1: "disconnect",
    2: "event",
    3: "ack",
    4: "connect_error",
    5: "binary_event",
    6: "binary_ack",
}


def decode_frame(raw: bytes, client_to_server: bool | None = None) -> Frame:
    """The first frame in ``raw`` (raises ValueError if there is none)."""
    if client_to_server is None:
        client_to_server = len(raw) > 1 and bool(raw[1] & 0x80)
    for event in FrameDecoder(client_to_server=client_to_server).receive_data(raw):
        if isinstance(event, Frame):
            return event
    raise ValueError("no complete frame in these bytes")


def frame_bits_table(raw: bytes, client_to_server: bool | None = None) -> str:
    """RFC 6455 section 5.2, field by field, for one real frame."""
    frame = decode_frame(raw, client_to_server)
    b0, b1 = raw[0], raw[1]
    length_bytes = {7: 0, 16: 2, 64: 8}[frame.length_form]
    rows = [
        ("FIN", "bit 0", f"{b0 >> 7}", "1 = the last frame of a message"),
        ("RSV1-3", "bits 1-3", f"{(b0 >> 4) & 0b111:03b}", "1 only with an extension (deflate)"),
        (
            "opcode",
            "bits 4-7",
            f"{b0 & 0x0F:04b} = {frame.opcode.name}",
            "1 text, 2 binary, 8 close",
        ),
        ("MASK", "bit 8", f"{b1 >> 7}", "1 on every client-to-server frame"),
        (
            "payload len",
            "bits 9-15" + (f" + {length_bytes} bytes" if length_bytes else ""),
            f"{b1 & 0x7F} → {frame.payload_length}",
            "126: next 2 bytes hold it; 127: next 8",
        ),
    ]
    if frame.masking_key is not None:
        rows.append(
            ("masking key", "4 bytes", frame.masking_key.hex(" "), "XORed over the payload")
        )
    text = frame.payload.decode("utf-8", errors="replace")
    rows.append(("payload", f"{frame.payload_length} bytes", f"`{text[:60]}`", "unmasked"))
    lines = [
        f"Frame bytes: `{raw[:24].hex(' ')}{' …' if len(raw) > 24 else ''}`",
        "",
        "| field | where | value | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def seed_view(sio_text: str) -> dict[str, Any]:
    """A Socket.IO packet as the seed's diagram 1 simplifies it: ``{"type", ...}``."""
    packet = socketio.decode_packet(sio_text)
    if not isinstance(packet, socketio.SioPacket):
        return {"type": "undecodable"}
    view: dict[str, Any] = {"type": SIO_TYPE_NAMES.get(int(packet.type), str(packet.type))}
    if packet.type == socketio.SioPacketType.CONNECT and not packet.data:
        view["namespace"] = packet.namespace
    elif isinstance(packet.data, dict) and "sid" in packet.data:
        view["data"] = "sid"
    elif packet.data is not None:
        view["data"] = packet.data
    return view


def wire_vs_seed(eio_texts: list[str]) -> str:
    """Engine.IO/Socket.IO packets as they crossed the wire, beside the seed's JSON."""
    lines = [
        "| on the wire | Engine.IO | Socket.IO | as the seed draws it |",
        "|---|---|---|---|",
    ]
    for text in eio_texts:
        eio = engineio.decode_packet(text)
        if not isinstance(eio, engineio.EioPacket):
            continue
        eio_name = eio.type.name
        sio_part = ""
        seed = ""
        if eio.type == engineio.EioPacketType.MESSAGE and isinstance(eio.data, str):
            sio = socketio.decode_packet(eio.data)
            sio_part = sio.type.name if isinstance(sio, socketio.SioPacket) else "?"
            seed = json.dumps(seed_view(eio.data))
        elif eio.type == engineio.EioPacketType.OPEN:
            seed = "(not drawn: the Engine.IO handshake)"
        shown = text if len(text) <= 70 else text[:67] + "…"
        lines.append(f"| `{shown}` | {eio_name} | {sio_part} | `{seed}` |")
    return "\n".join(lines)


def event_catalog() -> str:
    """The event catalog as a chapter shows it: the tables of ``docs/reference/events.md``
    without that page's title and maintainer notes."""
    from tutorial.protocol import catalog

    page = catalog.markdown_table()
    return page[page.index("\n## ") + 1 :]
