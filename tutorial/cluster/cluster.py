"""Seed diagram 6, running: nginx with sticky sessions → N chat servers → Redis → database.

    async with Cluster(servers=3) as cluster:          # or: await cluster.start()
        cluster.url                                    # the nginx entry point
        cluster.servers[0].url, .port, .pid            # each server, reachable directly
        cluster.kill(0)                                # kill -9 server-1
        await cluster.restart_redis()
        await cluster.distribution()                   # {"alice": "server-2", ...}

Every part is a real process on 127.0.0.1 and a free port;
[Cluster.stop][tutorial.cluster.cluster.Cluster.stop] (also
on error, also when start fails half-way) leaves no process and no temporary file.

On one machine every client comes from 127.0.0.1, and ``hash $remote_addr`` would
send them all to one server; clients that bind distinct source addresses
(``ClientOptions(local_addr="127.0.0.2")``, see
[client_address][tutorial.cluster.cluster.client_address]) are spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tutorial.cluster.nginx import NginxProcess
from tutorial.cluster.postgres import TempPostgres
from tutorial.cluster.redis import RedisProcess
from tutorial.cluster.servers import ServerProcess, get_json, start_servers


def client_address(i: int) -> str:
    """A distinct loopback source address for client ``i``: 127.0.0.2, 127.0.0.3, ..."""
    n = i + 2
    return f"127.0.{n // 250}.{n % 250 + (1 if n // 250 else 0)}"


class Cluster:
    """nginx + ``servers`` chat servers + redis-server + a shared store.

    ``db_url=None`` shares a SQLite file in the cluster's temporary directory;
    ``postgres=True`` starts a throwaway PostgreSQL server
    ([TempPostgres][tutorial.cluster.postgres.TempPostgres]);
    ``redis=False`` runs the servers without the Redis manager (each server then only
    reaches its own clients); ``sticky=False`` makes nginx round-robin.
    """

    def __init__(
        self,
        servers: int = 3,
        db_url: str | None = None,
        redis: bool = True,
        sticky: bool = True,
        postgres: bool = False,
        fail_timeout: float = 10.0,
        demo: bool = True,
    ) -> None:
        self.count = servers
        self.db_url = db_url
        self.use_redis = redis
        self.sticky = sticky
        self.use_postgres = postgres
        self.fail_timeout = fail_timeout
        self.demo = demo
        self.dir: Path | None = None
        self.postgres: TempPostgres | None = None
        self.redis: RedisProcess | None = None
        self.nginx: NginxProcess | None = None
        self.servers: list[ServerProcess] = []

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.nginx is not None, "cluster not started"
        return self.nginx.url

    async def start(self) -> Cluster:
        try:
            await asyncio.to_thread(self._start)
        except BaseException:
            await self.stop()
            raise
        return self

    def _start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tutorial-cluster-"))
        if self.db_url is None:
            if self.use_postgres:
                self.postgres = TempPostgres()
                self.db_url = self.postgres.start()
            else:
                self.db_url = f"sqlite:///{self.dir}/chat.db"
        if self.use_redis:
            self.redis = RedisProcess()
            self.redis.start()
        self.servers = start_servers(
            self.count,
            self.db_url,
            self.redis.url if self.redis else None,
            log_dir=self.dir,
            demo=self.demo,
            # nginx runs on 127.0.0.1: its X-Forwarded-For names the real client.
            extra_args=["--trusted-proxy", "127.0.0.1"],
        )
        self.nginx = NginxProcess(
            [s.port for s in self.servers], sticky=self.sticky, fail_timeout=self.fail_timeout
        )
        self.nginx.start()

    async def stop(self) -> None:
        """Stop everything and delete every temporary file. Safe to call twice."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        if self.nginx is not None:
            with contextlib.suppress(Exception):
                self.nginx.stop()
            self.nginx = None
        for server in self.servers:  # SIGTERM to all first: they shut down in parallel
            if server.alive and server.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    server.proc.terminate()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.close()
            self.redis = None
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()
            self.postgres = None
            self.db_url = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    async def __aenter__(self) -> Cluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults --------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """``kill -9`` server ``i`` (0-based: ``servers[i]``, named ``server-{i+1}``)."""
        self.servers[i].kill()

    async def restart_server(self, i: int) -> None:
        """Start server ``i`` again on its port (after ``kill``)."""
        server = self.servers[i]
        server.stop()
        await asyncio.to_thread(server.start)

    async def stop_redis(self) -> None:
        assert self.redis is not None, "cluster runs without Redis"
        await asyncio.to_thread(self.redis.stop)

    async def start_redis(self) -> None:
        assert self.redis is not None, "cluster runs without Redis"
        await asyncio.to_thread(self.redis.start)

    async def restart_redis(self) -> None:
        """Stop redis-server and start it again on the same port (empty: no persistence)."""
        await self.stop_redis()
        await self.start_redis()

    async def stop_database(self) -> None:
        """``pg_ctl stop`` (PostgreSQL clusters only)."""
        assert self.postgres is not None, "only a cluster with postgres=True can stop its database"
        await asyncio.to_thread(self.postgres.pause)

    async def start_database(self) -> None:
        assert self.postgres is not None, "only a cluster with postgres=True can stop its database"
        await asyncio.to_thread(self.postgres.resume)

    # -- observation -----------------------------------------------------------------

    async def stats(self) -> dict[str, dict[str, Any]]:
        """``/stats`` of every live server, by name."""

        def collect() -> dict[str, dict[str, Any]]:
            result: dict[str, dict[str, Any]] = {}
            for server in self.servers:
                if server.alive:
                    with contextlib.suppress(OSError):
                        result[server.name] = server.stats()
            return result

        return await asyncio.to_thread(collect)

    async def distribution(self) -> dict[str, str]:
        """Which server each connected (logged-in) user is on: ``{user: server name}``."""
        where: dict[str, str] = {}
        for name, stats in (await self.stats()).items():
            for user in stats.get("users", []):
                where[user] = name
        return dict(sorted(where.items()))

    async def health(self) -> dict[str, bool]:
        def collect() -> dict[str, bool]:
            result = {}
            for server in self.servers:
                try:
                    result[server.name] = bool(get_json(f"{server.url}/healthz", 1.0)["ok"])
                except (OSError, KeyError, ValueError):
                    result[server.name] = False
            return result

        return await asyncio.to_thread(collect)

    def describe(self) -> list[str]:
        """One line per part: what it is, where it listens, its pid."""
        lines = []
        if self.nginx is not None:
            mode = "sticky: hash $remote_addr" if self.sticky else "round-robin"
            lines.append(f"nginx     {self.nginx.url}  pid {self.nginx.pid}  ({mode})")
        for server in self.servers:
            lines.append(f"{server.name:<9} {server.url}  pid {server.pid}")
        if self.redis is not None:
            lines.append(f"redis     {self.redis.url}  pid {self.redis.pid}")
        if self.postgres is not None:
            lines.append(f"postgres  {self.db_url}")
        elif self.db_url:
            lines.append(f"store     {self.db_url}")
        return lines
