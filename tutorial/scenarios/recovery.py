"""The four error recovery patterns of seed diagram 5, each triggered for real.

``await recovery_drill()`` starts a demo server and, one after the other, makes the
teaching client meet a network timeout (the server goes away), an auth failure (a wrong
password), a server rejection (a message over the length limit) and a rate limit (a
burst), and records what the client did about each.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tutorial.chat.server import ChatServer, ServerConfig
from tutorial.client import Backoff, ChatClient, ChatError, ClientOptions, LoginRequired, State
from tutorial.client.recovery import Detection, RecoveryPattern, classify


@dataclass(frozen=True)
class PatternOutcome:
    detection: Detection
    pattern: RecoveryPattern
    what_happened: str
    what_the_client_did: str
    states: tuple[str, ...]


def _path(client: ChatClient, since: int = 0) -> tuple[str, ...]:
    return tuple(f"{r.source}→{r.target}" for r in client.history[since:])


async def recovery_drill() -> list[PatternOutcome]:
    """Trigger the four patterns against a real server; a few seconds in all."""
    workdir = Path(tempfile.mkdtemp(prefix="tutorial-recovery-"))
    config = ServerConfig.for_demo(workdir, rate_capacity=3.0, rate_per_second=10.0)
    options = ClientOptions(backoff=Backoff(base=0.1, factor=2.0, cap=0.5), max_retries=8)
    server = ChatServer(config)
    config.port = await server.start()
    outcomes: list[PatternOutcome] = []
    alice = ChatClient(server.url, "alice", "alice", options=options)
    try:
        await alice.connect()
        await alice.join("general")

        # 1. Network timeout: the server goes away, then comes back.
        mark = len(alice.history)
        await server.stop()
        await alice.wait_for_state(State.RECONNECTING)
        server = ChatServer(config)
        await server.start()
        await alice.wait_for_state(State.CONNECTED, timeout=10)
        outcomes.append(
            PatternOutcome(
                Detection.NETWORK_TIMEOUT,
                classify(None),
                "the server stopped; the connection dropped",
                f"retried {len(alice.retry_delays)} time(s) with backoff "
                f"({', '.join(f'{d:.2f}s' for d in alice.retry_delays)}), re-joined its rooms",
                _path(alice, mark),
            )
        )

        # 2. Auth failure: a wrong password.
        mallory = ChatClient(server.url, "bob", "wrong-password", options=options)
        try:
            await mallory.connect()
        except LoginRequired as err:
            outcomes.append(
                PatternOutcome(
                    Detection.AUTH_FAILURE,
                    err.pattern,
                    f"the server refused the login: {err.code}",
                    "stopped retrying and set login_required: back to the login page",
                    _path(mallory),
                )
            )

        # 3. Server rejection: a message over the length limit.
        try:
            await alice.send("general", "x" * (config.max_text_length + 1))
        except ChatError as err:
            outcomes.append(
                PatternOutcome(
                    Detection.SERVER_REJECTION,
                    err.pattern,
                    f"the server answered error {err.code}",
                    "dropped the message from the outbox and showed the error; no retry",
                    (str(alice.state),),
                )
            )

        # 4. Rate limit: a burst bigger than the bucket.
        before = len([e for e in alice.errors if e.code == "rate_limited"])
        texts = [f"burst {i}" for i in range(8)]
        acks = await asyncio.gather(*(alice.send("general", t) for t in texts))
        limited = [e for e in alice.errors if e.code == "rate_limited"][before:]
        outcomes.append(
            PatternOutcome(
                Detection.RATE_LIMIT,
                classify("rate_limited"),
                f"{len(limited)} send(s) answered rate_limited with retryAfter",
                f"kept the messages queued, paused, and delivered all {len(acks)} in order "
                f"(seq {acks[0]['seq']}..{acks[-1]['seq']})",
                (str(alice.state),),
            )
        )
    finally:
        await alice.close()
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return outcomes


def markdown_table(outcomes: list[PatternOutcome]) -> str:
    rows = [
        "| detection | classification | recovery | what happened | what the client did | states |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {o.detection} | {o.pattern.classification} | {o.pattern.recovery} | "
        f"{o.what_happened} | {o.what_the_client_did} | {' '.join(o.states)} |"
        for o in outcomes
    ]
    return "\n".join(rows)
