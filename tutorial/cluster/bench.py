"""``tutorial bench``: how many chat messages per second reach their readers, and how late.

C clients sit in one room; S of them each send M messages, one after the other, each
waiting for its ack. Every message is delivered to all C clients (the sender too), so a
run makes ``S * M * C`` deliveries. Measured: deliveries per second (from "go" to the
last delivery) and the fan-out latency of each delivery (send to receipt; both ends on
one machine's monotonic clock) as p50/p95/p99. Each target runs ``--repeat`` times
(default 3); the run with the median throughput is the one reported. Before the timed
run, once every client is in the room, each sender sends ``--warmup`` acked messages
(5) that every client receives and nobody times or counts: the first messages of a run
pay for JIT compilation in Node and first-use paths in the servers.

Side by side, same load:

1. **Node socket.io 4**: the fastest real alternative, a bare broadcast server
   (``tutorial/cluster/js/bench_server.mjs``, npm ``socket.io`` pinned in
   ``package-lock.json``), with socket.io's defaults;
2. **baseline**: a bare python-socketio broadcast server
   ([tutorial.cluster.baseline][tutorial.cluster.baseline]);
3. **teaching server**, one process, tracing off (auth, validation, per-room seq,
   SQLite group commit, broadcasts in seq order through the fan-out fast path,
   [tutorial.chat.fanout][tutorial.chat.fanout]);
4. the same with the fast path off (**library fan-out**: python-socketio's own emit),
   so one run shows before and after;
5. the teaching server with **tracing on** (server spans recorded into a Trace);
6. the teaching server **behind nginx (terminating TLS: the load generators trust the
   run's throwaway CA), with Redis**, 1 server;
7. the same with **N servers** (clients spread by source address, sticky hash);
8. **history reads per second** from PostgreSQL with 0 and with 2 streaming standbys
   ([tutorial.cluster.readbench][]; ``--reads`` runs only this part).

The load generators are the official JavaScript client (``socket.io-client`` under
Node, ``tutorial/cluster/js/bench_worker.mjs``; the default) or python-socketio's
``AsyncClient`` (``--generator python``; ``both`` runs each target under each).
Servers and load generators are separate processes (``--workers`` generator processes
per run), and talk through the interface written down in [tutorial.cluster.benchwire][].
The teaching servers run with the rate limit lifted (it would cap every sender at 10
messages/s). Repetitions are interleaved (target 1, 2, ... then again), so every target
sees the same machine; each row states its throughput as a ratio to Node and to bare
python-socketio under the same generator. Results: a table, ``bench.json`` (with the
machine: cores, CPU model, load average before and after) and a chart ``bench.png``
(default in ``docs/assets/``). This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tutorial.cluster import benchwire
from tutorial.cluster.benchwire import ClientSpec, WorkerConfig
from tutorial.cluster.nginx import NginxProcess
from tutorial.cluster.procs import free_port, stop_signal
from tutorial.cluster.redis import RedisProcess
from tutorial.cluster.servers import ServerProcess
from tutorial.protocol.catalog import Event

ROOM = "general"
JS_DIR = Path(__file__).parent / "js"
NODE_SERVER = JS_DIR / "bench_server.mjs"
NODE_WORKER = JS_DIR / "bench_worker.mjs"
NODE_IDLE = JS_DIR / "idle_clients.mjs"
IDLE_PER_USER = 10  # idle connections per idle user (the server's default cap per user)
NODE_TARGET = "Node socket.io 4"
BASELINE_TARGET = "bare python-socketio"
WARMUP_MESSAGES = 5  # per sender, before the timed run: first-use paths and JIT warmed
GENERATORS = ("js", "python")
GC_POLICIES = ("default", "long-lived")  # Python's collector as is; chat/gcpolicy.py


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "node" | "baseline" | "teaching"
    servers: int = 1
    nginx: bool = False
    redis: bool = False
    trace: bool = False  # server-side spans recorded into a Trace
    # teaching server: "fast" (tutorial.chat.fanout), "per-turn" (the fast path writing
    # at the end of each turn, no cork across turns) or "library" (python-socketio's)
    fanout: str = "fast"


def targets(servers: int) -> list[Target]:
    return [
        Target(NODE_TARGET, "node"),
        Target(BASELINE_TARGET, "baseline"),
        Target("teaching server, tracing off", "teaching"),
        Target("teaching server, a write per turn", "teaching", fanout="per-turn"),
        Target("teaching server, library fan-out", "teaching", fanout="library"),
        Target("teaching server, tracing on", "teaching", trace=True),
        Target("1 server + nginx (TLS) + Redis", "teaching", 1, nginx=True, redis=True),
        Target(
            f"{servers} servers + nginx (TLS) + Redis", "teaching", servers, nginx=True, redis=True
        ),
    ]


def node_modules_missing() -> str | None:
    """Why the Node target or the JS generator cannot run (None: they can)."""
    if shutil.which("node") is None:
        return "node is not installed (run make setup)"
    root = Path(__file__).resolve()
    for directory in root.parents:
        modules = directory / "node_modules"
        if (modules / "socket.io").is_dir() and (modules / "socket.io-client").is_dir():
            return None
    return "node_modules/socket.io and socket.io-client are missing (run make setup)"


@dataclass
class Result:
    name: str
    servers: int
    clients: int
    senders: int
    messages: int
    deliveries: int
    expected: int
    duration_s: float
    deliveries_per_s: float
    messages_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    runs: list[int] = field(default_factory=list)  # deliveries/s of every repetition
    generator: str = "python"  # the load generator: "js" (socket.io-client) or "python"
    server_cpu_us: float | None = None  # server processes' CPU time per delivery, µs
    idle_clients: int = 0  # idle WebSocket clients held by the server during the run
    rss_mib: float | None = None  # the server's resident memory before the idle clients
    rss_idle_mib: float | None = None  # ... and with them connected
    rss_per_idle_kib: float | None = None  # (rss_idle - rss) per idle connection
    vs_node: float | None = None  # deliveries/s over Node's, same generator, same run
    vs_baseline: float | None = None  # over bare python-socketio's
    # The teaching servers' event-loop lag and GC pauses while the run sent
    # (tutorial.cluster.loopwatch); None for Node and the baseline.
    pauses: dict[str, Any] | None = None


# -- processes ------------------------------------------------------------------------


class BenchServer(ServerProcess):
    """A Node or baseline server, or a teaching server with the rate limit lifted."""

    def __init__(
        self, kind: str, *args: Any, trace: bool = False, fanout: str = "fast", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.trace = trace
        self.fanout = fanout
        self.profile: str | None = None  # a cProfile stats file (teaching servers)
        self.pauses: str | None = None  # where it writes its loop-lag and GC summary
        self.gc = "long-lived"  # the collector's policy (tutorial/chat/gcpolicy.py)

    def command(self) -> list[str]:
        if self.kind == "node":
            node = shutil.which("node") or "node"
            return [node, str(NODE_SERVER), "--port", str(self.port), "--name", self.name]
        if self.kind == "baseline":
            cmd = [sys.executable, "-m", "tutorial.cluster.baseline", "--port", str(self.port)]
            cmd += ["--name", self.name]
        else:
            cmd = [
                sys.executable,
                "-m",
                "tutorial.cluster.bench",
                "serve",
                "--port",
                str(self.port),
            ]
            cmd += ["--name", self.name, "--db", self.db_url]
            if self.trace:
                cmd += ["--trace"]
            for url in self.read_urls:
                cmd += ["--read-db", url]
            cmd += ["--fanout", self.fanout]
            if self.profile:
                cmd += ["--profile", self.profile]
            if self.pauses:
                cmd += ["--pauses", self.pauses]
            cmd += ["--gc", self.gc]
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        return cmd


def raise_open_files_limit() -> None:
    """Soft limit on open files up to the hard one (``ulimit -Hn``), as ``tutorial serve``
    does: 10,000 idle clients need 10,000 descriptors in the server."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(args: argparse.Namespace) -> None:
    """The teaching server as ``tutorial serve`` runs it, minus the rate limit."""
    from tutorial.chat.fanout import MAX_CORK_SECONDS
    from tutorial.chat.server import ChatServer, ServerConfig

    raise_open_files_limit()
    config = ServerConfig(
        host="127.0.0.1",
        port=args.port,
        db_url=args.db,
        db_read_urls=list(args.read_db or []),
        redis_url=args.redis,
        name=args.name,
        rate_capacity=1e9,
        rate_per_second=1e9,
        fast_fanout=args.fanout != "library",
        fanout_max_cork=0.0 if args.fanout == "per-turn" else MAX_CORK_SECONDS,
    )
    span = None
    if args.trace:
        from tutorial.trace.model import Trace
        from tutorial.trace.spans import ServerSpans

        span = ServerSpans(Trace())
    server = ChatServer(config, span=span)
    await server.start()
    gc_policy = None
    if args.gc == "long-lived":  # as tutorial serve does (tutorial/chat/gcpolicy.py)
        from tutorial.chat.gcpolicy import LongLivedGc

        gc_policy = LongLivedGc()
        gc_policy.install()
    if args.pauses:
        watch_pauses(args.pauses, server.fanout)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    await stop_signal().wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    if gc_policy is not None:
        gc_policy.uninstall()
    await server.stop()


