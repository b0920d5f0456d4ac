"""Interop: the official JavaScript client (socket.io-client v4, from npm) and our server.

``tests/js/interop.mjs`` logs in as alice with the CONNECT auth, joins ``general``,
sends one message with a clientMsgId and prints one JSON line per thing it received.
It runs under ``node`` against a real server (fixture ``server``), once per transport:
WebSocket only and HTTP long-polling only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rawclient import Recorder, unique_id
from skips import needs

from tutorial.chat.server import ChatServer, find_socketio_client
from tutorial.components import find

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "interop.mjs"
NODE = find("node")

pytestmark = [
    pytest.mark.timeout(60),
    needs("node"),
    pytest.mark.skipif(
        find_socketio_client(ROOT) is None,
        reason="component missing: node_modules/socket.io-client (run make setup)",
    ),
]


async def run_interop(url: str, transport: str, client_msg_id: str, text: str) -> list[dict]:
    """Run the node script; return its JSON lines (fails the test on a non-zero exit)."""
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        url,
        "--transports",
        transport,
        "--user",
        "alice",
        "--room",
        "general",
        "--text",
        text,
        "--client-msg-id",
        client_msg_id,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert proc.returncode == 0, f"node exited {proc.returncode}: {lines}\n{stderr.decode()}"
    return lines


def first(lines: list[dict], event: str, **match: Any) -> dict:
    for line in lines:
        if line["event"] == event and all(line.get(k) == v for k, v in match.items()):
            return line
    raise AssertionError(f"no {event} {match or ''} in {[line['event'] for line in lines]}")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_js_client_logs_in_joins_and_sends(server: ChatServer, transport: str) -> None:
    msg_id = unique_id(f"js-{transport}")
    lines = await run_interop(server.url, transport, msg_id, "Hello everyone!")

    # The transport really was the one asked for (no upgrade).
    assert first(lines, "connect")["transport"] == transport
    assert first(lines, "done")["transport"] == transport

    confirmed = first(lines, "connect-confirmed")["data"]
    assert confirmed["user"] == "alice"
    assert confirmed["sid"] == first(lines, "connect")["id"]
    assert confirmed["rooms"] == ["general", "private-chat", "tech-talk"]
    assert isinstance(confirmed["token"], str) and confirmed["token"]

    joined = first(lines, "room-joined")["data"]
    assert joined["roomId"] == "general"
    assert joined["members"] == ["alice"]
    assert joined["history"] == []
    assert first(lines, "ack", **{"for": "join-room"})["data"] == {
        "ok": True,
        "roomId": "general",
        "members": ["alice"],
    }

    # new-message carries the server's metadata {id, seq, ts, user} (seed diagram 3).
    message = first(lines, "new-message")["data"]
    assert message["roomId"] == "general"
    assert message["text"] == "Hello everyone!"
    assert message["clientMsgId"] == msg_id
    assert message["user"] == "alice"
    assert message["seq"] == 1
    assert isinstance(message["id"], str) and message["id"]
    assert isinstance(message["ts"], int) and message["ts"] > 1_600_000_000_000

    # The ack names the same message.
    ack = first(lines, "ack", **{"for": "send-message"})["data"]
    assert ack == {"ok": True, "id": message["id"], "seq": 1, "duplicate": False}

    assert not [line for line in lines if line["event"] in ("error", "fail")]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_client_receives_the_js_clients_message(
    server: ChatServer, transport: str
) -> None:
    bob = Recorder(server.url, "bob")
    try:
        await bob.login("bob", rooms=("general",))
        msg_id = unique_id("js-to-bob")
        text = "Hi bob, from the JavaScript client <b>not bold</b>"
        lines = await run_interop(server.url, transport, msg_id, text)

        joined = await bob.next("user-joined")
        assert joined == {"roomId": "general", "user": "alice"}
        received = await bob.next("new-message", match=lambda d: d["clientMsgId"] == msg_id)
        sent = first(lines, "new-message")["data"]
        assert received == sent
        assert received["user"] == "alice"
        assert received["text"] == text
        # The JS client saw bob in the member list when it joined.
        assert first(lines, "room-joined")["data"]["members"] == ["alice", "bob"]
        # And bob hears alice leave when the node process disconnects.
        assert await bob.next("user-left") == {"roomId": "general", "user": "alice"}
    finally:
        await bob.close()
