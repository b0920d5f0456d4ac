"""The message store: users, rooms and message history behind one async interface.

Two real back ends share the schema and the semantics:

* [SQLiteStore][tutorial.chat.store.SQLiteStore] (the embedded default), a file opened through
aiosqlite;
* [PostgresStore][tutorial.chat.store.PostgresStore], a PostgreSQL server reached through asyncpg.

``open_store(url)`` picks one from a URL: ``sqlite:///path/chat.db`` or
``postgresql://user@host/db``. The promises every back end keeps:

* ``append`` assigns the room's next ``seq`` and stores the message in one
  transaction, committed and flushed to disk (fsync) before it returns: what the
  server acknowledges survives a crash of the process *and* a power cut. (SQLite runs
  with ``synchronous=FULL``; PostgreSQL with its default ``synchronous_commit=on``.)
* ``(room, user, client_msg_id)`` is unique: appending the same message twice returns
  the first copy with ``duplicate=True`` and stores nothing new (exactly-once storage).
  The same ``client_msg_id`` in another room is another message: a client may number
  its messages per room.
* ``seq`` is per room, starts at 1 and has no gaps, even with several servers writing
  (the counter lives in the ``rooms`` row, which the database locks for us).
* ``begin_append`` starts an append at once and returns its future: appends begun one
  after the other (in one room, by one store object) get increasing seqs in that order,
  which lets the server persist message *n + 1* while it still broadcasts message *n*.

Group commit (SQLite): appends that arrive while a transaction is being written wait,
then the next transaction takes all of them at once (one ``BEGIN IMMEDIATE`` ...
``COMMIT``, one trip to the database thread). Every promise above holds per message;
a failure fails every caller of that transaction with
[StoreUnavailable][tutorial.chat.store.StoreUnavailable], and
nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from tutorial import compat

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    salt TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    private BOOLEAN NOT NULL DEFAULT FALSE,
    last_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS room_members (
    room_id TEXT NOT NULL REFERENCES rooms(id),
    user_name TEXT NOT NULL REFERENCES users(name),
    PRIMARY KEY (room_id, user_name)
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    text TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    UNIQUE (room_id, seq),
    UNIQUE (room_id, user_name, client_msg_id)
);
"""

# Stores made before the dedup key included the room: (user_name, client_msg_id) was
# unique across rooms. Opening one moves it to the key above (see _migrate_*).
_OLD_DEDUP_COLUMNS = ("user_name", "client_msg_id")


class StoreUnavailable(Exception):
    """The database cannot be reached or refused a write: nothing was stored."""


@dataclass(frozen=True)
class Message:
    """A stored chat message: the payload of ``new-message``."""

    id: str
    room_id: str
    seq: int
    ts: int
    user: str
    text: str
    client_msg_id: str

    def row(self) -> tuple[str, str, int, int, str, str, str]:
        """The values of a ``messages`` row, in the order of its columns."""
        return (self.id, self.room_id, self.seq, self.ts, self.user, self.text, self.client_msg_id)

    def to_event(self) -> dict[str, Any]:
        return {
            "roomId": self.room_id,
            "id": self.id,
            "seq": self.seq,
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "clientMsgId": self.client_msg_id,
        }


@dataclass(frozen=True)
class Room:
    id: str
    private: bool
    members: frozenset[str]  # who may join a private room; empty for open rooms

    def admits(self, user: str) -> bool:
        return not self.private or user in self.members


@dataclass(frozen=True)
class UserRecord:
    name: str
    salt: str
    password_hash: str


@dataclass(frozen=True)
class AppendResult:
    message: Message
    duplicate: bool


def now_ms() -> int:
    return int(time.time() * 1000)


