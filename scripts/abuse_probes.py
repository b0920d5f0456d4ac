"""Abuse probes: the heavy measurements behind issue 11 (not tests; run by hand).

Each probe starts a real ``tutorial serve --demo`` in a child process on a free
loopback port (fresh SQLite file in a temporary directory), attacks it the way the
issue describes, samples the server's RSS and file descriptors with psutil, prints one
JSON line of figures, and stops everything it started.

    .venv/bin/python scripts/abuse_probes.py storm --sockets 1000
    .venv/bin/python scripts/abuse_probes.py post --requests 200
    .venv/bin/python scripts/abuse_probes.py never-reader --seconds 120
    .venv/bin/python scripts/abuse_probes.py slowloris --connections 1100 --nofile 1024
    .venv/bin/python scripts/abuse_probes.py guessing --seconds 60

``--server-arg=--flag`` (repeatable) passes an option to ``tutorial serve``;
``PYTHONPATH=DIR`` runs another checkout's server (a before/after comparison).
The smallest versions of these probes that still prove each bound are the tests in
``tests/test_limits_*.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the server under test ---------------------------------------------------------------


class Server:
    """``python -m tutorial serve --demo --port 0`` in a child process."""

    def __init__(self, extra: list[str], nofile: int | None = None, strace: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="abuse-probe-"))
        self.extra = extra
        self.nofile = nofile
        self.strace = strace
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ps: psutil.Process | None = None

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "tutorial", "serve", "--demo", "--port", "0"]
        cmd += ["--db", f"sqlite:///{self.dir}/chat.db", *self.extra]
        if self.nofile:
            # The common soft limit, with a higher hard limit (systemd's default shape).
            import resource

            hard = min(self.nofile * 20, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            cmd = ["prlimit", f"--nofile={self.nofile}:{hard}", *cmd]
        if self.strace:
            cmd = ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", "strace.log", *cmd]
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = (self.dir / "server.log").read_text(errors="replace")
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if found:
                self.port = int(found.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{text}")
            time.sleep(0.05)
        else:
            raise TimeoutError("server did not start")
        self.ps = psutil.Process(self.proc.pid)
        if self.strace:  # measure the server (strace's child), not strace
            self.ps = self.ps.children()[0]
        return self

    def syscalls(self, name: str) -> int:
        log = self.dir / "strace.log"
        return log.read_text().count(f"{name}(") if log.exists() else 0

    def stop(self) -> None:
        if self.strace and self.ps is not None:
            # Under strace the server is strace's child: stop it first, or it outlives us.
            with contextlib.suppress(psutil.Error):
                self.ps.terminate()
                self.ps.wait(20)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        assert self.ps is not None
        return self.ps.memory_info().rss / 2**20

    def fds(self) -> int:
        assert self.ps is not None
        return self.ps.num_fds()

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return t.user + t.system

    def stats(self) -> dict[str, Any]:
        with OPENER.open(f"{self.url}/stats", timeout=120) as r:
            return json.loads(r.read())

    def log(self) -> str:
        return (self.dir / "server.log").read_text(errors="replace")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


# -- a minimal Engine.IO v4 / Socket.IO v5 client over a WebSocket ------------------------


class Sock:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[tuple[str, Any]] = []
        self.closed = asyncio.Event()
        self._waiters: list[tuple[str, asyncio.Future[Any]]] = []
        self.reader: asyncio.Task[None] | None = None
        self.raw_acks: list[str] = []

    @classmethod
    async def open(cls, port: int, auth: Any, local: str | None = None) -> Sock:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        kw: dict[str, Any] = {"open_timeout": 30, "close_timeout": 1, "max_size": 2**24}
        if local:
            kw["local_addr"] = (local, 0)
        ws = await ws_connect(url, **kw)
        opening = await asyncio.wait_for(ws.recv(), 30)
        assert str(opening).startswith("0"), opening
        sock = cls(ws)
        await ws.send("40" + json.dumps(auth))
        sock.reader = asyncio.create_task(sock._read())
        return sock

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2":
                    await self.ws.send("3")
                    continue
                text = str(frame)
                if text.startswith("42"):
                    name, *args = json.loads(text[2:])
                    self._got(name, args[0] if args else None)
                elif text.startswith("40"):
                    self._got("connect", json.loads(text[2:] or "null"))
                elif text.startswith("44"):
                    self._got("connect_error", json.loads(text[2:]))
                elif text.startswith("43"):
                    self.raw_acks.append(text)
        except Exception:  # a closed socket ends the reader
            pass
        finally:
            self.closed.set()

    def _got(self, name: str, data: Any) -> None:
        self.events.append((name, data))
        for waiter in list(self._waiters):
            if waiter[0] == name and not waiter[1].done():
                waiter[1].set_result(data)
                self._waiters.remove(waiter)

    async def wait(self, name: str, timeout: float = 30) -> Any:
        for got, data in self.events:
            if got == name:
                return data
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((name, fut))
        return await asyncio.wait_for(fut, timeout)

    def abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()


async def login_token(port: int, user: str) -> str:
    sock = await Sock.open(port, {"username": user, "password": user})
    confirmed = await sock.wait("connect-confirmed")
    await sock.ws.close()
    return str(confirmed["token"])


async def sample_until(server: Server, done: Any, timeout: float) -> tuple[float, float]:
    """Sample RSS every 20 ms until ``done()``; return (peak RSS MiB, seconds)."""
    start = time.monotonic()
    peak = server.rss_mib()
    while time.monotonic() - start < timeout:
        peak = max(peak, server.rss_mib())
        if await asyncio.to_thread(done):
            break
        await asyncio.sleep(0.02)
    return peak, time.monotonic() - start


def quiet(server: Server, window: float = 0.3, busy: float = 0.05) -> bool:
    """True when the server used under ``busy`` of a core over ``window`` seconds."""
    before = server.cpu_seconds()
    time.sleep(window)
    return (server.cpu_seconds() - before) / window < busy


# -- probe 1: presence storm ---------------------------------------------------------------


async def probe_storm(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg).start()
    try:
        token = await login_token(server.port, "alice")
        base_rss = server.rss_mib()
        started = time.monotonic()
        auth = {"token": token, "offsets": {"general": 0}}
        socks: list[Sock] = []
        refused: dict[str, int] = {}

        async def one() -> None:
            # Connect; when throttled (rate_limited), wait as told and try again.
            for _ in range(100):
                s = await Sock.open(server.port, auth)
                first = await asyncio.wait_for(_first_of(s, ("room-joined", "connect_error")), 300)
                if first == "room-joined":
                    socks.append(s)
                    return
                data = (dict(s.events).get("connect_error") or {}).get("data") or {}
                code = data.get("code", first)
                refused[code] = refused.get(code, 0) + 1
                s.abort()
                if code != "rate_limited" or not args.retry:
                    return
                await asyncio.sleep(float(data.get("retryAfter", 1)))

        for batch in range(0, args.sockets, 100):
            await asyncio.gather(*(one() for _ in range(min(100, args.sockets - batch))))
        connect_s = time.monotonic() - started
        # Connected baseline: every socket joined (or refused) and the server idle.
        await asyncio.to_thread(lambda: all(quiet(server, 1.0) for _ in range(3)))
        while not await asyncio.to_thread(quiet, server, 1.0):
            pass
        connected_rss = server.rss_mib()
        connections = server.stats().get("connections")
        for s in socks:
            s.abort()
        peak, settle = await sample_until(
            server, lambda: server.stats().get("connections") == 0 and quiet(server), 300
        )
        for s in socks:
            if s.reader:
                s.reader.cancel()
        return {
            "probe": "storm",
            "sockets": args.sockets,
            "connected": len(socks),
            "refusals": refused,
            "connections_seen": connections,
            "connect_s": round(connect_s, 2),
            "rss_before_mib": round(base_rss, 1),
            "rss_connected_mib": round(connected_rss, 1),
            "rss_peak_mib": round(peak, 1),
            "peak_over_connected": round(peak / connected_rss, 2),
            "settle_s": round(settle, 2),
            "load": load(),
        }
    finally:
        server.stop()


async def probe_shutdown(args: argparse.Namespace) -> dict[str, Any]:
    """N sockets of several users in ``general``, then SIGTERM: seconds until exit."""
    server = Server(args.server_arg).start()
    socks: list[Sock] = []
    try:
        users = ["alice", "bob", "charlie", "diana", "eve", "frank", "grace"]
        tokens = {u: await login_token(server.port, u) for u in users}

        async def one(user: str) -> None:
            for _ in range(100):
                s = await Sock.open(server.port, {"token": tokens[user], "offsets": {"general": 0}})
                first = await asyncio.wait_for(_first_of(s, ("room-joined", "connect_error")), 300)
                if first == "room-joined":
                    socks.append(s)
                    return
                data = (dict(s.events).get("connect_error") or {}).get("data") or {}
                s.abort()
                await asyncio.sleep(float(data.get("retryAfter", 1)))

        for batch in range(0, args.sockets, 70):
            n = min(70, args.sockets - batch)
            await asyncio.gather(*(one(users[k % len(users)]) for k in range(n)))
        while not await asyncio.to_thread(quiet, server, 1.0):
            pass
        assert server.proc is not None
        started = time.monotonic()
        server.proc.terminate()
        await asyncio.to_thread(server.proc.wait, 300)
        return {
            "probe": "shutdown",
            "members": len(socks),
            "shutdown_s": round(time.monotonic() - started, 2),
            "load": load(),
        }
    finally:
        for s in socks:
            s.abort()
        server.stop()


async def _first_of(sock: Sock, names: tuple[str, ...]) -> str:
    while True:
        for name, _ in sock.events:
            if name in names:
                return name
        if sock.closed.is_set():
            return "closed"
        await asyncio.sleep(0.01)


# -- probe 2: oversized and slow polling POSTs ---------------------------------------------


async def _http(port: int, data: bytes, timeout: float) -> bytes | None:
    """Send raw bytes; return the response head, or None if nothing came in time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(4096), timeout)
        except TimeoutError:
            return None
    finally:
        writer.transport.abort()


