"""``redis-server`` on free loopback ports, in memory only (no RDB, no AOF): one server,
or a master with replicas watched by three Sentinels (seed diagram 6's "Redis cluster").

One server::

    redis = RedisProcess()
    redis.start()          # redis.url == "redis://127.0.0.1:PORT/0"
    redis.stop(); redis.start()   # a restart keeps the port, so servers reconnect to it
    redis.close()          # stop and delete the temporary directory

High availability::

    ha = RedisHA(replicas=2)         # a master, 2 replicas (replicaof), 3 Sentinels
    ha.start()
    ha.url                           # "redis+sentinel://127.0.0.1:S1,.../0/chat"
    ha.master_port()                 # asked of a Sentinel: who is master now
    ha.kill_master()                 # kill -9; the Sentinels promote a replica
    ha.close()

Servers reach the master through python-socketio's ``redis+sentinel://`` URL: redis-py
asks a Sentinel for the master's address on every (re)connection, so after a failover
the next connection goes to the promoted replica. Nothing else tells them.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tutorial.cluster.procs import free_port, kill_process, stop_process, tail, wait_until
from tutorial.components import find

#: The name the Sentinels monitor the master under (the service name in the URL).
SERVICE = "chat"
#: How long a master may be silent before a Sentinel calls it down, in ms.
DOWN_AFTER_MS = 1000
#: Sentinels needed to agree that the master is down.
QUORUM = 2


def ping(host: str, port: int) -> bool:
    """True if a Redis server answers ``PING`` with ``+PONG``."""
    with socket.create_connection((host, port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def command(port: int, *args: str, host: str = "127.0.0.1", timeout: float = 2.0) -> Any:
    """One command to the Redis (or Sentinel) on ``port``, through redis-py."""
    import redis

    client = redis.Redis(
        host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def info(port: int, section: str) -> dict[str, Any]:
    """``INFO section`` of the server on ``port`` as a dict."""
    import redis

    client = redis.Redis(port=port, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        return dict(client.info(section))
    finally:
        client.close()


class RedisProcess:
    """One ``redis-server``; ``replica_of=PORT`` starts it as a replica of that master."""

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        replica_of: int | None = None,
        name: str = "redis",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or 0
        self.binary = binary or str(find("redis-server") or "redis-server")
        self.replica_of = replica_of
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def logfile(self) -> Path:
        assert self.dir is not None
        return self.dir / f"{self.name}.log"

    def command(self) -> list[str]:
        assert self.dir is not None
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
            # A master waits 5 s (the default) for more replicas before it streams its
            # snapshot to them: none come here, so the replicas' first sync takes 5 s.
            "--repl-diskless-sync-delay",
            "0",
        ]
        if self.replica_of is not None:
            cmd += ["--replicaof", self.host, str(self.replica_of)]
        return cmd

    def start(self, timeout: float = 10.0) -> str:
        """Start (or start again, on the same port) and wait until it answers PING."""
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix=f"tutorial-{self.name}-"))
        if not self.port:
            self.port = free_port(self.host)
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{tail(self.logfile)}")
            return ping(self.host, self.port)

        try:
            wait_until(ready, timeout, self.name)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server; the directory (and port number) stay for a restart."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """``kill -9``: no goodbye, the kernel closes its sockets."""
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


SENTINEL_CONF = """\
# generated by tutorial.cluster.redis
port {port}
bind 127.0.0.1
daemonize no
dir {dir}
logfile {logfile}
sentinel resolve-hostnames no
sentinel monitor {service} 127.0.0.1 {master} {quorum}
sentinel down-after-milliseconds {service} {down_after}
sentinel failover-timeout {service} {failover_timeout}
sentinel parallel-syncs {service} 1
sentinel myid {myid}
{known}"""


class SentinelProcess(RedisProcess):
    """``redis-server sentinel.conf --sentinel``: watches the master, votes, promotes.

    A Sentinel rewrites its config file as it learns (other Sentinels, replicas, a new
    master), so the file lives in its own temporary directory.
    """

    def __init__(
        self,
        master_port: int,
        name: str = "sentinel",
        *,
        port: int | None = None,
        myid: str | None = None,
        replicas: Sequence[int] = (),
        peers: Sequence[tuple[int, str]] = (),
    ) -> None:
        super().__init__(port=port, name=name)
        self.master_port = master_port
        #: The Sentinel's run id (40 hex digits), fixed so the others can be told it.
        self.myid = myid or secrets.token_hex(20)
        # What a Sentinel would otherwise learn by itself, from the master's INFO (its
        # replicas) and from the others' hello messages every 2 s (the other Sentinels):
        # written in its config as it would write it, so the set-up is ready at once.
        self.replicas = list(replicas)
        self.peers = list(peers)

    @property
    def conf(self) -> Path:
        assert self.dir is not None
        return self.dir / "sentinel.conf"

    def command(self) -> list[str]:
        assert self.dir is not None
        if not self.conf.exists():  # a restart keeps what the Sentinel has learnt
            self.conf.write_text(
                SENTINEL_CONF.format(
                    port=self.port,
                    dir=self.dir,
                    logfile=self.logfile,
                    service=SERVICE,
                    master=self.master_port,
                    quorum=QUORUM,
                    down_after=DOWN_AFTER_MS,
                    failover_timeout=DOWN_AFTER_MS * 5,
                    myid=self.myid,
                    known="".join(
                        [f"sentinel known-replica {SERVICE} 127.0.0.1 {p}\n" for p in self.replicas]
                        + [
                            f"sentinel known-sentinel {SERVICE} 127.0.0.1 {p} {i}\n"
                            for p, i in self.peers
                        ]
                    ),
                )
            )
        return [self.binary, str(self.conf), "--sentinel"]

    def master(self) -> tuple[str, int] | None:
        """``SENTINEL get-master-addr-by-name``: where this Sentinel thinks the master is."""
        answer = command(self.port, "SENTINEL", "get-master-addr-by-name", SERVICE)
        if not answer:
            return None
        host, port = answer
        return (host.decode() if isinstance(host, bytes) else str(host), int(port))

    def state(self) -> dict[str, Any]:
        """``SENTINEL master chat`` as a dict (flags, num-slaves, num-other-sentinels,
        quorum, config-epoch, ...)."""
        raw = command(self.port, "SENTINEL", "master", SERVICE)
        pairs = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in pairs.items()
        }


class RedisHA:
    """A master, ``replicas`` replicas and three Sentinels, all on loopback."""

    def __init__(self, replicas: int = 2, sentinels: int = 3) -> None:
        if replicas < 1:
            raise ValueError("a Sentinel failover needs at least one replica")
        self.nodes: list[RedisProcess] = [RedisProcess(name="redis-1")]
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.sentinels: list[SentinelProcess] = []
        #: Set by [kill_master][tutorial.cluster.redis.RedisHA.kill_master]: when, and which node.
        self.killed: tuple[float, RedisProcess] | None = None

    @property
    def url(self) -> str:
        """python-socketio's Sentinel URL: every Sentinel, db 0, the service name."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/0/{SERVICE}"

    def start(self, timeout: float = 20.0) -> str:
        """Master, then replicas, then Sentinels; returns when every Sentinel knows
        the master, every replica and every other Sentinel (a failover needs them)."""
        try:
            master = self.nodes[0]
            master.start()
            for i in range(self.replica_count):
                node = RedisProcess(replica_of=master.port, name=f"redis-{i + 2}")
                self.nodes.append(node)
                node.start()
            ids = [(free_port(), secrets.token_hex(20)) for _ in range(self.sentinel_count)]
            replicas = [n.port for n in self.nodes[1:]]
            for i, (port, myid) in enumerate(ids):
                sentinel = SentinelProcess(
                    master.port,
                    name=f"sentinel-{i + 1}",
                    port=port,
                    myid=myid,
                    replicas=replicas,
                    peers=[peer for peer in ids if peer[1] != myid],
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            wait_until(self._settled, timeout, "Redis replicas and Sentinels", interval=0.1)
        except BaseException:
            self.close()
            raise
        return self.url

    def _settled(self) -> bool:
        master = self.master_port()
        for node in self.nodes:
            if node.port != master and node.alive:
                replication = info(node.port, "replication")
                if replication.get("master_link_status") != "up":
                    return False
        for sentinel in self.sentinels:
            state = sentinel.state()
            if int(state.get("num-other-sentinels", 0)) < self.sentinel_count - 1:
                return False
            if int(state.get("num-slaves", 0)) < len(self.nodes) - 1:
                return False
        return True

    def wait_settled(self, timeout: float = 20.0) -> None:
        """Until every live replica is in sync and every Sentinel knows the others."""
        wait_until(self._settled, timeout, "Redis replication", interval=0.1)

    def master_port(self) -> int:
        """The master's port, as the first Sentinel that answers says."""
        for sentinel in self.sentinels:
            with contextlib.suppress(OSError, Exception):
                where = sentinel.master()
                if where is not None:
                    return where[1]
        return self.nodes[0].port

    def node(self, port: int) -> RedisProcess:
        return next(n for n in self.nodes if n.port == port)

    def master(self) -> RedisProcess:
        return self.node(self.master_port())

    def kill_master(self) -> RedisProcess:
        """``kill -9`` the current master; returns it (restart it with
        [rejoin][tutorial.cluster.redis.RedisHA.rejoin])."""
        victim = self.master()
        self.killed = (time.monotonic(), victim)
        victim.kill()
        return victim

    def wait_failover(self, timeout: float = 30.0) -> int:
        """Until every Sentinel names a live master other than the killed one."""
        assert self.killed is not None, "no master was killed"
        dead = self.killed[1].port

        def promoted() -> bool:
            masters = [s.master() for s in self.sentinels if s.alive]
            ports = {m[1] for m in masters if m is not None}
            return len(ports) == 1 and dead not in ports and ping("127.0.0.1", ports.pop())

        wait_until(promoted, timeout, "Sentinel failover", interval=0.05)
        return self.master_port()

    def rejoin(self, node: RedisProcess) -> None:
        """Start a killed node again: it comes back empty, as a master, and the
        Sentinels turn it into a replica of the new master."""
        node.replica_of = self.master_port()
        node.start()

    def close(self) -> None:
        for sentinel in self.sentinels:
            with contextlib.suppress(Exception):
                sentinel.close()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    def __enter__(self) -> RedisHA:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
