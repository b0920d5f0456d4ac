"""History from hot standbys: PostgreSQL read scaling, and the lag that comes with it.

Seed diagram 6 draws a primary database "(Write)" and two secondaries "(Read)". This
store writes to the primary (every ``append``, and users and rooms, which logins must
see fresh) and reads a room's *history* (``join-room``, the replay after a
reconnection, a gap repair) from the standbys, in turn.

A standby replays the primary's WAL a little later than the primary committed it:
**replication lag**. A message acknowledged a millisecond ago may not be on the
standby yet. Two things keep a client correct anyway:

* the per-room ``seq`` is a **read-your-writes token**: a client that knows seq *n*
  exists (it was acked to it, or it holds a later message back) sends ``join-room
  {since, atLeast: n}``; when the standby's answer stops short of *n*, this store reads
  the primary instead (counted in
  [ReplicaReads.stale][tutorial.chat.replicas.ReplicaReads.stale]);
* a client that did not know still sees a *consistent prefix* (never a hole inside
  what it got), and the first later message shows it the gap, which it repairs.

A standby that cannot be reached is skipped for ``RETRY_AFTER`` seconds (reads fall
back to the next one, then to the primary:
[ReplicaReads.fallbacks][tutorial.chat.replicas.ReplicaReads.fallbacks]).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tutorial.chat.store import Message, PostgresStore, StoreUnavailable, unavailable_errors

#: Seconds a standby that failed is left alone before it is tried again.
RETRY_AFTER = 1.0


@dataclass
class Standby:
    """One read replica: its URL, its pool (made on first use), when to try it again."""

    name: str
    url: str
    pool: Any = None
    down_until: float = 0.0

    async def run(self, fn: Any) -> Any:
        import asyncpg

        try:
            if self.pool is None:
                # min_size=0: a standby that is down at start does not stop the server.
                self.pool = await asyncpg.create_pool(self.url, min_size=0, max_size=5, timeout=2)
            async with self.pool.acquire(timeout=2) as con:
                return await fn(con)
        except (asyncpg.PostgresError, *unavailable_errors()) as exc:
            self.down_until = time.monotonic() + RETRY_AFTER
            raise StoreUnavailable(f"{self.name}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.terminate()


@dataclass
class ReplicaReads:
    """Where history reads went: what ``/stats`` shows under ``store``."""

    served: Counter[str] = field(default_factory=Counter)
    """Reads answered, by standby name, or ``primary``."""
    stale: int = 0
    """A standby's answer stopped short of ``atLeast``: the primary was read instead."""
    fallbacks: int = 0
    """A standby could not be reached: the next one was tried."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "reads": dict(sorted(self.served.items())),
            "stale": self.stale,
            "fallbacks": self.fallbacks,
        }


class ReplicatedPostgresStore(PostgresStore):
    """Writes on the primary (``url``), history from the standbys (``read_urls``)."""

    def __init__(self, url: str, read_urls: Sequence[str]) -> None:
        super().__init__(url)
        self.standbys = [Standby(f"replica-{i}", u) for i, u in enumerate(read_urls, 1)]
        self.reads = ReplicaReads()
        self._turn = 0

    async def close(self) -> None:
        for standby in self.standbys:
            await standby.close()
        await super().close()

    def _rotation(self) -> list[Standby]:
        """The standbys to try, starting with the next in turn; those that failed a
        moment ago are left out."""
        now = time.monotonic()
        n = len(self.standbys)
        self._turn = (self._turn + 1) % n
        order = [self.standbys[(self._turn + k) % n] for k in range(n)]
        return [s for s in order if s.down_until <= now]

    async def history(
        self, room_id: str, since: int | None = None, limit: int = 50, at_least: int | None = None
    ) -> list[Message]:
        for standby in self._rotation():
            try:
                rows = await self.history_on(standby.run, room_id, since, limit)
            except StoreUnavailable:
                self.reads.fallbacks += 1
                continue
            if at_least is not None and len(rows) < limit and _last_seq(rows, since) < at_least:
                # The standby has not replayed seq at_least yet (lag): the primary has.
                self.reads.stale += 1
                break
            self.reads.served[standby.name] += 1
            return rows
        self.reads.served["primary"] += 1
        return await super().history(room_id, since, limit)

    def read_stats(self) -> dict[str, Any]:
        return self.reads.as_dict()


def _last_seq(rows: list[Message], since: int | None) -> int:
    return rows[-1].seq if rows else (since or 0)
