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
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tutorial.cli_errors import (
    CommandError,
    OneLineParser,
    explain,
    password_text,
    port_number,
    positive_float,
    redis_url,
    store_url,
    user_name,
)
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
    description: str | None = None


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=port_number, default=3000, help="port (default 3000, as in the seed)"
    )
    p.add_argument(
        "--db",
        type=store_url,
        default="sqlite:///.data/chat.db",
        help="message store URL: sqlite:///PATH (default .data/chat.db) or postgresql://...",
    )
    p.add_argument(
        "--read-db",
        action="append",
        default=[],
        metavar="URL",
        help="a PostgreSQL hot standby of --db to read history from (repeatable)",
    )
    p.add_argument("--demo", action="store_true", help="seed the demo cast: alice ... grace")
    p.add_argument(
        "--origin",
        "--cors-origin",
        dest="origin",
        action="append",
        default=None,
        metavar="URL",
        help="a browser origin allowed to connect, e.g. https://chat.example.org (repeatable); "
        "default: the page's own origin when its host is an IP address or localhost",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="believe X-Forwarded-For/-Proto/-Host only from this proxy address or network "
        "(repeatable); default: from nobody",
    )
    p.add_argument(
        "--stats-token",
        default=None,
        metavar="TOKEN",
        help="/stats also answers 'Authorization: Bearer TOKEN' (default: loopback only)",
    )
    p.add_argument(
        "--read-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="time a client has to send a request's headers, and a polling POST's body "
        "(default 10)",
    )
    p.add_argument(
        "--max-send-queue",
        type=int,
        default=1024 * 1024,
        metavar="BYTES",
        help="bytes held for a connection that does not read; past it the connection is "
        "closed with code 1008 (default 1048576)",
    )
    p.add_argument(
        "--max-connections-per-user",
        type=int,
        default=10,
        metavar="N",
        help="connections one user may have open on this server (default 10)",
    )
    p.add_argument(
        "--redis",
        type=redis_url,
        default=None,
        help="redis://HOST:PORT/0 (or rediss://, redis+sentinel://S1,S2,S3/0/NAME) to share "
        "broadcasts; serve refuses to start when it cannot reach it",
    )
    p.add_argument("--name", default="server", help="this server's name in logs and /healthz")
    p.add_argument(
        "--gc",
        choices=["long-lived", "default"],
        default="long-lived",
        help="garbage collection: freeze what survives a full collection, collect all every "
        "10 min (long-lived, the default: short pauses with many connections), or Python's",
    )
    p.add_argument(
        "--live-trace",
        action="store_true",
        help="record every byte through a wiretap, for the page's live sequence diagram",
    )


async def _serve(args: argparse.Namespace) -> int:
    # Imported here, not at the top: a mistyped option is answered before python-socketio,
    # aiohttp and Redis load (about a second), and so is every other command.
    from tutorial import live
    from tutorial.chat.gcpolicy import LongLivedGc
    from tutorial.chat.server import ChatServer, ServerConfig

    config = ServerConfig(
        host=args.host,
        port=args.port,
        db_url=args.db,
        db_read_urls=list(args.read_db),
        demo=args.demo,
        cors_allowed_origins=args.origin,
        redis_url=args.redis,
        name=args.name,
        read_timeout=args.read_timeout,
        max_send_queue=args.max_send_queue,
        max_connections_per_user=args.max_connections_per_user,
        trusted_proxies=args.trusted_proxy,
        stats_token=args.stats_token or os.environ.get("TUTORIAL_STATS_TOKEN") or None,
    )
    open_files = _raise_open_files_limit()
    try:
        server = ChatServer(config)
    except ValueError as exc:  # a bad --origin, --trusted-proxy or limit
        raise CommandError(str(exc), status=2) from exc
    live.attach(server, enabled=args.live_trace)
    # start() opens the store, reaches Redis and listens, or raises having undone each
    # step it took (explain() names what failed).
    await server.start()
    gc_policy = None
    if args.gc == "long-lived":  # this process is the server's own (chat/gcpolicy.py)
        gc_policy = LongLivedGc()
        gc_policy.install()
    print(f"chat server {config.name} listening on {server.url}", flush=True)
    if open_files < MIN_OPEN_FILES:
        print(
            f"warning: only {open_files} open files allowed (ulimit -n); raise the hard limit "
            f"to {MIN_OPEN_FILES} or more for a server that faces the internet",
            file=sys.stderr,
            flush=True,
        )
    if config.demo:
        print("demo users: alice bob charlie diana eve frank grace (password = name)", flush=True)
    if args.live_trace:
        print("live trace on: every byte is recorded for the page's live diagram", flush=True)
    await stop_signal().wait()
    if gc_policy is not None:
        gc_policy.uninstall()
    await server.stop()
    return 0


