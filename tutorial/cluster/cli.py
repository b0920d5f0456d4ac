"""``tutorial cluster up`` and ``tutorial bench``: their arguments and what they run.

[tutorial.cli][tutorial.cli] registers them; this module registers nothing by being imported.
"""

from __future__ import annotations

import argparse
import asyncio

from tutorial.cli_errors import positive_int, store_url
from tutorial.cluster.procs import stop_signal

MAX_SERVERS = 32
"""More chat servers than this on one machine is a typo, not a cluster."""


def server_count(text: str) -> int:
    return positive_int(text, most=MAX_SERVERS)


def cluster_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser(
        "up", help="start nginx (TLS), N servers, Redis with Sentinels, and a store"
    )
    up.add_argument(
        "--servers",
        type=server_count,
        default=3,
        help=f"number of chat servers, 1 to {MAX_SERVERS} (default 3)",
    )
    up.add_argument(
        "--db",
        type=store_url,
        default=None,
        help="store URL shared by the servers (default: a SQLite file in a temporary dir)",
    )
    up.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL server as the store"
    )
    up.add_argument(
        "--pg-replicas",
        type=_count,
        default=2,
        metavar="N",
        help="with --postgres: N streaming hot standbys that serve history reads (default 2)",
    )
    up.add_argument("--no-redis", action="store_true", help="run the servers without Redis")
    up.add_argument(
        "--redis-replicas",
        type=_count,
        default=2,
        metavar="N",
        help="Redis replicas, watched by three Sentinels (default 2; 0: one plain redis-server)",
    )
    up.add_argument(
        "--no-tls", action="store_true", help="plain http:// and ws:// at nginx (default: TLS)"
    )
    up.add_argument(
        "--round-robin", action="store_true", help="no sticky sessions (breaks long-polling)"
    )


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError("must be between 0 and 9")
    return value


async def _cluster_up(args: argparse.Namespace) -> int:
    from tutorial.cluster.cluster import Cluster

    cluster = Cluster(
        servers=args.servers,
        db_url=args.db,
        redis=not args.no_redis,
        sticky=not args.round_robin,
        postgres=args.postgres,
        tls=not args.no_tls,
        redis_replicas=args.redis_replicas,
        pg_replicas=args.pg_replicas,
    )
    stop = stop_signal()
    try:
        await cluster.start()
        print(f"cluster entry: {cluster.url}", flush=True)
        for line in cluster.describe():
            print(f"  {line}", flush=True)
        if cluster.nginx is not None and cluster.nginx.dir is not None and cluster.use_tls:
            ca = cluster.nginx.dir / "tls" / "ca.pem"
            print(f"throwaway CA: {ca}  (curl --cacert {ca} {cluster.url}/healthz)")
        if cluster.standbys:
            print(f"if the primary dies, promote a standby: {cluster.promotion_command(0)}")
        print("demo users: alice bob charlie diana eve frank grace (password = name)")
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
    finally:
        await cluster.stop()
        print("cluster stopped", flush=True)
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    return asyncio.run(_cluster_up(args))


def bench_arguments(p: argparse.ArgumentParser) -> None:
    from tutorial.cluster.bench import configure

    configure(p)


def run_bench(args: argparse.Namespace) -> int:
    from tutorial.cluster.bench import main

    return main(args)