async def _polling_sid(port: int) -> str:
    head = await _http(
        port, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n", 10
    )
    assert head is not None
    body = head.split(b"\r\n\r\n", 1)[1]
    return str(json.loads(body[1:])["sid"])


async def probe_post(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg).start()
    try:
        base_fds = server.fds()
        base_rss = server.rss_mib()
        sids = [await _polling_sid(server.port) for _ in range(args.requests)]

        async def oversized(sid: str) -> bytes | None:
            head = (
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                "Host: x\r\nContent-Type: text/plain\r\nContent-Length: 70000\r\n\r\n"
            ).encode()
            return await _http(server.port, head + b"4" * 1000, args.wait)

        async def dribbled(sid: str) -> bytes | None:
            head = (
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                "Host: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
            ).encode()
            return await _http(server.port, head + b"4", args.wait)

        half = len(sids) // 2
        started = time.monotonic()
        answers = await asyncio.gather(
            *(oversized(s) for s in sids[:half]), *(dribbled(s) for s in sids[half:])
        )
        elapsed = time.monotonic() - started
        statuses: dict[str, int] = {}
        for a in answers:
            key = a.split(b"\r\n", 1)[0].decode() if a else "no answer"
            statuses[key] = statuses.get(key, 0) + 1
        # The clients are gone: are the server's descriptors released?
        _, settle = await sample_until(server, lambda: server.fds() <= base_fds + 2, 120)
        return {
            "probe": "post",
            "requests": len(sids),
            "answers": statuses,
            "hung": sum(1 for a in answers if a is None),
            "answered_within_s": round(elapsed, 2),
            "fds_before": base_fds,
            "fds_after": server.fds(),
            "fds_released_s": round(settle, 2),
            "rss_before_mib": round(base_rss, 1),
            "rss_after_mib": round(server.rss_mib(), 1),
            "load": load(),
        }
    finally:
        server.stop()


