"""Seed diagram 6, running: Internet → nginx (TLS, sticky sessions) → N chat servers →
Redis (a master, replicas, three Sentinels) → database (a primary and hot standbys).

    async with Cluster(servers=3, postgres=True) as cluster:   # or: await cluster.start()
        cluster.url                      # https://127.0.0.1:PORT, nginx's entry point
        cluster.ssl_context              # trusts this cluster's throwaway CA only
        cluster.client_options(i)        # ClientOptions: that CA, source address 127.0.0.(i+2)
        cluster.servers[0].url, .port    # each server, reachable directly (plain HTTP)
        cluster.kill(0)                  # kill -9 server-1
        cluster.kill_redis_master()      # kill -9 the Redis master: the Sentinels promote
        await cluster.stop_replica(0)    # a PostgreSQL standby goes away: reads fall back
        await cluster.promote_replica(0) # after stop_database(): the documented promotion
        await cluster.snapshot()         # every part with its live counts (the diagram)

Every part is a real process on 127.0.0.1 and a free port;
[Cluster.stop][tutorial.cluster.cluster.Cluster.stop] (also
on error, also when start fails half-way) leaves no process and no temporary file.

Defaults follow ``tutorial cluster up``: TLS at nginx, Redis with 2 replicas and 3
Sentinels, a SQLite file as the store (``postgres=True``: a PostgreSQL primary with
``pg_replicas`` streaming standbys). ``redis_replicas=0`` runs one plain redis-server.

On one machine every client comes from 127.0.0.1, and ``hash $remote_addr`` would
send them all to one server; clients that bind distinct source addresses
(``ClientOptions(local_addr="127.0.0.2")``, see
[client_address][tutorial.cluster.cluster.client_address]) are spread.

``taps=True`` puts a [Wiretap][tutorial.trace.wiretap.Wiretap] between nginx and each
server (in this process, recording into ``Cluster.trace``): behind the balancer
the bytes are plain HTTP and Engine.IO, whatever TLS did in front of it. The taps
name each client by the ``X-Real-IP`` nginx adds
([Cluster.name_client][tutorial.cluster.cluster.Cluster.name_client]).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tutorial.client.client import ClientOptions
from tutorial.cluster.nginx import NginxProcess
from tutorial.cluster.postgres import TempPostgres, TempStandby
from tutorial.cluster.procs import free_port
from tutorial.cluster.redis import RedisHA, RedisProcess
from tutorial.cluster.servers import ServerProcess, get_json, start_servers
from tutorial.cluster.tls import ThrowawayCA
from tutorial.cluster.watch import RedisWatch, database_state
from tutorial.protocol.http import HttpRequest
from tutorial.trace.model import Trace
from tutorial.trace.wiretap import Wiretap

#: Entry URL -> the CA context of a cluster running in this process (see trust_for).
_TRUST: dict[str, ssl.SSLContext] = {}


def trust_for(url: str) -> ssl.SSLContext | None:
    """The CA context of the cluster in this process whose entry point ``url`` starts
    with (None: not one of ours). Lets a notebook pass ``cluster.url`` around."""
    for entry, context in _TRUST.items():
        if url.startswith(entry):
            return context
    return None


def client_address(i: int) -> str:
    """A distinct loopback source address for client ``i``: 127.0.0.2, 127.0.0.3, ..."""
    n = i + 2
    return f"127.0.{n // 250}.{n % 250 + (1 if n // 250 else 0)}"


class Cluster:
    """nginx + ``servers`` chat servers + Redis + a shared store; see the module doc.

    ``db_url=None`` shares a SQLite file in the cluster's temporary directory;
    ``postgres=True`` starts a throwaway PostgreSQL primary
    ([TempPostgres][tutorial.cluster.postgres.TempPostgres]) with ``pg_replicas``
    standbys; ``redis=False`` runs the servers without the Redis manager (each server
    then only reaches its own clients); ``sticky=False`` makes nginx round-robin;
    ``tls=False`` serves plain HTTP; ``redis_replicas=0`` runs one plain redis-server.
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
        *,
        tls: bool = True,
        redis_replicas: int = 2,
        pg_replicas: int = 2,
        taps: bool = False,
    ) -> None:
        if redis_replicas < 0 or pg_replicas < 0:
            raise ValueError("replica counts cannot be negative")
        self.count = servers
        self.db_url = db_url
        self.given_db_url = db_url  # what stop() goes back to (None: the cluster's own)
        self.use_redis = redis
        self.sticky = sticky
        self.use_postgres = postgres
        self.fail_timeout = fail_timeout
        self.demo = demo
        self.use_tls = tls
        self.redis_replicas = redis_replicas if redis else 0
        self.pg_replicas = pg_replicas if postgres else 0
        self.use_taps = taps
        self.dir: Path | None = None
        self.ca: ThrowawayCA | None = None
        self.postgres: TempPostgres | None = None
        self.standbys: list[TempStandby] = []
        self.primary: TempPostgres | None = None  # the writable one (changes on promotion)
        self.redis: RedisProcess | None = None  # one plain redis-server (redis_replicas=0)
        self.redis_ha: RedisHA | None = None  # master + replicas + Sentinels
        self.redis_watch: RedisWatch | None = None
        self.nginx: NginxProcess | None = None
        self.servers: list[ServerProcess] = []
        #: What the taps between nginx and the servers recorded (``taps=True``).
        self.trace = Trace()
        self.taps: list[Wiretap] = []
        #: Source address -> client name, for the taps (see
        #: [name_client][tutorial.cluster.cluster.Cluster.name_client]).
        self.client_names: dict[str, str] = {}

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """nginx's entry point: ``https://`` (``http://`` with ``tls=False``)."""
        assert self.nginx is not None, "cluster not started"
        return self.nginx.url

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context that verifies nginx's certificate against this cluster's
        throwaway CA (None without TLS)."""
        return self.ca.client_context() if self.ca is not None else None

    def client_options(self, i: int | None = None, **overrides: Any) -> ClientOptions:
        """Options for a teaching client of this cluster: the CA to trust and, for
        ``i``, its own source address
        [client_address][tutorial.cluster.cluster.client_address] (so nginx spreads
        them)."""
        options = ClientOptions(
            local_addr=client_address(i) if i is not None else None,
            ssl_context=self.ssl_context,
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        return options

    @property
    def redis_url(self) -> str | None:
        """What the servers were given: ``redis+sentinel://...`` or ``redis://...``."""
        if self.redis_ha is not None:
            return self.redis_ha.url
        return self.redis.url if self.redis is not None else None

    @property
    def read_urls(self) -> list[str]:
        return [s.url for s in self.standbys]

    def write_url(self) -> str:
        """Every PostgreSQL host, and ``target_session_attrs=read-write``: the driver
        connects to whichever accepts writes, so a promoted standby is found without
        telling the servers anything."""
        assert self.postgres is not None
        hosts = ",".join(f"127.0.0.1:{pg.port}" for pg in [self.postgres, *self.standbys])
        return (
            f"postgresql://postgres@{hosts}/{self.postgres.dbname}?target_session_attrs=read-write"
        )

    def name_client(self, address: str, name: str) -> None:
        """The taps call the client that connects from ``address`` ``name``."""
        self.client_names[address] = name

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> Cluster:
        """Start every part; stopped again (all of it) if one fails. The PostgreSQL
        primary and Redis start side by side; then the standbys' base backups and the
        chat servers (whose history reads fall back to the primary until a standby
        answers), side by side; then the taps and nginx. Also after
        [stop][tutorial.cluster.cluster.Cluster.stop]: a new cluster, same settings."""
        try:
            await asyncio.to_thread(self._start_backends)
            self.redis_watch = RedisWatch(self)
            await self.redis_watch.start()
            await asyncio.to_thread(self._start_standbys_and_servers)
            if self.use_taps:
                await self._start_taps()
            await asyncio.to_thread(self._start_nginx)
            if self.ca is not None:
                _TRUST[self.url] = self.ca.client_context()
        except BaseException:
            await self.stop()
            raise
        return self

    def _start_backends(self) -> None:
        """The database and Redis, side by side (each takes a few seconds)."""
        self.dir = Path(tempfile.mkdtemp(prefix="tutorial-cluster-"))
        if self.use_tls:
            self.ca = ThrowawayCA()
        with ThreadPoolExecutor(2) as pool:
            database = pool.submit(self._start_database)
            redis = pool.submit(self._start_redis)
            # Both finish (and keep what they started, for stop) before either raises.
            errors = [f.exception() for f in (database, redis)]
        for error in errors:
            if error is not None:
                raise error

    def _start_database(self) -> None:
        if self.db_url is not None:
            return
        if not self.use_postgres:
            self.db_url = f"sqlite:///{self.dir}/chat.db"
            return
        self.postgres = TempPostgres()
        self.postgres.start()
        self.primary = self.postgres
        self.standbys = [
            TempStandby(self.postgres, name=f"replica-{i}") for i in range(1, self.pg_replicas + 1)
        ]
        for standby in self.standbys:  # known now, so the servers can be told them
            standby.port = free_port()
        self.db_url = self.write_url() if self.standbys else self.postgres.url

    def _start_standbys_and_servers(self) -> None:
        """The standbys (base backups side by side) and the servers, side by side; all
        finish (and keep what they started, for stop) before one raises."""
        with ThreadPoolExecutor(1 + max(1, len(self.standbys))) as pool:
            futures: list[Future[Any]] = [pool.submit(s.start) for s in self.standbys]
            futures.append(pool.submit(self._start_servers))
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def _start_redis(self) -> None:
        if not self.use_redis:
            return
        if self.redis_replicas:
            self.redis_ha = RedisHA(replicas=self.redis_replicas)
            self.redis_ha.start()
        else:
            self.redis = RedisProcess()
            self.redis.start()

    def _start_servers(self) -> None:
        assert self.db_url is not None
        self.servers = start_servers(
            self.count,
            self.db_url,
            self.redis_url,
            log_dir=self.dir,
            demo=self.demo,
            read_urls=self.read_urls,
            # nginx runs on 127.0.0.1: its X-Forwarded-For names the real client.
            extra_args=["--trusted-proxy", "127.0.0.1"],
        )

    async def _start_taps(self) -> None:
        for server in self.servers:
            tap = Wiretap(
                self.trace,
                (server.host, server.port),
                server_lifeline=server.name,
                server_label=f"Server {server.name.split('-')[-1]}",
                name_request=self._name_of,
            )
            await tap.start()
            self.taps.append(tap)

    def _name_of(self, request: HttpRequest) -> str | None:
        address = request.header("X-Real-IP")
        return self.client_names.get(address or "")

    def _start_nginx(self) -> None:
        ports = [t.port for t in self.taps] if self.taps else [s.port for s in self.servers]
        self.nginx = NginxProcess(
            ports, sticky=self.sticky, fail_timeout=self.fail_timeout, ca=self.ca
        )
        self.nginx.start()

    async def stop(self) -> None:
        """Stop everything and delete every temporary file. Safe to call twice."""
        if self.nginx is not None:
            _TRUST.pop(self.nginx.url, None)
            await asyncio.to_thread(self.nginx.stop)
            self.nginx = None
        for tap in self.taps:
            await tap.stop()
        self.taps = []
        if self.redis_watch is not None:
            await self.redis_watch.stop()
            self.redis_watch = None
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        for server in self.servers:  # SIGTERM to all first: they shut down in parallel
            if server.alive and server.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    server.proc.terminate()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        # Redis and every database server stop side by side (each waits for its process).
        stops = [n.close for n in (self.redis, self.redis_ha) if n is not None]
        stops += [n.stop for n in (*self.standbys, self.postgres) if n is not None]
        with ThreadPoolExecutor(max(1, len(stops))) as pool:
            for done in [pool.submit(stop) for stop in stops]:
                with contextlib.suppress(Exception):
                    done.result()
        self.redis = None
        self.redis_ha = None
        self.standbys = []
        self.postgres = None
        self.primary = None
        self.db_url = self.given_db_url  # a SQLite file of its own went with the directory
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.ca = None

    async def __aenter__(self) -> Cluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults: servers ---------------------------------------------------------------

    def kill(self, i: int) -> None:
        """``kill -9`` server ``i`` (0-based: ``servers[i]``, named ``server-{i+1}``)."""
        self.servers[i].kill()

    async def restart_server(self, i: int) -> None:
        """Start server ``i`` again on its port (after ``kill``)."""
        server = self.servers[i]
        server.stop()
        await asyncio.to_thread(server.start)

    # -- faults: Redis -----------------------------------------------------------------

    def _single_redis(self) -> RedisProcess:
        assert self.redis is not None, (
            "only a cluster with one plain redis-server (redis_replicas=0)"
        )
        return self.redis

    async def stop_redis(self) -> None:
        await asyncio.to_thread(self._single_redis().stop)

    async def start_redis(self) -> None:
        await asyncio.to_thread(self._single_redis().start)

    async def restart_redis(self) -> None:
        """Stop redis-server and start it again on the same port (empty: no persistence)."""
        await self.stop_redis()
        await self.start_redis()

    def _ha(self) -> RedisHA:
        assert self.redis_ha is not None, "only a cluster with Redis replicas has Sentinels"
        return self.redis_ha

    def kill_redis_master(self) -> RedisProcess:
        """``kill -9`` the Redis master; the Sentinels will promote a replica."""
        return self._ha().kill_master()

    async def wait_redis_failover(self, timeout: float = 30.0) -> int:
        """Until every Sentinel names the promoted replica; returns its port."""
        return await asyncio.to_thread(self._ha().wait_failover, timeout)

    async def rejoin_redis(self, node: RedisProcess) -> None:
        """Start a killed Redis node again, as a replica of the new master."""
        ha = self._ha()
        await asyncio.to_thread(ha.rejoin, node)
        await asyncio.to_thread(ha.wait_settled)

    # -- faults: PostgreSQL ----------------------------------------------------------

    def _pg(self) -> TempPostgres:
        assert self.primary is not None, "only a cluster with postgres=True has PostgreSQL"
        return self.primary

    async def stop_database(self) -> None:
        """``pg_ctl stop`` the primary: writes fail (``store_unavailable``)."""
        await asyncio.to_thread(self._pg().pause)

    async def start_database(self) -> None:
        await asyncio.to_thread(self._pg().resume)

    def _standby(self, i: int) -> TempStandby:
        assert self.standbys, "only a cluster with pg_replicas has standbys"
        return self.standbys[i]

    async def stop_replica(self, i: int) -> None:
        """``pg_ctl stop`` standby ``i``: history reads fall back to the others."""
        await asyncio.to_thread(self._standby(i).pause)

    async def start_replica(self, i: int) -> None:
        await asyncio.to_thread(self._standby(i).resume)

    async def pause_replay(self, i: int) -> None:
        """Standby ``i`` stops applying WAL: replication lag, on purpose."""
        await asyncio.to_thread(self._standby(i).pause_replay)

    async def resume_replay(self, i: int) -> None:
        await asyncio.to_thread(self._standby(i).resume_replay)

    def promotion_command(self, i: int = 0) -> str:
        """The shell command that promotes standby ``i`` (what
        [promote_replica][tutorial.cluster.cluster.Cluster.promote_replica] runs)."""
        standby = self._standby(i)
        assert standby.root is not None
        as_postgres = "runuser -u postgres -- " if standby.as_root else ""
        return f"{as_postgres}{standby.bin / 'pg_ctl'} -D {standby.data} -w promote"

    async def promote_replica(self, i: int = 0) -> TempStandby:
        """The documented step after losing the primary: promote standby ``i``; the
        other standbys follow it. The servers find it by themselves
        ([write_url][tutorial.cluster.cluster.Cluster.write_url])."""
        standby = self._standby(i)
        await asyncio.to_thread(standby.promote)
        self.primary = standby
        for other in self.standbys:
            if other is not standby and other.running:
                await asyncio.to_thread(other.follow, standby)
        return standby

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

    async def snapshot(self) -> dict[str, Any]:
        """Every part with what it counts right now: what the architecture diagram draws.

        ``{"balancer": {...}, "servers": [...], "redis": {...}, "database": {...}}``;
        [topology][tutorial.scenarios.clusterviews.topology] turns it into a picture.
        """
        stats = await self.stats()
        balancer: dict[str, Any] = {}
        if self.nginx is not None:
            status = await asyncio.to_thread(self.nginx.status)
            balancer = {
                "tls": self.use_tls,
                "sticky": self.sticky,
                "port": self.nginx.port,
                "active": status["active"],
                "requests": status["requests"],
            }
        servers = [
            {
                "name": s.name,
                "port": s.port,
                "alive": s.alive,
                "connections": stats.get(s.name, {}).get("connections", 0),
                "users": stats.get(s.name, {}).get("users", []),
                "reads": stats.get(s.name, {}).get("store", {}),
            }
            for s in self.servers
        ]
        redis = await asyncio.to_thread(self.redis_watch.state) if self.redis_watch else {}
        database = await database_state(self)
        return {"balancer": balancer, "servers": servers, "redis": redis, "database": database}

    def describe(self) -> list[str]:
        """One line per part: what it is, where it listens, its pid."""
        lines = []
        if self.nginx is not None:
            mode = "sticky: hash $remote_addr" if self.sticky else "round-robin"
            tls = "TLS by a throwaway CA, " if self.use_tls else ""
            lines.append(f"nginx     {self.nginx.url}  pid {self.nginx.pid}  ({tls}{mode})")
        for server in self.servers:
            lines.append(f"{server.name:<9} {server.url}  pid {server.pid}")
        if self.redis is not None:
            lines.append(f"redis     {self.redis.url}  pid {self.redis.pid}")
        if self.redis_ha is not None:
            master = self.redis_ha.master_port()
            for node in self.redis_ha.nodes:
                role = "master" if node.port == master else "replica"
                lines.append(f"{node.name:<9} {node.url}  pid {node.pid}  ({role})")
            for sentinel in self.redis_ha.sentinels:
                lines.append(f"{sentinel.name:<9} 127.0.0.1:{sentinel.port}  pid {sentinel.pid}")
            lines.append(f"servers use {self.redis_ha.url}")
        if self.postgres is not None:
            lines.append(f"postgres  {self.postgres.url}  (primary: writes)")
            for standby in self.standbys:
                lines.append(f"{standby.name:<9} {standby.url}  (hot standby: history reads)")
        elif self.db_url:
            lines.append(f"store     {self.db_url}")
        return lines