# Below this many file descriptors a burst of half-open connections (slowloris) can
# leave no room for real clients during the header timeout.
MIN_OPEN_FILES = 4096


def _raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit (1024 is a common default),
    and return the new soft limit (``serve`` warns once listening if it stays low).

    Each connection holds a descriptor until the header timeout closes it; with 1024 a
    thousand half-open connections are enough to refuse everybody else meanwhile.
    """
    try:
        import resource
    except ImportError:  # not on Unix
        return MIN_OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


def _user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", type=user_name, help="the user name: [a-z][a-z0-9_-]{1,31}")
    p.add_argument(
        "--password",
        type=password_text,
        required=True,
        help="the password, not empty (stored as a scrypt hash)",
    )
    p.add_argument(
        "--db",
        type=store_url,
        default="sqlite:///.data/chat.db",
        help="the store URL, as for serve",
    )


async def _user_add(args: argparse.Namespace) -> int:
    from tutorial.chat.auth import make_user
    from tutorial.chat.store import open_store

    store = open_store(args.db)
    await store.open()  # raises StoreUnavailable, having closed what it opened
    try:
        await store.add_user(make_user(args.name, args.password))
        await store.add_room("general", private=False, members=[])
    finally:
        await store.close()
    print(f"user {args.name} saved in {args.db}")
    return 0


def generated_pages() -> dict[str, str]:
    """Every page made from the code: the catalog's, the state table's, and this
    command's reference (``docs/reference/cli.md``), by path from the repository root."""
    from tutorial.docs import cli_page, generated_docs

    return {**generated_docs(), "docs/reference/cli.md": cli_page(build_parser(), CLI_NOTES)}


def _docs(args: argparse.Namespace) -> int:
    from tutorial.docs import prepare_site_notebooks, write_generated_docs, write_site_inspections

    if args.site_notebooks:
        for path in prepare_site_notebooks(Path(args.site_notebooks)):
            print(f"prepared {path} for the static site")
        docs = Path(args.site_notebooks).parent
        for path in write_site_inspections(docs, Path(args.root) / "diagrams"):
            print(f"wrote {path} (step-through data)")
        return 0
    for path in write_generated_docs(Path(args.root), generated_pages()):
        print(f"wrote {path}")
    return 0


def _docs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=".", help="repository root (default .)")
    p.add_argument(
        "--site-notebooks",
        metavar="DIR",
        help="instead: make the executed notebooks in DIR fit for the offline site",
    )


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "run the teaching chat server",
        _serve_args,
        lambda a: asyncio.run(_serve(a)),
        "Run the teaching chat server (python-socketio on aiohttp) until Ctrl-C or SIGTERM; "
        "on either it disconnects every client, stops listening and closes the store.",
    ),
    Command(
        "user-add",
        "create or update a user in the store",
        _user_args,
        lambda a: asyncio.run(_user_add(a)),
        "Create or update a user in the store, for running without --demo. It also "
        "creates the open room general.",
    ),
    Command(
        "docs",
        "regenerate the reference pages made from the code",
        _docs_args,
        _docs,
        "Regenerate the reference pages made from the code: docs/reference/events.md (the "
        "event catalog), docs/reference/states.md (the client's transition table) and "
        "docs/reference/cli.md (this command). tests/test_docs_generated.py fails while a "
        "page is stale.",
    ),
    Command(
        "bench",
        "benchmark: Node socket.io vs python-socketio vs the teaching server, side by side; "
        "history reads with 0 and 2 standbys",
        cluster_cli.bench_arguments,
        cluster_cli.run_bench,
        "The benchmark behind make bench: how many chat messages per second reach their "
        "readers, and how late. It prints a table and writes bench.json and a chart "
        "bench.png. It is a measurement, not a test.",
    ),
    Command(
        "cluster",
        "run diagram 6: nginx (TLS), N servers, Redis with Sentinels, a store "
        "(PostgreSQL with standbys)",
        cluster_cli.cluster_arguments,
        cluster_cli.run_cluster,
        "Seed diagram 6 as real processes on 127.0.0.1, each on a free port.",
    ),
    Command(
        "diagrams",
        "regenerate diagrams/ from deterministic runs of every scenario",
        scenarios_cli.diagrams_arguments,
        scenarios_cli.run_diagrams,
        "Regenerate the committed pictures: every scenario, in deterministic mode, with its "
        "default parameters; for each a JSON trace, a DOT file and an SVG, plus the extra "
        "views a scenario offers (for example handshake-frames).",
    ),
    Command(
        "trace",
        "run a scenario and write its trace and diagram",
        scenarios_cli.trace_arguments,
        scenarios_cli.run_trace,
        "Run one chapter's scenario (real server, wiretap, teaching clients) and write its "
        "trace (SCENARIO.json) and its diagram (SCENARIO.dot, SCENARIO.svg).",
    ),
)
"""Every subcommand, in the order ``tutorial --help`` lists them."""