# -- probe 3: a client that never reads ------------------------------------------------------


class NeverReader:
    """A raw WebSocket client with a tiny receive buffer that never reads what the server
    sends, but answers pings blind (an unsolicited PONG every few seconds keeps the
    Engine.IO session alive)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    @staticmethod
    def frame(text: str) -> bytes:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def open(self, auth: dict[str, Any], rooms: list[str]) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        s.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        s.recv(512)  # the 101 and the OPEN packet; from here on nothing is read
        s.sendall(self.frame("40" + json.dumps(auth)))
        for i, room in enumerate(rooms):
            s.sendall(self.frame(f"42{i}" + json.dumps(["join-room", {"roomId": room}])))
        self.sock = s

    def send(self, text: str) -> bool:
        assert self.sock is not None
        try:
            self.sock.sendall(self.frame(text))
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether the server still holds the connection (a reset or FIN means no)."""
        assert self.sock is not None
        try:
            self.sock.setblocking(False)
            data = self.sock.recv(1, socket.MSG_PEEK)
            return bool(data)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


async def probe_never_reader(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg).start()
    senders: list[Sock] = []
    try:
        others = ["bob", "charlie", "diana", "eve", "frank", "grace"][: args.senders]
        tokens = {u: await login_token(server.port, u) for u in ["alice", *others]}
        reader = NeverReader(server.port)
        reader.open({"token": tokens["alice"]}, ["general"])
        for user in others:
            s = await Sock.open(server.port, {"token": tokens[user], "offsets": {"general": 0}})
            await s.wait("room-joined")
            senders.append(s)
        await asyncio.sleep(1)
        base_rss = server.rss_mib()
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        dropped_at: float | None = None
        text = "x" * 1900
        k = 0
        last_pong = 0.0
        while time.monotonic() - started < args.seconds:
            now = time.monotonic() - started
            if now - last_pong > 5:
                reader.send("3")
                last_pong = now
            if args.flood:
                # The never-reader itself floods: every refused event queues an error
                # and an ack that it never reads.
                for _ in range(200):
                    k += 1
                    reader.send(f"42{k}" + json.dumps(["typing-start", {"roomId": "general"}]))
            for s in senders:
                k += 1
                msg = {"roomId": "general", "text": text, "clientMsgId": f"p{k}"}
                await s.ws.send("42" + json.dumps(["send-message", msg]))
            samples.append((round(now, 1), round(server.rss_mib(), 1)))
            # Dropped: the server no longer lists alice (the never-reader) as connected.
            if (
                dropped_at is None
                and "alice" not in (await asyncio.to_thread(server.stats))["users"]
            ):
                dropped_at = now
                if args.stop_when_dropped:
                    break
            await asyncio.sleep(0.1)
        rss_end = server.rss_mib()
        reader.close()
        return {
            "probe": "never-reader",
            "flood": args.flood,
            "senders": args.senders,
            "seconds": args.seconds,
            "rss_before_mib": round(base_rss, 1),
            "rss_max_mib": max(r for _, r in samples),
            "rss_end_mib": round(rss_end, 1),
            "dropped_after_s": None if dropped_at is None else round(dropped_at, 2),
            "rss_every_10s": [r for t, r in samples if abs(t - round(t / 10) * 10) < 0.06],
            "load": load(),
        }
    finally:
        for s in senders:
            s.abort()
        server.stop()


