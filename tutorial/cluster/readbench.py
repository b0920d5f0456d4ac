"""``tutorial bench`` part two: history reads per second, with 0 and with N standbys.

Seed diagram 6 lists "database replication for read scaling". This measures it, side by
side in one run: a PostgreSQL primary alone, then the same primary with ``replicas``
streaming hot standbys that the servers read history from
([ReplicatedPostgresStore][tutorial.chat.replicas.ReplicatedPostgresStore]).

Each target: ``servers`` teaching servers (the rate limit lifted), a room with
``history`` messages, and a load generator process whose ``clients`` each ask
``join-room {since: 0}`` ``reads`` times, one after the other: every ask is one
history read of up to 50 rows, answered with the ``room-joined`` history and an ack.
Measured: reads per second (first ask to last ack), latency p50/p99, and where the
reads landed (the servers' ``/stats``: which standby, or the primary).

What two cores can show, honestly: the servers, the load generator and every
database server share the same two cores, so adding standbys adds *places* to read
from, not *CPU* to read with. The figure to look for is where the reads went (off
the primary, which is left to the writes) and that the rate did not drop; a machine
with a core per database server would add throughput too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tutorial.cluster.postgres import TempPostgres, TempStandby
from tutorial.cluster.procs import free_port

ROOM = "general"


@dataclass
class ReadResult:
    name: str
    replicas: int
    servers: int
    clients: int
    reads: int
    duration_s: float
    reads_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    served: dict[str, int] = field(default_factory=dict)  # standby name or "primary"
    runs: list[float] = field(default_factory=list)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reads",
        action="store_true",
        help="only the read-scaling part: history reads/s with 0 and --read-replicas standbys",
    )
    p.add_argument("--no-reads", action="store_true", help="skip the read-scaling part")
    p.add_argument("--read-replicas", type=int, default=2, help="standbys for it (default 2)")
    p.add_argument("--read-clients", type=int, default=20, help="reading clients (default 20)")
    p.add_argument("--reads-each", type=int, default=50, help="reads per client (default 50)")


async def _fill(url: str, users: list[str], messages: int) -> dict[str, str]:
    from tutorial.chat.store import open_store
    from tutorial.cluster.bench import prepare_store

    tokens = await prepare_store(url, users)
    store = open_store(url)
    await store.open()
    try:
        for k in range(messages):
            await store.append(ROOM, users[0], f"history line {k}", f"fill-{k}")
    finally:
        await store.close()
    return tokens


async def run_reads(replicas: int, args: argparse.Namespace) -> ReadResult:
    from tutorial.cluster.bench import BenchServer

    tmp = Path(tempfile.mkdtemp(prefix="tutorial-readbench-"))
    primary = TempPostgres()
    standbys: list[TempStandby] = []
    servers: list[BenchServer] = []
    worker: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(primary.start)
        users = [f"reader{i:03d}" for i in range(args.read_clients)]
        tokens = await _fill(primary.url, users, 60)
        for i in range(1, replicas + 1):
            standby = TempStandby(primary, name=f"replica-{i}")
            standbys.append(standby)
            await asyncio.to_thread(standby.start)
        for i in range(2):
            server = BenchServer(
                "teaching",
                f"reads-{i + 1}",
                primary.url,
                None,
                port=free_port(),
                demo=False,
                log_dir=tmp,
                read_urls=[s.url for s in standbys],
            )
            servers.append(server)
            server.spawn()
        for server in servers:
            await asyncio.to_thread(server.wait_ready, 30)
        config = {
            "urls": [s.url for s in servers],
            "tokens": tokens,
            "reads": args.reads_each,
        }
        path = tmp / "readers.json"
        path.write_text(json.dumps(config))
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tutorial.cluster.readbench",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        assert worker.stdout is not None
        result: dict[str, Any] = {}
        while line := await asyncio.wait_for(worker.stdout.readline(), args.timeout + 60):
            if line.startswith(b"RESULT "):
                result = json.loads(line[7:])
        await worker.wait()
        served: dict[str, int] = {}
        for server in servers:
            stats = await asyncio.to_thread(server.stats)
            for name, n in (stats.get("store") or {}).get("reads", {}).items():
                served[name] = served.get(name, 0) + int(n)
        if not replicas:
            served = {"primary": result.get("reads", 0)}
        duration = max(result.get("duration", 0.0), 1e-9)
        latencies = sorted(result.get("latencies", [])) or [float("nan")]
        return ReadResult(
            name=f"history reads, {replicas} standby" + ("" if replicas == 1 else "s"),
            replicas=replicas,
            servers=len(servers),
            clients=args.read_clients,
            reads=result.get("reads", 0),
            duration_s=round(duration, 3),
            reads_per_s=round(result.get("reads", 0) / duration, 1),
            p50_ms=round(latencies[len(latencies) // 2], 2),
            p99_ms=round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
            errors=result.get("errors", 0),
            served=dict(sorted(served.items())),
        )
    finally:
        if worker is not None and worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.kill()
            await worker.wait()
        for server in servers:
            await asyncio.to_thread(server.stop)
        for standby in standbys:
            await asyncio.to_thread(standby.stop)
        await asyncio.to_thread(primary.stop)
        shutil.rmtree(tmp, ignore_errors=True)


async def bench_reads(args: argparse.Namespace) -> list[ReadResult]:
    """0 standbys, then ``--read-replicas``; each ``--repeat`` times, median kept."""
    results = []
    for replicas in (0, args.read_replicas):
        runs = [await run_reads(replicas, args) for _ in range(args.repeat)]
        ranked = sorted(runs, key=lambda r: r.reads_per_s)
        median = ranked[len(ranked) // 2]
        median.runs = [r.reads_per_s for r in runs]
        results.append(median)
    return results


def table(results: list[ReadResult]) -> str:
    head = f"{'target':<28} {'reads/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  served by"
    rows = [head, "-" * len(head)]
    for r in results:
        served = ", ".join(f"{k} {v}" for k, v in r.served.items())
        rows.append(
            f"{r.name:<28} {r.reads_per_s:>9,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.errors:>6}  {served}"
        )
    return "\n".join(rows)


def as_json(results: list[ReadResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


# -- the load generator: a separate process -------------------------------------------------


async def _readers(config: dict[str, Any]) -> None:
    import socketio

    clients = []
    for i, (user, token) in enumerate(sorted(config["tokens"].items())):
        sio = socketio.AsyncClient(reconnection=False)
        url = config["urls"][i % len(config["urls"])]
        await sio.connect(url, transports=["websocket"], auth={"token": token}, wait_timeout=10)
        clients.append((user, sio))
    latencies: list[float] = []
    errors = 0

    async def reader(sio: Any) -> None:
        nonlocal errors
        for _ in range(config["reads"]):
            sent = time.monotonic()
            try:
                ack = await sio.call("join-room", {"roomId": ROOM, "since": 0}, timeout=30)
            except Exception:
                errors += 1
                continue
            if isinstance(ack, dict) and ack.get("ok"):
                latencies.append((time.monotonic() - sent) * 1000)
            else:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(reader(sio) for _, sio in clients))
    duration = time.monotonic() - started
    result = {
        "reads": len(latencies),
        "errors": errors,
        "duration": duration,
        "latencies": latencies,
    }
    print("RESULT " + json.dumps(result), flush=True)
    for _, sio in clients:
        with contextlib.suppress(Exception):
            await sio.disconnect()


if __name__ == "__main__":
    asyncio.run(_readers(json.loads(Path(sys.argv[1]).read_text())))
