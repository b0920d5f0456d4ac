"""Chat servers as separate processes: ``python -m tutorial serve`` on free ports.

Each one is a real ``tutorial serve`` with ``--name server-i``, a shared ``--db``,
(for a cluster) ``--redis`` and (with PostgreSQL standbys) ``--read-db`` for each
standby; it is ready when ``/healthz`` answers with its name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tutorial.cluster.procs import free_port, kill_process, stop_process, tail, wait_until

# Loopback only: never through an HTTP proxy that the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str, timeout: float = 2.0) -> Any:
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


class ServerProcess:
    """One ``tutorial serve`` child process."""

    def __init__(
        self,
        name: str,
        db_url: str,
        redis_url: str | None = None,
        port: int | None = None,
        demo: bool = True,
        log_dir: Path | None = None,
        extra_args: list[str] | None = None,
        read_urls: list[str] | None = None,
    ) -> None:
        self.name = name
        self.read_urls = list(read_urls or [])
        self.db_url = db_url
        self.redis_url = redis_url
        self.host = "127.0.0.1"
        self.port = port or 0
        self.demo = demo
        self.log_dir = log_dir
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def logfile(self) -> Path | None:
        return self.log_dir / f"{self.name}.log" if self.log_dir else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tutorial", "serve", "--host", self.host]
        cmd += ["--port", str(self.port), "--db", self.db_url, "--name", self.name]
        if self.demo:
            cmd.append("--demo")
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        for url in self.read_urls:
            cmd += ["--read-db", url]
        return cmd + self.extra_args

    def spawn(self) -> None:
        """Start the process (without waiting for it: see ``wait_ready``)."""
        if not self.port:
            self.port = free_port(self.host)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out: Any = subprocess.DEVNULL
        if self.logfile is not None:
            out = open(self.logfile, "ab")  # noqa: SIM115 - closed right after Popen
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                log = tail(self.logfile) if self.logfile else ""
                raise RuntimeError(f"{self.name} exited during start:\n{log}")
            try:
                name = get_json(f"{self.url}/healthz", 1.0).get("name")
            except (OSError, ValueError):
                return False
            if name != self.name:
                raise RuntimeError(f"port {self.port} answers as {name!r}, not {self.name}")
            return True

        try:
            wait_until(ready, timeout, self.name)
        except TimeoutError as exc:
            log = tail(self.logfile) if self.logfile else ""
            raise TimeoutError(f"{exc}; pid {self.pid}, port {self.port}; log:\n{log}") from None

    def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stats(self) -> dict[str, Any]:
        """``/stats``: ``{name, users, rooms, connections}`` of this server."""
        result: dict[str, Any] = get_json(f"{self.url}/stats")
        return result

    def kill(self) -> None:
        """``kill -9``: no goodbye to the clients, the kernel closes the sockets."""
        kill_process(self.proc)

    def stop(self) -> None:
        """SIGTERM: the server closes its sessions and its store, then exits."""
        stop_process(self.proc)


def start_servers(
    count: int,
    db_url: str,
    redis_url: str | None = None,
    log_dir: Path | None = None,
    demo: bool = True,
    timeout: float = 20.0,
    read_urls: list[str] | None = None,
    extra_args: list[str] | None = None,
) -> list[ServerProcess]:
    """Start ``count`` servers named ``server-1`` ... in parallel; all ready, or none left."""
    servers = [
        ServerProcess(
            f"server-{i}",
            db_url,
            redis_url,
            demo=demo,
            log_dir=log_dir,
            read_urls=read_urls,
            extra_args=extra_args,
        )
        for i in range(1, count + 1)
    ]
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            try:
                server.wait_ready(timeout)
            except (RuntimeError, TimeoutError) as first:
                # A free port can be taken by another process between our check and the
                # server's bind: try once more on a new port, then give up.
                server.stop()
                server.port = 0
                server.spawn()
                try:
                    server.wait_ready(timeout)
                except (RuntimeError, TimeoutError) as second:
                    raise second from first
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