# -- probe 4: slowloris ------------------------------------------------------------------------


async def probe_slowloris(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg, nofile=args.nofile).start()
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    try:
        for i in range(args.connections):
            try:
                r, w = await asyncio.open_connection("127.0.0.1", server.port)
            except OSError:
                break
            w.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ".encode())
            held.append((r, w, time.monotonic()))
        opened = time.monotonic()

        async def normal_client(k: int) -> bool:
            try:

                def get() -> bool:
                    with OPENER.open(f"{server.url}/healthz", timeout=3) as resp:
                        return resp.status == 200

                return await asyncio.to_thread(get)
            except OSError:
                return False

        ok = fail = 0
        closed_at: list[float] = []
        pending = {id(w): (r, w, t) for r, w, t in held}
        while time.monotonic() - opened < args.seconds and (pending or ok + fail < 20):
            # Keep dribbling a header byte to every held connection.
            for key, (r, w, t) in list(pending.items()):
                if r.at_eof() or w.is_closing():
                    closed_at.append(time.monotonic() - t)
                    del pending[key]
                    continue
                with contextlib.suppress(OSError):
                    w.write(b"a")
            results = await asyncio.gather(*(normal_client(k) for k in range(5)))
            ok += sum(results)
            fail += len(results) - sum(results)
            # Let readers notice EOF.
            await asyncio.gather(
                *(asyncio.wait_for(_probe_eof(r), 0.01) for r, _, _ in pending.values()),
                return_exceptions=True,
            )
            await asyncio.sleep(0.5)
        return {
            "probe": "slowloris",
            "nofile_soft": args.nofile,
            "held": len(held),
            "closed_by_server": len(closed_at),
            "still_open": len(pending),
            "closed_after_s_max": round(max(closed_at), 2) if closed_at else None,
            "normal_ok": ok,
            "normal_failed": fail,
            "load": load(),
        }
    finally:
        for _, w, _ in held:
            w.transport.abort()
        server.stop()


async def _probe_eof(reader: asyncio.StreamReader) -> None:
    await reader.read(1)


# -- probe 5: password guessing ---------------------------------------------------------------