CLI_NOTES: dict[str, str] = {
    "serve": """
Limits without an option (set them in `ServerConfig` when embedding the server):
64 KiB per polling body or WebSocket message; 2,000 characters per message; 20
events at once, then 10 a second, per user (`rate_limited` with `retryAfter`);
16 rooms per connection (`too_many_rooms`); 5 password checks at once, then 5 a
minute, per user name, and 20 at once, then 20 a minute, per source address (wrong
passwords only; `rate_limited`); a connection that gets 20 refusals faster than 2 a
second, or 10 unreadable packets in a minute, is disconnected. What each limit
protects, and how they were measured: [Limits](../explanation/limits.md).

A bad value (a port outside 0-65535, a store URL that is not `sqlite:///` or
`postgresql://`, a Redis URL that is not `redis://`, an origin that is not
`http(s)://host[:port]`, a proxy that is not an address, a timeout of 0) is one line
on standard error and exit status 2. The server refuses to start, with one line and
exit status 1, when its port is in use, its address is not on this machine, its store
cannot be opened (PostgreSQL not answering, a file that is not a database) or its
Redis does not answer a `PING` within 3 s. Once listening, it raises its soft limit on
open files to the hard limit and warns if it is still below 4096. `--cors-origin` is the old name of `--origin`; the stats token may
also come from `TUTORIAL_STATS_TOKEN`.

Besides Socket.IO on `/socket.io/`, the server answers:

| path | answer |
|---|---|
| `/` | the browser chat page (uses the official `socket.io-client`, installed by `make setup`) |
| `/healthz` | `{"ok": true, "name": NAME}` |
| `/stats` | `{"name", "users", "rooms", "connections", "limits"}`: who is connected to this server, and what the limits refused so far; with `--read-db`, also `store: {reads: {replica-1: n, ..., primary: n}, stale, fallbacks}`. Only for a client on a loopback address under an IP or `localhost` host (`403` otherwise), or with the `--stats-token`; with `--live-trace` (every request then comes through the wiretap on `127.0.0.1`) only with the token |

`--demo` seeds users alice, bob, charlie, diana, eve, frank, grace (password = user
name) and rooms `general`, `tech-talk` (open), `private-chat` (alice, charlie),
`project-alpha` (bob, diana, grace). With `--live-trace` every byte goes through a
wiretap in front of the server, for the browser page's live sequence diagram; without
it the page's diagram panel says that live tracing is off. `--port 0` picks a free port.

Example, as `make serve` runs it:

```bash
.venv/bin/tutorial serve --demo --live-trace --host 127.0.0.1 --port 3000
```

Behind a reverse proxy or under a DNS name, list the page's public origin and the
proxy, so that origins, client addresses and `/stats` are judged right:

```bash
.venv/bin/tutorial serve --origin https://chat.example.org --trusted-proxy 127.0.0.1
```

Never use `--origin '*'`: it opens the server to cross-site WebSocket hijacking.
""",
    "user-add": """
To be able to log in, the name must match `[a-z][a-z0-9_-]{1,31}`; the password is
stored as a salted scrypt hash.

```bash
.venv/bin/tutorial user-add ada --password 'correct horse'
.venv/bin/tutorial serve
```
""",
    "trace": """
```bash
.venv/bin/tutorial trace handshake --out /tmp/handshake --layers frames
```

The JSON is described in [Trace format](trace-format.md). The views: `chat` (Socket.IO
events and server steps), `packets` (HTTP, Engine.IO, Socket.IO), `frames` (TCP, HTTP,
WebSocket frames). The `scaling` scenario starts redis-server; `architecture` and
`cluster` start a whole cluster (nginx, servers, Redis, and for `cluster` PostgreSQL),
so they need them installed (`make setup`).
""",
    "cluster up": """
nginx terminates TLS in front of N chat servers (`tutorial serve --demo --redis ...
--db ...`), with a Redis master, its replicas and three Sentinels, and a shared store
(with `--postgres`: a primary and streaming standbys). It prints the entry URL, one line
per part, the throwaway CA to trust and (with standbys) the promotion command, then
waits; `Ctrl-C` stops everything and deletes the temporary files, keys included. A
step-by-step guide is [Run the cluster](../howto/run-the-cluster.md); `--round-robin` breaks HTTP
long-polling (see [Why sticky sessions](../explanation/sticky-sessions.md)).
""",
    "bench": """
C clients sit in one room; S of them each send M messages, each waiting for its ack;
every message is delivered to all C clients. The targets run under the same load, side
by side, repetitions interleaved: Node socket.io 4 (npm `socket.io`, the fastest real
alternative), a bare python-socketio broadcast server (the baseline), the teaching server
alone (fast fan-out; python-socketio's own fan-out; tracing on), the teaching server
behind nginx (terminating TLS; the load generators trust the run's throwaway CA) with
Redis, and N teaching servers behind nginx. The load generator is the
official JavaScript client `socket.io-client` under Node (`--generator python` for
python-socketio's, `both` for both), in separate processes that talk through the
interface of `tutorial/cluster/benchwire.py`. Every row gives its throughput as a ratio
to Node's and to bare python-socketio's, and the server's CPU time per delivery;
`bench.json` also records the machine (cores, CPU model, load average before and
after). Then history reads per second from PostgreSQL, with 0 and with 2 streaming
standbys side by side (each read a `join-room {since: 0}` answered with up to 50
messages), and which server answered them. See [What it costs](../explanation/performance.md).
""",
    "": """
## Mistakes and exit status

Every command answers a mistake with one line on standard error that names it, and
a non-zero exit status: 2 for a usage error (as argparse gives: an unknown option, a
value out of range), 1 for what is found while running (a port in use, a store or
Redis that cannot be reached, a directory that cannot be written). No traceback:
`tutorial --debug COMMAND ...` (or `--debug` after the command) shows it instead.
`tests/test_cli_errors.py` runs each mistake against the real command.

## Make targets

The `Makefile` wraps the commands above; `make help` lists every target.

| target | runs |
|---|---|
| `make lab` | `make setup`, then JupyterLab on `notebooks/` |
| `make test` | `make setup`, then lint (ruff, import contracts, mypy), the pytest suite, the notebooks, the site build and its browser checks |
| `make serve` | `tutorial serve --demo --live-trace --host $(HOST) --port $(PORT)` (default `127.0.0.1:3000`; `make serve PORT=3001`) |
| `make notebooks` | execute every chapter notebook with nbmake (into copies in `docs/chapters/`) |
| `make site-build` | `make notebooks`, copy `diagrams/*.svg` to `docs/diagrams/`, then `mkdocs build --strict` into `site/` |
| `make site` | `make site-build`, then serve `site/` on <http://127.0.0.1:8000> |
| `make clean` | remove generated files, including the demo store `.data/` (keeps `.venv`) |
| `make bench` | `tutorial bench` |
| `make setup` | system packages, `.venv`, the package with its dev extras, the npm packages |
| `make lint` / `make format` | ruff, the import contracts and mypy / ruff's fixes |
| `make unit` | the pytest suite alone |
""",
}
"""What ``docs/reference/cli.md`` says beyond the parser, by command path."""


DEBUG_HELP = "on an error, show the Python traceback instead of one line"


def build_parser() -> argparse.ArgumentParser:
    """The ``tutorial`` command's parser: every subcommand of [COMMANDS][tutorial.cli.COMMANDS].

    A usage error is one line on standard error and exit status 2
    ([OneLineParser][tutorial.cli_errors.OneLineParser]).
    """
    parser = OneLineParser(
        prog="tutorial", description="A Socket.IO chat system you can run, watch and break."
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(p)
        # Also after the subcommand; SUPPRESS keeps a --debug given before it.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An operator's mistake, or a store, Redis or address that cannot
    be used, is one line on standard error naming the problem and a non-zero exit
    status (2 for a usage error, 1 otherwise); ``--debug`` shows the traceback instead."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message, status = explain(exc)
        print(f"tutorial {args.command}: {message}", file=sys.stderr, flush=True)
        return status


if __name__ == "__main__":
    sys.exit(main())