def watch_pauses(path: str, fanout: Any = None) -> None:
    """SIGUSR1 starts a window of [LoopWatch][tutorial.cluster.loopwatch.LoopWatch];
    SIGUSR2 ends it and writes its summary (JSON) to ``path``, atomically, with the
    fast path's frames and transport writes in the window (``fanout``: the server's
    [Fanout][tutorial.chat.fanout.Fanout], if it has one)."""
    from tutorial.cluster.loopwatch import LoopWatch

    watch = LoopWatch()
    loop = asyncio.get_running_loop()
    at_start = (0, 0)

    def counts() -> tuple[int, int]:
        return (fanout.counters.written, fanout.counters.writes) if fanout else (0, 0)

    def start() -> None:
        nonlocal at_start
        at_start = counts()
        watch.start()

    def dump() -> None:
        summary = watch.stop()
        written, writes = counts()
        summary["fanout_frames_count"] = written - at_start[0]
        summary["fanout_writes_count"] = writes - at_start[1]
        part = Path(path + ".part")
        part.write_text(json.dumps(summary))
        part.replace(path)

    loop.add_signal_handler(signal.SIGUSR1, start)
    loop.add_signal_handler(signal.SIGUSR2, dump)


async def read_pauses(servers: list[BenchServer]) -> dict[str, Any] | None:
    """End every teaching server's pause window (SIGUSR2) and read what it saw: the
    largest lag and GC figures over the servers, GC counts and totals added up."""
    watched = [(s.pid, Path(s.pauses)) for s in servers if s.pauses and s.pid]
    for pid, _ in watched:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR2)
    merged: dict[str, Any] = {}
    for _, path in watched:
        for _ in range(100):  # the server writes it from its loop, at once unless stuck
            if path.exists():
                break
            await asyncio.sleep(0.05)
        else:
            continue
        for key, value in json.loads(path.read_text()).items():
            if key.endswith(("_count", "total_ms", "samples", "collected", "tracked", "frozen")):
                merged[key] = round(merged.get(key, 0) + value, 2)
            else:
                merged[key] = max(merged.get(key, 0), value)
    return merged or None


