"""The ``tutorial`` command (also ``python -m tutorial``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tutorial.chat.server import ChatServer, ServerConfig

# Subcommands added by other modules register here: name -> (help, configure, run).
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
EXTRA_COMMANDS: dict[str, Command] = {}


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
        live_trace=args.live_trace,
    )
    server = ChatServer(config)
    await server.start()
    print(f"chat server {config.name} listening on {server.url}", flush=True)
    if config.demo:
        print("demo users: alice bob charlie diana eve frank grace (password = name)", flush=True)
    if config.live_trace:
        print("live trace on: every byte is recorded for the page's live diagram", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
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
    from tutorial.docs import prepare_site_notebooks, write_generated_docs, write_site_inspections

    if args.site_notebooks:
        for path in prepare_site_notebooks(Path(args.site_notebooks)):
            print(f"prepared {path} for the static site")
        docs = Path(args.site_notebooks).parent
        for path in write_site_inspections(docs, Path(args.root) / "diagrams"):
            print(f"wrote {path} (step-through data)")
        return 0
    for path in write_generated_docs(Path(args.root)):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tutorial", description="A Socket.IO chat system you can run, watch and break."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the teaching chat server")
    _serve_args(p)
    p.set_defaults(run=lambda a: asyncio.run(_serve(a)))
    p = sub.add_parser("user-add", help="create or update a user in the store")
    _user_args(p)
    p.set_defaults(run=lambda a: asyncio.run(_user_add(a)))
    p = sub.add_parser("docs", help="regenerate the reference pages made from the code")
    p.add_argument("--root", default=".", help="repository root (default .)")
    p.add_argument(
        "--site-notebooks",
        metavar="DIR",
        help="instead: make the executed notebooks in DIR fit for the offline site",
    )
    p.set_defaults(run=_docs)
    for name, (help_text, configure, run) in sorted(EXTRA_COMMANDS.items()):
        p = sub.add_parser(name, help=help_text)
        configure(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _load_extra_commands()
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


def _load_extra_commands() -> None:
    """Import the modules that add subcommands (trace, diagrams, cluster, bench)."""
    for module in ("tutorial.scenarios.cli", "tutorial.cluster.cli"):
        with contextlib.suppress(ImportError):
            __import__(module)


if __name__ == "__main__":
    sys.exit(main())
