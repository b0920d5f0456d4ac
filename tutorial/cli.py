"""The ``tutorial`` command (also ``python -m tutorial``).

Every subcommand is listed once, in [COMMANDS][tutorial.cli.COMMANDS]: its name, its
help line, the function that adds its arguments and the one that runs it. Nothing
registers itself by being imported, and a module that fails to import fails the
command loudly. ``docs/reference/cli.md`` is generated from
[build_parser][tutorial.cli.build_parser].
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tutorial import live
from tutorial.chat.server import ChatServer, ServerConfig
from tutorial.cluster import cli as cluster_cli
from tutorial.cluster.procs import stop_signal
from tutorial.scenarios import cli as scenarios_cli


@dataclass(frozen=True)
class Command:
    """One subcommand: ``tutorial NAME``."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000, as in the seed)")
    p.add_argument(
        "--db",
        default="sqlite:///.data/chat.db",
        help="message store URL: sqlite:///PATH (default .data/chat.db) or postgresql://...",
    )
    p.add_argument("--demo", action="store_true", help="seed the demo cast: alice ... grace")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="allow this browser origin (repeatable); default: same origin only",
    )
    p.add_argument("--redis", default=None, help="redis://HOST:PORT to share broadcasts")
    p.add_argument("--name", default="server", help="this server's name in logs and /healthz")
    p.add_argument(
        "--live-trace",
        action="store_true",
        help="record every byte through a wiretap, for the page's live sequence diagram",
    )


async def _serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        host=args.host,
        port=args.port,
        db_url=args.db,
        demo=args.demo,
        cors_allowed_origins=args.cors_origin,
        redis_url=args.redis,
        name=args.name,
    )
    server = ChatServer(config)
    live.attach(server, enabled=args.live_trace)
    await server.start()
    print(f"chat server {config.name} listening on {server.url}", flush=True)
    if config.demo:
        print("demo users: alice bob charlie diana eve frank grace (password = name)", flush=True)
    if args.live_trace:
        print("live trace on: every byte is recorded for the page's live diagram", flush=True)
    await stop_signal().wait()
    await server.stop()
    return 0


def _user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    p.add_argument("--password", required=True)
    p.add_argument("--db", default="sqlite:///.data/chat.db")


async def _user_add(args: argparse.Namespace) -> int:
    from tutorial.chat.auth import make_user
    from tutorial.chat.store import open_store

    store = open_store(args.db)
    await store.open()
    try:
        await store.add_user(make_user(args.name, args.password))
        await store.add_room("general", private=False, members=[])
    finally:
        await store.close()
    print(f"user {args.name} saved in {args.db}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from tutorial.docs import prepare_site_notebooks, write_generated_docs

    if args.site_notebooks:
        for path in prepare_site_notebooks(Path(args.site_notebooks)):
            print(f"prepared {path} for the static site")
        return 0
    for path in write_generated_docs(Path(args.root)):
        print(f"wrote {path}")
    return 0


def _docs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=".", help="repository root (default .)")
    p.add_argument(
        "--site-notebooks",
        metavar="DIR",
        help="instead: make the executed notebooks in DIR fit for the offline site",
    )


#: Every subcommand, in the order ``tutorial --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("serve", "run the teaching chat server", _serve_args, lambda a: asyncio.run(_serve(a))),
    Command(
        "user-add",
        "create or update a user in the store",
        _user_args,
        lambda a: asyncio.run(_user_add(a)),
    ),
    Command("docs", "regenerate the reference pages made from the code", _docs_args, _docs),
    Command(
        "bench",
        "benchmark: baseline vs teaching server vs 1 and N servers behind nginx",
        cluster_cli.bench_arguments,
        cluster_cli.run_bench,
    ),
    Command(
        "cluster",
        "run diagram 6: nginx, N servers, Redis, a store",
        cluster_cli.cluster_arguments,
        cluster_cli.run_cluster,
    ),
    Command(
        "diagrams",
        "regenerate diagrams/ from deterministic runs of every scenario",
        scenarios_cli.diagrams_arguments,
        scenarios_cli.run_diagrams,
    ),
    Command(
        "trace",
        "run a scenario and write its trace and diagram",
        scenarios_cli.trace_arguments,
        scenarios_cli.run_trace,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``tutorial`` command's parser: every subcommand of [COMMANDS][tutorial.cli.COMMANDS]."""
    parser = argparse.ArgumentParser(
        prog="tutorial", description="A Socket.IO chat system you can run, watch and break."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        command.arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