async def prepare_store(db_url: str, users: list[str]) -> dict[str, str]:
    """Create the room and the users; return a login token per user (no password checks:
    scrypt would make connecting 100 clients the slowest part of the benchmark)."""
    from tutorial.chat.auth import TokenSigner
    from tutorial.chat.store import UserRecord, new_secret, open_store

    store = open_store(db_url)
    await store.open()
    try:
        for user in users:
            await store.add_user(UserRecord(user, "00", "no-password-login-by-token"))
        await store.add_room(ROOM, private=False, members=[])
        signer = TokenSigner(await store.setting("token_secret", new_secret()), 3600)
    finally:
        await store.close()
    return {user: signer.issue(user) for user in users}


# -- the load generator (one process of several) ----------------------------------------


async def _worker(config: WorkerConfig) -> None:
    import aiohttp
    import socketio

    kind = config.kind
    expected = config.expected_per_client
    warmed = asyncio.Event()
    cold = len(config.clients) if config.warmup_per_client else 0
    if not cold:
        warmed.set()
    latencies: list[float] = []
    count = 0
    errors = 0
    last = 0.0
    done = asyncio.Event()
    remaining = len(config.clients)
    clients: list[tuple[Any, Any, ClientSpec]] = []

    trust = None
    if config.ca:  # nginx terminates TLS with this run's throwaway CA
        import ssl

        trust = ssl.create_default_context(cafile=config.ca)
    for spec in config.clients:
        http = None
        if spec.addr or trust is not None:
            local = (spec.addr, 0) if spec.addr else None
            connector = aiohttp.TCPConnector(local_addr=local, limit=0, ssl=trust or True)
            http = aiohttp.ClientSession(connector=connector)
        sio = socketio.AsyncClient(reconnection=False, **({"http_session": http} if http else {}))
        got = {"n": 0, "warmup": 0}

        def on_message(data: dict[str, Any], got: dict[str, int] = got) -> None:
            nonlocal count, last, remaining, cold
            if data["text"].startswith("warmup "):
                got["warmup"] += 1
                if got["warmup"] == config.warmup_per_client:
                    cold -= 1
                    if cold == 0:
                        warmed.set()
                return
            now = time.monotonic()
            latencies.append((now - float(data["text"].split(" ", 1)[0])) * 1000)
            count += 1
            last = now
            got["n"] += 1
            if got["n"] == expected:
                remaining -= 1
                if remaining == 0:
                    done.set()

        sio.on(Event.NEW_MESSAGE if kind == "teaching" else "msg", on_message)
        auth = {"token": spec.token} if kind == "teaching" else None
        await sio.connect(config.url, transports=["websocket"], auth=auth, wait_timeout=10)
        if kind == "teaching":
            ack = await sio.call(Event.JOIN_ROOM, {"roomId": ROOM}, timeout=10)
        else:
            ack = await sio.call("join", ROOM, timeout=10)
        assert ack and ack.get("ok"), ack
        clients.append((sio, http, spec))

    send_event = Event.SEND_MESSAGE if kind == "teaching" else "send"

    async def warm_up(sio: Any, spec: ClientSpec) -> None:
        for k in range(config.warmup):
            payload = {
                "roomId": ROOM,
                "text": f"warmup {spec.user} {k}",
                "clientMsgId": f"{spec.user}-w{k}",
            }
            await sio.call(send_event, payload, timeout=30)

    _say(benchwire.Ready())
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if isinstance(benchwire.decode(line), benchwire.WarmUp):
        await asyncio.gather(*(warm_up(s, spec) for s, _, spec in clients if spec.sender))
        await asyncio.wait_for(warmed.wait(), config.timeout)
        _say(benchwire.Warm())
        line = await loop.run_in_executor(None, sys.stdin.readline)
    assert isinstance(benchwire.decode(line), benchwire.Go), line

    async def sender(sio: Any, spec: ClientSpec) -> None:
        nonlocal errors
        for k in range(config.messages):
            text = f"{time.monotonic():.6f} {spec.user} {k}"
            payload = {"roomId": ROOM, "text": text, "clientMsgId": f"{spec.user}-{k}"}
            try:
                ack = await sio.call(send_event, payload, timeout=30)
                if not (isinstance(ack, dict) and ack.get("ok")):
                    errors += 1
            except Exception:
                errors += 1

    async def progress() -> None:
        while True:
            _say(benchwire.Progress(count))
            await asyncio.sleep(0.25)

    ticker = asyncio.create_task(progress())
    tasks = [asyncio.create_task(sender(s, spec)) for s, _, spec in clients if spec.sender]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), config.timeout)
    await asyncio.gather(*tasks, return_exceptions=True)
    ticker.cancel()
    _say(benchwire.Result(count, last, errors, latencies))
    for sio, http, _ in clients:
        with contextlib.suppress(Exception):
            await sio.disconnect()
        if http is not None:
            await http.close()