async def probe_guessing(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg).start()
    try:
        counts: dict[str, int] = {}
        started = time.monotonic()
        stop = started + args.seconds

        async def guesser(g: int) -> None:
            k = 0
            while time.monotonic() < stop:
                k += 1
                local = f"127.0.{(g // 200) + 1}.{g % 200 + 2}" if args.spread else None
                try:
                    s = await Sock.open(
                        server.port, {"username": "alice", "password": f"guess-{g}-{k}"}, local
                    )
                except OSError:
                    counts["network"] = counts.get("network", 0) + 1
                    continue
                first = await asyncio.wait_for(
                    _first_of(s, ("connect-confirmed", "connect_error")), 30
                )
                code = "?"
                if first == "connect_error":
                    data = dict(s.events)["connect_error"]
                    code = (data.get("data") or {}).get("code", "?")
                    if code == "rate_limited" and args.obey:
                        await asyncio.sleep(float(data["data"].get("retryAfter", 1)))
                counts[code] = counts.get(code, 0) + 1
                await s.ws.close()

        latencies: list[float] = []

        async def legit() -> None:
            while time.monotonic() < stop:
                t = time.monotonic()
                s = await Sock.open(server.port, {"username": "bob", "password": "bob"})
                await s.wait("connect-confirmed")
                latencies.append((time.monotonic() - t) * 1000)
                await s.ws.close()
                await asyncio.sleep(2)

        await asyncio.gather(*(guesser(g) for g in range(args.guessers)), legit())
        minutes = (time.monotonic() - started) / 60
        latencies.sort()
        return {
            "probe": "guessing",
            "seconds": args.seconds,
            "guessers": args.guessers,
            "spread_addresses": args.spread,
            "outcomes": counts,
            "password_checks_per_minute": round(counts.get("auth_failed", 0) / minutes, 1),
            "legit_login_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "legit_login_ms_max": round(latencies[-1], 1) if latencies else None,
            "load": load(),
        }
    finally:
        server.stop()


# -- acknowledged messages per second (durability) ----------------------------------------


async def probe_acks(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg, strace=args.fsyncs).start()
    socks: list[Sock] = []
    try:
        users = ["alice", "bob", "charlie", "diana", "eve", "frank", "grace"][: args.clients]
        for user in users:
            token = await login_token(server.port, user)
            s = await Sock.open(server.port, {"token": token, "offsets": {"general": 0}})
            await s.wait("room-joined")
            socks.append(s)
        before_fsync = server.syscalls("fsync") + server.syscalls("fdatasync")
        acked = 0

        async def sender(s: Sock, user: str) -> None:
            nonlocal acked
            for k in range(args.messages):
                msg = {"roomId": "general", "text": f"m {k}", "clientMsgId": f"{user}-{k}"}
                await s.ws.send(f"42{k}" + json.dumps(["send-message", msg]))
                while True:  # the ack of this very message (43k[...])
                    got = await _ack(s, k)
                    if got:
                        break
                acked += 1

        started = time.monotonic()
        await asyncio.gather(*(sender(s, u) for s, u in zip(socks, users, strict=True)))
        elapsed = time.monotonic() - started
        fsyncs = server.syscalls("fsync") + server.syscalls("fdatasync") - before_fsync
        return {
            "probe": "acks",
            "clients": len(socks),
            "acked": acked,
            "acks_per_s": round(acked / elapsed, 1),
            "fsyncs": fsyncs if args.fsyncs else None,
            "load": load(),
        }
    finally:
        for s in socks:
            s.abort()
        server.stop()


async def _ack(sock: Sock, ack_id: int) -> bool:
    """Wait for the raw ACK frame ``43<ack_id>[...]`` (read by the reader task)."""
    while True:
        for frame in sock.raw_acks:
            if frame.startswith(f"43{ack_id}["):
                sock.raw_acks.remove(frame)
                return True
        await asyncio.sleep(0.002)


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server-arg", action="append", default=[])
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("storm")
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--retry", action="store_true", help="wait out rate_limited and retry")
    p = sub.add_parser("shutdown")
    p.add_argument("--sockets", type=int, default=500)
    p = sub.add_parser("post")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--wait", type=float, default=30.0)
    p = sub.add_parser("never-reader")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--flood", action="store_true")
    p.add_argument("--senders", type=int, default=2, help="users sending 10 messages/s each")
    p.add_argument("--stop-when-dropped", action="store_true")
    p = sub.add_parser("slowloris")
    p.add_argument("--connections", type=int, default=1100)
    p.add_argument("--nofile", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=30.0)
    p = sub.add_parser("acks")
    p.add_argument("--clients", type=int, default=7)
    p.add_argument("--messages", type=int, default=20, help="per client (the burst allowed)")
    p.add_argument("--fsyncs", action="store_true", help="count fsyncs with strace")
    p = sub.add_parser("guessing")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--guessers", type=int, default=20)
    p.add_argument("--spread", action="store_true", help="each guess from its own address")
    p.add_argument("--obey", action="store_true", help="wait retryAfter when throttled")
    args = parser.parse_args()
    probes = {
        "storm": probe_storm,
        "post": probe_post,
        "never-reader": probe_never_reader,
        "slowloris": probe_slowloris,
        "guessing": probe_guessing,
        "acks": probe_acks,
        "shutdown": probe_shutdown,
    }
    result = asyncio.run(probes[args.probe](args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