class Store(ABC):
    """What the chat server needs from a database."""

    url: str

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def setting(self, key: str, default: str) -> str:
        """The stored value of ``key``; stores ``default`` first if there is none."""

    @abstractmethod
    async def add_user(self, record: UserRecord) -> None: ...

    @abstractmethod
    async def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    async def add_room(self, room_id: str, private: bool, members: list[str]) -> None: ...

    @abstractmethod
    async def get_room(self, room_id: str) -> Room | None: ...

    @abstractmethod
    async def list_rooms(self) -> list[Room]: ...

    @abstractmethod
    async def append(
        self, room_id: str, user: str, text: str, client_msg_id: str
    ) -> AppendResult: ...

    def begin_append(
        self, room_id: str, user: str, text: str, client_msg_id: str
    ) -> asyncio.Future[AppendResult]:
        """Start ``append`` now; appends begun in turn get seqs in that order (per room).

        This default runs one append per room at a time (a FIFO lock); a store that
        queues its writes in order ([SQLiteStore][tutorial.chat.store.SQLiteStore]) overrides it.
        """
        locks: dict[str, asyncio.Lock] | None = getattr(self, "_append_locks", None)
        if locks is None:
            locks = {}
            self._append_locks = locks
        lock = locks.get(room_id)
        if lock is None:
            lock = locks[room_id] = asyncio.Lock()

        async def run(lock: asyncio.Lock = lock) -> AppendResult:
            async with lock:  # asyncio.Lock wakes its waiters first come, first served
                return await self.append(room_id, user, text, client_msg_id)

        # Tasks start in the order they are created, so they queue on the lock in order.
        return asyncio.ensure_future(run())

    @abstractmethod
    async def history(
        self, room_id: str, since: int | None = None, limit: int = 50, at_least: int | None = None
    ) -> list[Message]:
        """Messages of a room in seq order: the last ``limit``, or those after ``since``.

        ``at_least``: the caller knows seq ``at_least`` exists (read-your-writes). One
        database is never behind itself, so only a store that reads from replicas
        ([ReplicatedPostgresStore][tutorial.chat.replicas.ReplicatedPostgresStore]) looks at it.
        """

    @abstractmethod
    async def count_messages(self) -> int: ...

    def read_stats(self) -> dict[str, Any]:
        """Where history reads went (a store with read replicas); ``{}`` otherwise."""
        return {}


def _message(row: Any) -> Message:
    return Message(
        id=row[0],
        room_id=row[1],
        seq=int(row[2]),
        ts=int(row[3]),
        user=row[4],
        text=row[5],
        client_msg_id=row[6],
    )


_COLUMNS = "id, room_id, seq, ts, user_name, text, client_msg_id"


class SQL:
    """The one query set both back ends run, written with ``?`` placeholders (SQLite's);
    [numbered][tutorial.chat.store.numbered] gives PostgreSQL's ``$1, $2, ...``."""

    SETTING_ADD = "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
    SETTING = "SELECT value FROM settings WHERE key = ?"
    USER_PUT = (
        "INSERT INTO users (name, salt, password_hash) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET salt = excluded.salt, "
        "password_hash = excluded.password_hash"
    )
    USER = "SELECT name, salt, password_hash FROM users WHERE name = ?"
    ROOM_PUT = (
        "INSERT INTO rooms (id, private) VALUES (?, ?) "
        "ON CONFLICT (id) DO UPDATE SET private = excluded.private"
    )
    MEMBER_ADD = (
        "INSERT INTO room_members (room_id, user_name) VALUES (?, ?) ON CONFLICT DO NOTHING"
    )
    ROOM = "SELECT id, private FROM rooms WHERE id = ?"
    MEMBERS = "SELECT user_name FROM room_members WHERE room_id = ?"
    ROOM_IDS = "SELECT id FROM rooms ORDER BY id"
    FIND = (
        f"SELECT {_COLUMNS} FROM messages WHERE room_id = ? AND user_name = ? AND client_msg_id = ?"
    )
    NEXT_SEQ = "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq"
    INSERT = f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    SINCE = f"SELECT {_COLUMNS} FROM messages WHERE room_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    LAST = (
        f"SELECT * FROM (SELECT {_COLUMNS} FROM messages WHERE room_id = ? "
        "ORDER BY seq DESC LIMIT ?) AS recent ORDER BY seq"
    )
    COUNT = "SELECT COUNT(*) FROM messages"


