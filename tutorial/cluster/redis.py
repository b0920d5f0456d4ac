"""``redis-server`` on a free loopback port, in memory only (no RDB, no AOF).

redis = RedisProcess()
redis.start()          # redis.url == "redis://127.0.0.1:PORT/0"
redis.stop(); redis.start()   # a restart keeps the port, so servers reconnect to it
redis.close()          # stop and delete the temporary directory
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tutorial.cluster.procs import free_port, kill_process, stop_process, tail, wait_until
from tutorial.components import find


def ping(host: str, port: int) -> bool:
    """True if a Redis server answers ``PING`` with ``+PONG``."""
    with socket.create_connection((host, port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


class RedisProcess:
    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or 0
        self.binary = binary or str(find("redis-server") or "redis-server")
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def logfile(self) -> Path:
        assert self.dir is not None
        return self.dir / "redis.log"

    def start(self, timeout: float = 10.0) -> str:
        """Start (or start again, on the same port) and wait until it answers PING."""
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="tutorial-redis-"))
        if not self.port:
            self.port = free_port(self.host)
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.logfile),
            "--daemonize",
            "no",
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{tail(self.logfile)}")
            return ping(self.host, self.port)

        try:
            wait_until(ready, timeout, "redis-server")
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server; the directory (and port number) stay for a restart."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
