"""``tutorial bench``: how many chat messages per second reach their readers, and how late.

C clients sit in one room; S of them each send M messages, one after the other, each
waiting for its ack. Every message is delivered to all C clients (the sender too), so a
run makes ``S * M * C`` deliveries. Measured: deliveries per second (from "go" to the
last delivery) and the fan-out latency of each delivery (send to receipt; both ends on
one machine's monotonic clock) as p50/p95/p99. Each target runs ``--repeat`` times
(default 3); the run with the median throughput is the one reported.

Side by side, same load:

1. **baseline**: a bare python-socketio broadcast server
([tutorial.cluster.baseline][tutorial.cluster.baseline]);
2. **teaching server**, one process, tracing off (auth, validation, per-room seq,
   SQLite group commit, broadcasts in seq order, each encoded once);
3. the same with **tracing on** (server spans recorded into a Trace);
4. the teaching server **behind nginx, with Redis**, 1 server;
5. the same with **N servers** (clients spread by source address, sticky hash).

Servers and load generators are separate processes (``--workers`` generator processes),
so one Python process is not both; they talk through the interface written down in
[tutorial.cluster.benchwire][]. The teaching servers run with the rate limit lifted
(it would cap every sender at 10 messages/s). Results: a table, ``bench.json`` and a
chart ``bench.png`` (default in ``docs/assets/``). This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
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


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "baseline" | "teaching"
    servers: int = 1
    nginx: bool = False
    redis: bool = False
    trace: bool = False  # server-side spans recorded into a Trace


def targets(servers: int) -> list[Target]:
    return [
        Target("baseline: bare python-socketio", "baseline"),
        Target("teaching server, tracing off", "teaching"),
        Target("teaching server, tracing on", "teaching", trace=True),
        Target("1 server + nginx + Redis", "teaching", 1, nginx=True, redis=True),
        Target(f"{servers} servers + nginx + Redis", "teaching", servers, nginx=True, redis=True),
    ]


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


# -- processes ------------------------------------------------------------------------


class BenchServer(ServerProcess):
    """A baseline server, or a teaching server with the rate limit lifted."""

    def __init__(self, kind: str, *args: Any, trace: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.trace = trace

    def command(self) -> list[str]:
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
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        return cmd


async def _serve(args: argparse.Namespace) -> None:
    """The teaching server as ``tutorial serve`` runs it, minus the rate limit."""
    from tutorial.chat.server import ChatServer, ServerConfig

    config = ServerConfig(
        host="127.0.0.1",
        port=args.port,
        db_url=args.db,
        redis_url=args.redis,
        name=args.name,
        rate_capacity=1e9,
        rate_per_second=1e9,
    )
    span = None
    if args.trace:
        from tutorial.trace.model import Trace
        from tutorial.trace.spans import ServerSpans

        span = ServerSpans(Trace())
    server = ChatServer(config, span=span)
    await server.start()
    await stop_signal().wait()
    await server.stop()


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
    latencies: list[float] = []
    count = 0
    errors = 0
    last = 0.0
    done = asyncio.Event()
    remaining = len(config.clients)
    clients: list[tuple[Any, Any, ClientSpec]] = []

    for spec in config.clients:
        http = None
        if spec.addr:
            http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(spec.addr, 0), limit=0)
            )
        sio = socketio.AsyncClient(reconnection=False, **({"http_session": http} if http else {}))
        got = {"n": 0}

        def on_message(data: dict[str, Any], got: dict[str, int] = got) -> None:
            nonlocal count, last, remaining
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

    _say(benchwire.Ready())
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    assert isinstance(benchwire.decode(line), benchwire.Go), line

    async def sender(sio: Any, spec: ClientSpec) -> None:
        nonlocal errors
        event = Event.SEND_MESSAGE if kind == "teaching" else "send"
        for k in range(config.messages):
            text = f"{time.monotonic():.6f} {spec.user} {k}"
            payload = {"roomId": ROOM, "text": text, "clientMsgId": f"{spec.user}-{k}"}
            try:
                ack = await sio.call(event, payload, timeout=30)
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


async def run_target(target: Target, args: argparse.Namespace) -> Result:
    from tqdm import tqdm

    from tutorial.cluster.cluster import client_address

    tmp = Path(tempfile.mkdtemp(prefix="tutorial-bench-"))
    redis: RedisProcess | None = None
    nginx: NginxProcess | None = None
    servers: list[BenchServer] = []
    workers: list[asyncio.subprocess.Process] = []
    try:
        users = [f"bench{i:03d}" for i in range(args.clients)]
        db_url = f"sqlite:///{tmp}/chat.db"
        tokens = await prepare_store(db_url, users) if target.kind == "teaching" else {}
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
            )
            servers.append(server)
            server.spawn()
        for server in servers:
            await asyncio.to_thread(server.wait_ready, 30)
        url = servers[0].url
        if target.nginx:
            nginx = NginxProcess([s.port for s in servers], sticky=True)
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
            )
            path = tmp / f"worker-{w}.json"
            path.write_text(config.to_json())
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tutorial.cluster.bench",
                    "worker",
                    str(path),
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

        started = time.monotonic()
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(benchwire.encode(benchwire.Go()))
            await proc.stdin.drain()
        counts = [0] * len(workers)
        results: list[benchwire.Result] = [benchwire.Result(0, 0.0, 0) for _ in workers]
        bar = tqdm(total=total, desc=f"{target.name:<34}", unit="msg", file=sys.stderr)

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
        )
    finally:
        for proc in workers:
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


def table(results: list[Result]) -> str:
    head = f"{'target':<34} {'deliveries/s':>12} {'msgs/s':>8} {'p50 ms':>8} {'p95 ms':>8}"
    head += f" {'p99 ms':>8} {'errors':>6}  runs (deliveries/s)"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<34} {r.deliveries_per_s:>12,.0f} {r.messages_per_s:>8,.0f} "
            f"{r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>6}  "
            f"{', '.join(f'{x:,}' for x in r.runs)}"
        )
    return "\n".join(rows)


def chart(results: list[Result], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        r.name.replace(": ", ":\n").replace(", ", ",\n").replace(" + ", "\n+ ", 1) for r in results
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    xs = range(len(results))
    bars = left.bar(xs, [r.deliveries_per_s for r in results], color="#007bff")
    left.bar_label(bars, labels=[f"{r.deliveries_per_s:,.0f}" for r in results], fontsize=8)
    left.set_xticks(list(xs), names, fontsize=8)
    left.set_ylabel("deliveries per second (higher is better)")
    left.set_title("Throughput")
    width = 0.27
    for k, (label, color, attr) in enumerate(
        [("p50", "#28a745", "p50_ms"), ("p95", "#ff9500", "p95_ms"), ("p99", "#6f42c1", "p99_ms")]
    ):
        right.bar(
            [x + (k - 1) * width for x in xs],
            [getattr(r, attr) for r in results],
            width,
            label=label,
            color=color,
            hatch=["", "//", ".."][k],
            edgecolor="white",
        )
    right.set_xticks(list(xs), names, fontsize=8)
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
    p.add_argument("--servers", type=int, default=2, help="N for the N-server run (default 2)")
    p.add_argument("--workers", type=int, default=2, help="load generator processes (2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per run (default 60)")
    p.add_argument("--repeat", type=int, default=3, help="runs per target; median kept (3)")
    p.add_argument("--only", action="append", help="run targets whose name contains this")
    p.add_argument("--out", default="docs/assets", help="where bench.json and bench.png go")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG")
    p.add_argument(
        "--replot", action="store_true", help="redraw bench.png from bench.json; run nothing"
    )


async def _bench(args: argparse.Namespace) -> list[Result]:
    chosen = [
        t for t in targets(args.servers) if not args.only or any(o in t.name for o in args.only)
    ]
    results = []
    for target in chosen:
        runs = [await run_target(target, args) for _ in range(args.repeat)]
        # The run with the median throughput stands for the target (all runs go to JSON).
        ranked = sorted(runs, key=lambda r: r.deliveries_per_s)
        best = ranked[(len(ranked) - 1) // 2 + (1 if len(ranked) % 2 == 0 else 0)]
        best.runs = [round(r.deliveries_per_s) for r in runs]
        results.append(best)
    return results


def _subtitle(meta: dict[str, Any]) -> str:
    p = meta["params"]
    return (
        f"{p['clients']} clients in one room, {p['senders']} senders x {p['messages']} "
        f"acked messages; {meta['cpus']} CPUs, Python {meta['python']}, "
        f"python-socketio {meta['python_socketio']}; median of {p.get('repeat', 1)} runs"
    )


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
    results = asyncio.run(_bench(args))
    print()
    print(table(results))
    from importlib.metadata import version

    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "python_socketio": version("python-socketio"),
        "params": {
            "clients": args.clients,
            "senders": args.senders,
            "messages": args.messages,
            "servers": args.servers,
            "workers": args.workers,
            "repeat": args.repeat,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(
        json.dumps({**meta, "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    print(f"wrote {out / 'bench.json'}")
    if not args.no_chart:
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