def numbered(sql: str) -> str:
    """``sql`` with each ``?`` placeholder numbered for asyncpg: ``$1``, ``$2``, ..."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, 1))


@dataclass
class _PendingAppend:
    room_id: str
    user: str
    text: str
    client_msg_id: str
    future: asyncio.Future[AppendResult]


def _commit_batch(
    conn: sqlite3.Connection, batch: list[_PendingAppend]
) -> list[AppendResult | StoreUnavailable]:
    """One transaction for a whole batch (runs in aiosqlite's thread).

    Per message, in order: the duplicate check (earlier in this batch, then in the
    database), the room's next seq, the INSERT. An unknown room fails only its own
    message (it changed nothing); any database error rolls the whole batch back and
    raises, which fails every caller of it.
    """
    outcomes: list[AppendResult | StoreUnavailable] = []
    seen: dict[tuple[str, str, str], Message] = {}
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            ts = now_ms()
            for item in batch:
                key = (item.room_id, item.user, item.client_msg_id)
                known = seen.get(key)
                if known is None:
                    row = conn.execute(SQL.FIND, key).fetchone()
                    known = _message(row) if row else None
                if known is not None:
                    seen[key] = known
                    outcomes.append(AppendResult(known, duplicate=True))
                    continue
                row = conn.execute(SQL.NEXT_SEQ, (item.room_id,)).fetchone()
                if row is None:
                    outcomes.append(StoreUnavailable(f"no room {item.room_id}"))
                    continue
                message = Message(
                    uuid.uuid4().hex,
                    item.room_id,
                    int(row[0]),
                    ts,
                    item.user,
                    item.text,
                    item.client_msg_id,
                )
                conn.execute(SQL.INSERT, message.row())
                seen[key] = message
                outcomes.append(AppendResult(message, duplicate=False))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except (sqlite3.Error, ValueError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    return outcomes


class SQLiteStore(Store):
    """The embedded store: one SQLite file in WAL mode, one connection, one writer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        # Group commit: appends waiting for the next transaction, and the task writing.
        self._pending: list[_PendingAppend] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    async def open(self) -> None:
        """Open (or create) the file; raise StoreUnavailable, having closed it again,
        when it cannot be created or is not a SQLite database of ours."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = await aiosqlite.connect(self.path, isolation_level=None, timeout=5)
            await self._prepare()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreUnavailable(f"{self.path}: {exc}") from exc

    async def _prepare(self) -> None:
        assert self._db is not None
        await self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every COMMIT fsyncs the WAL, so an acknowledged message survives a power
        # cut, not only a crash of this process (NORMAL in WAL mode promises only that).
        # The group commit keeps it to one fsync per batch of appends.
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.executescript(SCHEMA)
        await self._migrate_sqlite()

    async def _migrate_sqlite(self) -> None:
        """Rebuild ``messages`` with the per-room dedup key if it has the old one.

        SQLite cannot drop a table constraint: the table is copied into a new one with
        the current definition, in one transaction.
        """
        async with self.db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ) as c:
            row = await c.fetchone()
        definition = " ".join(str(row[0]).split()) if row else ""
        if "UNIQUE (user_name, client_msg_id)" not in definition:
            return
        create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS messages") :]
        create = create.replace("IF NOT EXISTS messages", "messages_new", 1)
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(create.strip().rstrip(";"))
                await self.db.execute(
                    f"INSERT INTO messages_new ({_COLUMNS}) SELECT {_COLUMNS} FROM messages"
                )
                await self.db.execute("DROP TABLE messages")
                await self.db.execute("ALTER TABLE messages_new RENAME TO messages")
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            # Appends already begun are written (or fail) before the connection goes.
            await asyncio.wait([writer])
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def setting(self, key: str, default: str) -> str:
        async with self._write_lock:
            await self.db.execute(SQL.SETTING_ADD, (key, default))
            async with self.db.execute(SQL.SETTING, (key,)) as c:
                row = await c.fetchone()
        assert row is not None
        return str(row[0])

    async def add_user(self, record: UserRecord) -> None:
        async with self._write_lock:
            await self.db.execute(SQL.USER_PUT, (record.name, record.salt, record.password_hash))

    async def get_user(self, name: str) -> UserRecord | None:
        async with self.db.execute(SQL.USER, (name,)) as c:
            row = await c.fetchone()
        return UserRecord(*row) if row else None

    async def add_room(self, room_id: str, private: bool, members: list[str]) -> None:
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(SQL.ROOM_PUT, (room_id, private))
                await self.db.executemany(SQL.MEMBER_ADD, [(room_id, m) for m in members])
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    async def get_room(self, room_id: str) -> Room | None:
        async with self.db.execute(SQL.ROOM, (room_id,)) as c:
            row = await c.fetchone()
        if row is None:
            return None
        async with self.db.execute(SQL.MEMBERS, (room_id,)) as c:
            members = frozenset(r[0] for r in await c.fetchall())
        return Room(row[0], bool(row[1]), members)

    async def list_rooms(self) -> list[Room]:
        async with self.db.execute(SQL.ROOM_IDS) as c:
            ids = [r[0] for r in await c.fetchall()]
        rooms = [await self.get_room(i) for i in ids]
        return [r for r in rooms if r is not None]

    async def append(self, room_id: str, user: str, text: str, client_msg_id: str) -> AppendResult:
        return await self.begin_append(room_id, user, text, client_msg_id)

    def begin_append(
        self, room_id: str, user: str, text: str, client_msg_id: str
    ) -> asyncio.Future[AppendResult]:
        """Queue the append for the next group commit; FIFO, so seqs follow call order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        if self._db is None:
            future.set_exception(StoreUnavailable("store is not open"))
            return future
        self._pending.append(_PendingAppend(room_id, user, text, client_msg_id, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending())
        return future

    async def _write_pending(self) -> None:
        """Commit what is pending, one transaction per round, until nothing is left."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._write_lock:
                    # The whole transaction is one trip to aiosqlite's thread instead of
                    # one per statement (through the seam: aiosqlite's private queue).
                    outcomes = await compat.run_in_connection_thread(self.db, _commit_batch, batch)
            except BaseException as exc:
                failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(failure)
                if not isinstance(exc, Exception):
                    # Cancelled: whatever is still pending fails too, nobody waits forever.
                    for item in self._pending:
                        if not item.future.done():
                            item.future.set_exception(StoreUnavailable("store closed"))
                    self._pending = []
                    raise
                continue
            for item, outcome in zip(batch, outcomes, strict=True):
                if item.future.done():
                    continue
                if isinstance(outcome, AppendResult):
                    item.future.set_result(outcome)
                else:
                    item.future.set_exception(outcome)

    async def history(
        self, room_id: str, since: int | None = None, limit: int = 50, at_least: int | None = None
    ) -> list[Message]:
        sql, args = _history(room_id, since, limit)
        try:
            async with self.db.execute(sql, args) as c:
                return [_message(r) for r in await c.fetchall()]
        except (aiosqlite.OperationalError, ValueError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def count_messages(self) -> int:
        async with self.db.execute(SQL.COUNT) as c:
            row = await c.fetchone()
        return int(row[0]) if row else 0


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises when a PostgreSQL server cannot serve us: refused, gone,
    shutting down or starting up (``57P0x``), read-only (a standby, while a primary is
    being promoted), or no host of a multi-host URL matching ``target_session_attrs``."""
    import asyncpg
    from asyncpg import exceptions as e

    return (
        TimeoutError,
        OSError,
        asyncpg.PostgresConnectionError,
        e.InterfaceError,
        e.OperatorInterventionError,
        e.ReadOnlySQLTransactionError,
        e.TargetServerAttributeNotMatched,
    )


class PostgresStore(Store):
    """PostgreSQL through an asyncpg pool; several servers may share one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def open(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=10, timeout=5)
            async with self._pool.acquire() as con:
                await con.execute("SELECT pg_advisory_lock(7270001)")
                try:
                    await con.execute(SCHEMA)
                    await _migrate_postgres(con)
                finally:
                    await con.execute("SELECT pg_advisory_unlock(7270001)")
        except (asyncpg.PostgresError, ValueError, *unavailable_errors()) as exc:
            # Refused, unreachable, a bad URL, a refused login: nothing stays open behind us.
            await self.close()
            raise StoreUnavailable(f"PostgreSQL at {_without_password(self.url)}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _run(self, fn: Any) -> Any:

        if self._pool is None:
            raise StoreUnavailable("store is not open")
        try:
            async with self._pool.acquire(timeout=5) as con:
                return await fn(con)
        except unavailable_errors() as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def setting(self, key: str, default: str) -> str:
        async def run(con: Any) -> str:
            await con.execute(numbered(SQL.SETTING_ADD), key, default)
            return str(await con.fetchval(numbered(SQL.SETTING), key))

        return str(await self._run(run))

    async def add_user(self, record: UserRecord) -> None:
        await self._run(
            lambda con: con.execute(
                numbered(SQL.USER_PUT), record.name, record.salt, record.password_hash
            )
        )

    async def get_user(self, name: str) -> UserRecord | None:
        row = await self._run(lambda con: con.fetchrow(numbered(SQL.USER), name))
        return UserRecord(row[0], row[1], row[2]) if row else None

    async def add_room(self, room_id: str, private: bool, members: list[str]) -> None:
        async def run(con: Any) -> None:
            async with con.transaction():
                await con.execute(numbered(SQL.ROOM_PUT), room_id, private)
                await con.executemany(numbered(SQL.MEMBER_ADD), [(room_id, m) for m in members])

        await self._run(run)

    async def get_room(self, room_id: str) -> Room | None:
        async def run(con: Any) -> Room | None:
            row = await con.fetchrow(numbered(SQL.ROOM), room_id)
            if row is None:
                return None
            members = await con.fetch(numbered(SQL.MEMBERS), room_id)
            return Room(row[0], bool(row[1]), frozenset(r[0] for r in members))

        result: Room | None = await self._run(run)
        return result

    async def list_rooms(self) -> list[Room]:
        ids = await self._run(lambda con: con.fetch(SQL.ROOM_IDS))
        rooms = [await self.get_room(r[0]) for r in ids]
        return [r for r in rooms if r is not None]

    async def append(self, room_id: str, user: str, text: str, client_msg_id: str) -> AppendResult:
        import asyncpg

        find = numbered(SQL.FIND)

        async def run(con: Any) -> AppendResult:
            existing = await con.fetchrow(find, room_id, user, client_msg_id)
            if existing is not None:
                return AppendResult(_message(existing), duplicate=True)
            try:
                async with con.transaction():
                    seq = await con.fetchval(numbered(SQL.NEXT_SEQ), room_id)
                    if seq is None:
                        raise StoreUnavailable(f"no room {room_id}")
                    message = Message(
                        uuid.uuid4().hex, room_id, int(seq), now_ms(), user, text, client_msg_id
                    )
                    await con.execute(numbered(SQL.INSERT), *message.row())
                return AppendResult(message, duplicate=False)
            except asyncpg.UniqueViolationError:
                # The same (room, user, clientMsgId) committed by another server meanwhile.
                row = await con.fetchrow(find, room_id, user, client_msg_id)
                return AppendResult(_message(row), duplicate=True)

        result: AppendResult = await self._run(run)
        return result

    async def history(
        self, room_id: str, since: int | None = None, limit: int = 50, at_least: int | None = None
    ) -> list[Message]:
        return await self.history_on(self._run, room_id, since, limit)

    @staticmethod
    async def history_on(
        run: Callable[[Any], Awaitable[Any]], room_id: str, since: int | None, limit: int
    ) -> list[Message]:
        """The history query, run by ``run`` (this pool's, or a read replica's)."""
        sql, args = _history(room_id, since, limit)
        rows = await run(lambda con: con.fetch(numbered(sql), *args))
        return [_message(r) for r in rows]

    async def count_messages(self) -> int:
        return int(await self._run(lambda con: con.fetchval(SQL.COUNT)))


def _history(room_id: str, since: int | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The history query and its arguments: after ``since``, or the last ``limit``."""
    if since is not None:
        return SQL.SINCE, (room_id, since, limit)
    return SQL.LAST, (room_id, limit)


async def _migrate_postgres(con: Any) -> None:
    """Move an old ``UNIQUE (user_name, client_msg_id)`` to the per-room dedup key."""
    rows = await con.fetch(
        "SELECT c.conname, array_agg(a.attname::text ORDER BY k.ord) AS columns "
        "FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = 'messages'::regclass AND c.contype = 'u' "
        "GROUP BY c.conname"
    )
    for row in rows:
        if tuple(row["columns"]) == _OLD_DEDUP_COLUMNS:
            await con.execute(
                f'ALTER TABLE messages DROP CONSTRAINT "{row["conname"]}", '
                "ADD CONSTRAINT messages_room_id_user_name_client_msg_id_key "
                "UNIQUE (room_id, user_name, client_msg_id)"
            )


def _without_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages)."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return url if password is None else url.replace(f":{password}@", ":***@", 1)


def open_store(url: str, read_urls: Sequence[str] = ()) -> Store:
    """A store for ``url`` (not yet opened): ``sqlite:///PATH`` or ``postgresql://...``.

    ``read_urls``: PostgreSQL hot standbys of that database; history is then read from
    them ([ReplicatedPostgresStore][tutorial.chat.replicas.ReplicatedPostgresStore]).
    """
    if url.startswith(("postgresql://", "postgres://")):
        if read_urls:
            from tutorial.chat.replicas import ReplicatedPostgresStore

            return ReplicatedPostgresStore(url, read_urls)
        return PostgresStore(url)
    if read_urls:
        raise ValueError("read replicas need a postgresql:// store")
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if "://" not in url:
        return SQLiteStore(url)
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


def new_secret() -> str:
    return secrets.token_urlsafe(32)