def _say(message: benchwire.Message) -> None:
    sys.stdout.buffer.write(benchwire.encode(message))
    sys.stdout.flush()


def _run_worker(path: str) -> None:
    config = WorkerConfig.from_json(Path(path).read_text())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_worker(config))


# -- one target -------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (``/proc/PID/stat``; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mib(pid: int | None) -> float:
    """Resident memory of a process (``VmRSS`` in ``/proc/PID/status``), MiB; 0 elsewhere."""
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def hold_idle_clients(url: str, tokens: list[str], tmp: Path) -> asyncio.subprocess.Process:
    """Start the idle clients (one Node process of ``socket.io-client``s) and wait until
    every one is connected and logged in."""
    path = tmp / "idle.json"
    path.write_text(json.dumps({"url": url, "tokens": tokens, "batch": 100}))
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(NODE_IDLE),
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready: Any = None
    line = await asyncio.wait_for(proc.stdout.readline(), 60 + len(tokens) / 20)
    with contextlib.suppress(ValueError):
        ready = json.loads(line)
    if not (isinstance(ready, dict) and ready.get("connected") == len(tokens)):
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the idle clients did not all connect: {line!r}")
    return proc


def worker_command(generator: str, config_path: Path) -> list[str]:
    """The command line of one load generator process."""
    if generator == "js":
        return [shutil.which("node") or "node", str(NODE_WORKER), str(config_path)]
    return [sys.executable, "-m", "tutorial.cluster.bench", "worker", str(config_path)]


