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
    up = sub.add_parser("up", help="start nginx, N servers, redis-server and a store")
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
    up.add_argument("--no-redis", action="store_true", help="run the servers without Redis")
    up.add_argument(
        "--round-robin", action="store_true", help="no sticky sessions (breaks long-polling)"
    )


async def _cluster_up(args: argparse.Namespace) -> int:
    from tutorial.cluster.cluster import Cluster

    cluster = Cluster(
        servers=args.servers,
        db_url=args.db,
        redis=not args.no_redis,
        sticky=not args.round_robin,
        postgres=args.postgres,
    )
    stop = stop_signal()
    try:
        await cluster.start()
        print(f"cluster entry: {cluster.url}", flush=True)
        for line in cluster.describe():
            print(f"  {line}", flush=True)
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
