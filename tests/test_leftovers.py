"""The teardown cell checks for real: it names leftover processes and ports."""

from __future__ import annotations

import socket
import subprocess

from tutorial.lab import LiveChat, teardown
from tutorial.leftovers import find_leftovers


def test_a_listening_socket_left_open_is_named_by_its_port() -> None:
    before = find_leftovers()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = find_leftovers()
        assert port in found.ports and found
        assert f"still listening: 127.0.0.1:{port}" in repr(found)
    assert port not in find_leftovers().ports
    assert set(find_leftovers().ports) <= set(before.ports)


def test_a_child_process_left_running_is_named() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        found = find_leftovers()
        assert any(p.startswith(f"{child.pid} sleep 30") for p in found.processes)
        assert "still running: process" in repr(found)
    finally:
        child.kill()
        child.wait()
    assert not any(p.startswith(f"{child.pid} ") for p in find_leftovers().processes)


async def test_teardown_closes_live_chats_and_says_nothing_is_left() -> None:
    chat = await LiveChat(users=("alice",)).start()
    port = chat.port
    try:
        assert port in find_leftovers().ports
    finally:
        report = await teardown()  # never leaves the chat's threads behind
    assert report.closed == 1 and chat.closed
    assert port not in report.ports
    assert "no child process and no listening port is left" in repr(report)
    again = await teardown()
    assert again.closed == 0


async def test_a_closed_chat_starts_again_with_fresh_clients() -> None:
    chat = await LiveChat(users=("alice", "bob")).start()
    seen: list[str] = []
    chat.watch(lambda c: seen.append(c.status))
    old_alice = chat.clients["alice"]
    await chat.close()
    assert chat.closed and chat.clients == {}
    await chat.start()
    try:
        assert seen == ["closed", "running"]
        assert chat.clients["alice"] is not old_alice
        await chat.clients["alice"].send("general", "back again")
    finally:
        await chat.close()


def test_a_dead_weak_proxy_among_the_objects_does_not_break_the_check() -> None:
    """gc.get_objects() may hold a weakref proxy whose object is gone (a test run has
    many); looking at it must not raise."""
    import weakref

    import zmq  # noqa: F401  (the ZeroMQ scan runs only when zmq is imported)

    class Gone:
        pass

    gone = Gone()
    proxy = weakref.proxy(gone)
    del gone
    assert proxy is not None
    find_leftovers()