async def run_target(
    target: Target,
    args: argparse.Namespace,
    generator: str = "js",
    idle: int = 0,
    gc: str | None = None,
) -> Result:
    from tqdm import tqdm

    from tutorial.cluster.cluster import client_address

    tmp = Path(tempfile.mkdtemp(prefix="tutorial-bench-"))
    redis: RedisProcess | None = None
    nginx: NginxProcess | None = None
    servers: list[BenchServer] = []
    workers: list[asyncio.subprocess.Process] = []
    idle_proc: asyncio.subprocess.Process | None = None
    rss = rss_idle = None
    try:
        users = [f"bench{i:03d}" for i in range(args.clients)]
        idle_users = [f"idle{i:05d}" for i in range(-(-idle // IDLE_PER_USER))]
        db_url = f"sqlite:///{tmp}/chat.db"
        tokens = (
            await prepare_store(db_url, users + idle_users) if target.kind == "teaching" else {}
        )
        if target.redis:
            redis = RedisProcess()
            await asyncio.to_thread(redis.start)
        for i in range(target.servers):
            server = BenchServer(
                target.kind,
                f"{target.kind}-{i + 1}",
                db_url,
                redis.url if redis else None,
                port=free_port(),
                demo=False,
                log_dir=tmp,
                trace=target.trace,
                fanout=target.fanout,
            )
            if args.profile and target.kind == "teaching":
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                slug = "".join(c if c.isalnum() else "-" for c in target.name)
                server.profile = str(Path(args.profile).resolve() / f"{slug}-{i + 1}.prof")
            if target.kind == "teaching":
                server.pauses = str(tmp / f"pauses-{i + 1}.json")
                server.gc = gc or args.gc
            servers.append(server)
            server.spawn()
        for server in servers:
            await asyncio.to_thread(server.wait_ready, 30)
        url = servers[0].url
        ca_file = None
        if idle:
            rss = process_rss_mib(servers[0].pid)
            idle_tokens = [tokens[idle_users[i // IDLE_PER_USER]] for i in range(idle)]
            idle_proc = await hold_idle_clients(url, idle_tokens, tmp)
            rss_idle = process_rss_mib(servers[0].pid)
        if target.nginx:
            from tutorial.cluster.tls import ThrowawayCA

            ca = ThrowawayCA()
            ca_file = tmp / "ca.pem"
            ca_file.write_bytes(ca.ca_pem)
            nginx = NginxProcess([s.port for s in servers], sticky=True, ca=ca)
            await asyncio.to_thread(nginx.start)
            url = nginx.url

        per_client = args.senders * args.messages
        total = per_client * args.clients
        specs = [
            ClientSpec(
                user=user,
                token=tokens.get(user),
                addr=client_address(i) if target.nginx else None,
                sender=i < args.senders,
            )
            for i, user in enumerate(users)
        ]
        for w in range(args.workers):
            config = WorkerConfig(
                kind=target.kind,
                url=url,
                clients=specs[w :: args.workers],
                messages=args.messages,
                expected_per_client=per_client,
                timeout=args.timeout,
                ca=str(ca_file) if ca_file else None,
                warmup=args.warmup,
                warmup_per_client=args.senders * args.warmup,
            )
            path = tmp / f"worker-{w}.json"
            path.write_text(config.to_json())
            workers.append(
                await asyncio.create_subprocess_exec(
                    *worker_command(generator, path),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=1 << 26,
                )
            )
        for proc in workers:
            assert proc.stdout is not None
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 120)
                if not line:
                    raise RuntimeError(f"a load generator died while connecting ({target.name})")
                if isinstance(benchwire.decode(line), benchwire.Ready):
                    break
        if args.warmup:
            # Every client is in the room: each sender's warm-up reaches every client.
            for proc in workers:
                assert proc.stdin is not None
                proc.stdin.write(benchwire.encode(benchwire.WarmUp()))
                await proc.stdin.drain()
            for proc in workers:
                assert proc.stdout is not None
                while True:
                    line = await asyncio.wait_for(proc.stdout.readline(), args.timeout + 60)
                    if not line:
                        raise RuntimeError(f"a load generator died warming up ({target.name})")
                    if isinstance(benchwire.decode(line), benchwire.Warm):
                        break

        for server in servers:
            if server.pauses and server.pid:
                os.kill(server.pid, signal.SIGUSR1)  # the pause window opens
        cpu_before = sum(process_cpu_seconds(s.pid) for s in servers)
        started = time.monotonic()
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(benchwire.encode(benchwire.Go()))
            await proc.stdin.drain()
        counts = [0] * len(workers)
        results: list[benchwire.Result] = [benchwire.Result(0, 0.0, 0) for _ in workers]
        label = f"{target.name} [{generator}]"
        bar = tqdm(total=total, desc=f"{label:<40}", unit="msg", file=sys.stderr)

        async def read(w: int, proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None
            while True:
                line = await proc.stdout.readline()
                if not line:
                    return
                message = benchwire.decode(line)
                if isinstance(message, benchwire.Progress):
                    counts[w] = message.deliveries
                elif isinstance(message, benchwire.Result):
                    results[w] = message
                    counts[w] = message.deliveries
                else:
                    continue
                bar.n = sum(counts)
                bar.refresh()

        await asyncio.wait_for(
            asyncio.gather(*(read(w, p) for w, p in enumerate(workers))), args.timeout + 60
        )
        bar.close()
        cpu = sum(process_cpu_seconds(s.pid) for s in servers) - cpu_before
        pauses = await read_pauses(servers)
        latencies = [x for r in results for x in r.latencies]
        deliveries = sum(r.deliveries for r in results)
        finished = max((r.last for r in results), default=started)
        duration = max(finished - started, 1e-9)
        return Result(
            name=target.name,
            servers=target.servers,
            clients=args.clients,
            senders=args.senders,
            messages=args.messages,
            deliveries=deliveries,
            expected=total,
            duration_s=round(duration, 3),
            deliveries_per_s=round(deliveries / duration, 1),
            messages_per_s=round(deliveries / args.clients / duration, 1),
            p50_ms=round(_pct(latencies, 0.50), 2),
            p95_ms=round(_pct(latencies, 0.95), 2),
            p99_ms=round(_pct(latencies, 0.99), 2),
            errors=sum(r.errors for r in results) + (total - deliveries),
            generator=generator,
            server_cpu_us=round(cpu / deliveries * 1e6, 2) if deliveries else None,
            idle_clients=idle,
            rss_mib=round(rss, 1) if rss else None,
            rss_idle_mib=round(rss_idle, 1) if rss_idle else None,
            rss_per_idle_kib=(
                round((rss_idle - rss) * 1024 / idle, 1) if idle and rss and rss_idle else None
            ),
            pauses=pauses,
        )
    finally:
        procs = workers + ([idle_proc] if idle_proc is not None else [])
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if nginx is not None:
            await asyncio.to_thread(nginx.stop)
        for server in servers:
            await asyncio.to_thread(server.stop)
        if redis is not None:
            await asyncio.to_thread(redis.close)
        shutil.rmtree(tmp, ignore_errors=True)


# -- report -----------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def with_ratios(results: list[Result]) -> list[Result]:
    """Set each result's throughput relative to Node's and to bare python-socketio's,
    under the same load generator (None where that reference did not run)."""
    for generator in {r.generator for r in results}:
        same = [r for r in results if r.generator == generator]
        node = next((r for r in same if r.name == NODE_TARGET), None)
        base = next((r for r in same if r.name == BASELINE_TARGET), None)
        for r in same:
            if node is not None and node.deliveries_per_s > 0:
                r.vs_node = round(r.deliveries_per_s / node.deliveries_per_s, 3)
            if base is not None and base.deliveries_per_s > 0:
                r.vs_baseline = round(r.deliveries_per_s / base.deliveries_per_s, 3)
    return results


def table(results: list[Result]) -> str:
    w = max([34, *(len(r.name) for r in results)])
    head = f"{'target':<{w}} {'gen':<6} {'deliveries/s':>12} {'vs Node':>8} {'vs py-sio':>9}"
    head += f" {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'CPU µs':>7} {'errors':>6}"
    head += "  runs (deliveries/s)"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<{w}} {r.generator:<6} {r.deliveries_per_s:>12,.0f} "
            f"{_ratio(r.vs_node):>8} {_ratio(r.vs_baseline):>9} "
            f"{r.p50_ms:>7.1f} {r.p95_ms:>7.1f} {r.p99_ms:>7.1f} "
            f"{'-' if r.server_cpu_us is None else f'{r.server_cpu_us:.1f}':>7} {r.errors:>6}  "
            f"{', '.join(f'{x:,}' for x in r.runs)}"
        )
    return "\n".join(rows)


def pauses_table(results: list[Result]) -> str:
    """The teaching servers' loop lag and GC pauses while each run sent."""
    w = max([34, *(len(r.name) for r in results)])
    head = f"{'target':<{w}} {'lag p50':>8} {'lag p99':>8} {'lag max':>8}"
    head += f" {'gc0 n/ms':>12} {'gc1 n/ms':>12} {'gc2 n/ms':>12} {'gc2 max':>8}"
    head += f" {'GC CPU':>8} {'tracked':>9} {'frozen':>9} {'collected':>9}"
    head += f" {'frames/write':>12}"
    rows = [head, "-" * len(head)]
    for r in results:
        p = r.pauses
        if not p:
            continue
        gcs = " ".join(
            f"{p.get(f'gc{g}_count', 0):>5}/{p.get(f'gc{g}_total_ms', 0):<6.0f}" for g in (0, 1, 2)
        )
        rows.append(
            f"{r.name:<{w}} {p['loop_lag_p50_ms']:>8.1f} {p['loop_lag_p99_ms']:>8.1f} "
            f"{p['loop_lag_max_ms']:>8.1f} {gcs} {p.get('gc2_max_ms', 0):>8.1f} "
            f"{sum(p.get(f'gc{g}_cpu_total_ms', 0) for g in (0, 1, 2)):>8.0f} "
            f"{p.get('gc_tracked', 0):>9,} {p.get('gc_frozen', 0):>9,} "
            f"{p.get('gc_collected', 0):>9,} {_frames_per_write(p):>12}"
        )
    return "\n".join(rows)


def _frames_per_write(pauses: dict[str, Any]) -> str:
    """Fast-path frames per transport write (system call) in the window: above 1 when
    broadcasts of the same turns shared a write."""
    frames, writes = pauses.get("fanout_frames_count", 0), pauses.get("fanout_writes_count", 0)
    return f"{frames / writes:.2f}" if writes else "-"


def chart(results: list[Result], path: Path, subtitle: str) -> None:
    """Throughput (with the ratio to Node on each bar) and latency, one bar per row;
    with two load generators, one row of panels per generator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generators = [g for g in GENERATORS if any(r.generator == g for r in results)]
    fig, axes = plt.subplots(len(generators), 2, figsize=(14, 5.6 * len(generators)), squeeze=False)
    for (left, right), generator in zip(axes, generators, strict=True):
        rows = [r for r in results if r.generator == generator]
        names = [textwrap.fill(r.name, 11) for r in rows]
        who = "socket.io-client (Node)" if generator == "js" else "python-socketio client"
        xs = range(len(rows))
        colors = ["#6c757d" if r.name == NODE_TARGET else "#007bff" for r in rows]
        bars = left.bar(xs, [r.deliveries_per_s for r in rows], color=colors)
        labels = [
            f"{r.deliveries_per_s:,.0f}" + (f"\n{r.vs_node:.2f}x Node" if r.vs_node else "")
            for r in rows
        ]
        left.bar_label(bars, labels=labels, fontsize=8)
        left.set_xticks(list(xs), names, fontsize=7.5)
        left.set_ylabel("deliveries per second (higher is better)")
        left.set_title(f"Throughput; load generator: {who}")
        left.margins(y=0.18)
        width = 0.27
        for k, (label, color, attr) in enumerate(
            [
                ("p50", "#28a745", "p50_ms"),
                ("p95", "#ff9500", "p95_ms"),
                ("p99", "#6f42c1", "p99_ms"),
            ]
        ):
            right.bar(
                [x + (k - 1) * width for x in xs],
                [getattr(r, attr) for r in rows],
                width,
                label=label,
                color=color,
                hatch=["", "//", ".."][k],
                edgecolor="white",
            )
        right.set_xticks(list(xs), names, fontsize=7.5)
        right.set_ylabel("fan-out latency, ms (lower is better)")
        right.set_title("Latency, send to each receipt")
        right.legend()
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=100, help="clients in the room (default 100)")
    p.add_argument("--senders", type=int, default=10, help="how many of them send (default 10)")
    p.add_argument("--messages", type=int, default=50, help="acked messages per sender (50)")
    p.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_MESSAGES,
        help=f"acked warm-up messages per sender before the timed ones, every client "
        f"receiving them; not counted ({WARMUP_MESSAGES})",
    )
    p.add_argument("--servers", type=int, default=2, help="N for the N-server run (default 2)")
    p.add_argument("--workers", type=int, default=2, help="load generator processes (2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per run (default 60)")
    p.add_argument("--repeat", type=int, default=3, help="runs per target; median kept (3)")
    p.add_argument(
        "--generator",
        choices=["js", "python", "both"],
        default="js",
        help="load generator: the official JS client (js, default), python-socketio, or both",
    )
    p.add_argument("--only", action="append", help="run targets whose name contains this")
    p.add_argument(
        "--idle",
        type=int,
        default=0,
        help="instead: the teaching server with and without N idle WebSocket clients "
        "connected (RSS per connection, and the room's rate while they are held)",
    )
    p.add_argument(
        "--profile", default=None, help="teaching servers write cProfile stats to this directory"
    )
    p.add_argument(
        "--gc",
        choices=["long-lived", "default", "both"],
        default="long-lived",
        help="the teaching servers' garbage collection: long-lived objects frozen, as "
        "tutorial serve does (default), Python's defaults, or both (with --idle)",
    )
    p.add_argument("--out", default="docs/assets", help="where bench.json and bench.png go")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG")
    p.add_argument(
        "--replot", action="store_true", help="redraw bench.png from bench.json; run nothing"
    )
    from tutorial.cluster import readbench

    readbench.configure(p)


def median_run(runs: list[Result]) -> Result:
    """The run with the median throughput (the upper one of an even count), carrying the
    throughput of every run in ``runs``."""
    ranked = sorted(runs, key=lambda r: r.deliveries_per_s)
    chosen = ranked[len(ranked) // 2]
    chosen.runs = [round(r.deliveries_per_s) for r in runs]
    return chosen


async def _bench_idle(args: argparse.Namespace) -> list[Result]:
    """The teaching server (tracing off) without, then with ``args.idle`` idle clients,
    interleaved (with ``--gc both``: under each collector policy, interleaved too); each
    idle run's ``vs_baseline`` is its rate over the idle-free one of the same policy."""
    target = Target("teaching server, tracing off", "teaching")
    policies = list(GC_POLICIES) if args.gc == "both" else [args.gc]
    runs: dict[tuple[str, int], list[Result]] = {}
    for _ in range(args.repeat):
        for policy in policies:
            for idle in (0, args.idle):
                result = await run_target(target, args, args.generator, idle=idle, gc=policy)
                runs.setdefault((policy, idle), []).append(result)
    results: list[Result] = []
    for policy in policies:
        free, held = median_run(runs[(policy, 0)]), median_run(runs[(policy, args.idle)])
        suffix = f", GC {policy}" if len(policies) > 1 else ""
        free.name = f"{target.name}{suffix}"
        held.name = f"{target.name}, {args.idle:,} idle clients{suffix}"
        if free.deliveries_per_s > 0:
            held.vs_baseline = round(held.deliveries_per_s / free.deliveries_per_s, 3)
        results += [free, held]
    return results


async def _bench(args: argparse.Namespace) -> list[Result]:
    if args.idle:
        return await _bench_idle(args)
    chosen = [
        t for t in targets(args.servers) if not args.only or any(o in t.name for o in args.only)
    ]
    generators = list(GENERATORS) if args.generator == "both" else [args.generator]
    runs: dict[tuple[str, str], list[Result]] = {}
    # Interleaved: every target once, then again, so a change in the machine's load
    # touches all of them alike.
    for _ in range(args.repeat):
        for generator in generators:
            for target in chosen:
                result = await run_target(target, args, generator)
                runs.setdefault((generator, target.name), []).append(result)
    return with_ratios(
        [median_run(runs[(g, t.name)]) for g in generators for t in chosen if (g, t.name) in runs]
    )


def machine() -> dict[str, Any]:
    """The machine a run was made on: cores, CPU model, load average (1, 5, 15 min)."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    return {"cpus": os.cpu_count(), "cpu_model": model, "loadavg": load}


def _subtitle(meta: dict[str, Any]) -> str:
    p = meta["params"]
    load = meta.get("loadavg_before")
    where = f"{meta['cpus']} CPUs"
    if meta.get("cpu_model"):
        where += f" ({meta['cpu_model']})"
    if load:
        where += f", load {load[0]:.1f} before / {meta.get('loadavg_after', ['?'])[0]} after"
    return (
        f"{p['clients']} clients in one room, {p['senders']} senders x {p['messages']} "
        f"acked messages; {where}; Python {meta['python']}, "
        f"python-socketio {meta['python_socketio']}, socket.io {meta.get('socket_io', '?')}; "
        f"median of {p.get('repeat', 1)} interleaved runs"
    )


def _node_package_version(name: str) -> str | None:
    for directory in Path(__file__).resolve().parents:
        manifest = directory / "node_modules" / name / "package.json"
        if manifest.is_file():
            version: str | None = json.loads(manifest.read_text()).get("version")
            return version
    return None


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.replot:
        data = json.loads((out / "bench.json").read_text())
        results = [Result(**r) for r in data["results"]]
        print(table(results))
        chart(results, out / "bench.png", _subtitle(data))
        print(f"wrote {out / 'bench.png'}")
        return 0
    if args.senders > args.clients:
        raise SystemExit("--senders cannot exceed --clients")
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    if args.idle < 0:
        raise SystemExit("--idle must be 0 or more")
    if args.warmup < 0:
        raise SystemExit("--warmup must be 0 or more")
    if args.gc == "both" and not args.idle:
        raise SystemExit("--gc both compares the policies with --idle N")
    if args.idle and args.generator == "both":
        raise SystemExit("--idle runs under one load generator: --generator js or python")
    needs_node = not args.reads and (
        args.generator != "python" or not args.only or any(o in NODE_TARGET for o in args.only)
    )
    why = node_modules_missing() if needs_node else None
    if why:
        raise SystemExit(f"tutorial bench: {why}")
    from importlib.metadata import version

    from tutorial.cluster import readbench

    before = machine()
    results = [] if args.reads else asyncio.run(_bench(args))
    after = machine()
    reads = [] if args.no_reads or args.idle else asyncio.run(readbench.bench_reads(args))
    print()
    if results:
        print(table(results))
        print()
        print("event-loop lag and GC pauses (ms) in the teaching servers while sending:")
        print(pauses_table(results))
        print()
    if reads:
        print(readbench.table(reads))
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": before["cpus"],
        "cpu_model": before["cpu_model"],
        "loadavg_before": before["loadavg"],
        "loadavg_after": after["loadavg"],
        "python": platform.python_version(),
        "python_socketio": version("python-socketio"),
        "socket_io": _node_package_version("socket.io"),
        "socket_io_client": _node_package_version("socket.io-client"),
        "params": {
            "clients": args.clients,
            "senders": args.senders,
            "messages": args.messages,
            "servers": args.servers,
            "workers": args.workers,
            "repeat": args.repeat,
            "generator": args.generator,
            "idle": args.idle,
            "gc": args.gc,
        },
    }
    meta["params"] |= {"read_clients": args.read_clients, "reads_each": args.reads_each}
    print(f"machine: {_subtitle(meta)}")
    if args.idle:
        for free, held in zip(results[::2], results[1::2], strict=True):
            print(
                f"{held.name}: the server's RSS {held.rss_mib} MiB -> "
                f"{held.rss_idle_mib} MiB, {held.rss_per_idle_kib} KiB per connection; the "
                f"{args.clients}-client room at {held.deliveries_per_s:,.0f} deliveries/s, "
                f"{_ratio(held.vs_baseline)} its rate without them "
                f"({free.deliveries_per_s:,.0f})"
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench-idle.json").write_text(
            json.dumps({**meta, "results": [asdict(r) for r in results]}, indent=2) + "\n"
        )
        print(f"wrote {out / 'bench-idle.json'}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    measured = {"when": meta["when"], "load_average": machine()["loadavg"]}
    if args.reads and path.exists():  # keep the message results of an earlier full run
        earlier = json.loads(path.read_text())
        results = [Result(**r) for r in earlier["results"]]
        params = {
            **earlier.get("params", {}),
            **{k: meta["params"][k] for k in ("read_clients", "reads_each")},
        }
        meta = {k: v for k, v in earlier.items() if k not in ("results", "reads", "reads_measured")}
        meta["params"] = params
    record = {
        **meta,
        "results": [asdict(r) for r in results],
        "reads": readbench.as_json(reads),
        "reads_measured": measured,  # the read-scaling part may be newer than the rest
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    if not args.no_chart and not args.reads:
        chart(results, out / "bench.png", _subtitle(meta))
        print(f"wrote {out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        _run_worker(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "serve":
        parser = argparse.ArgumentParser()
        parser.add_argument("serve")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--db", required=True)
        parser.add_argument("--redis", default=None)
        parser.add_argument("--name", default="bench")
        parser.add_argument("--trace", action="store_true")
        parser.add_argument("--read-db", action="append")
        parser.add_argument("--fanout", choices=["fast", "per-turn", "library"], default="fast")
        parser.add_argument("--profile", default=None, help="write cProfile stats here")
        parser.add_argument("--pauses", default=None, help="loop lag and GC pauses (JSON)")
        parser.add_argument("--gc", choices=["long-lived", "default"], default="long-lived")
        serve_args = parser.parse_args()
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            asyncio.run(_serve(serve_args))
        else:
            uvloop.run(_serve(serve_args))
    else:
        parser = argparse.ArgumentParser(prog="python -m tutorial.cluster.bench")
        configure(parser)
        sys.exit(main(parser.parse_args()))
