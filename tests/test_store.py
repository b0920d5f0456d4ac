"""The store contract, run against both back ends: SQLite (a file) and PostgreSQL (a
throwaway server, :mod:`tests.pg`).

* ``seq`` is per room, starts at 1, has no gaps and no repeats, also under concurrent
  appends from several tasks, and (PostgreSQL) from two store objects = two servers;
* exactly-once by ``(room, user, clientMsgId)`` (and an old store with the
  cross-room key is moved to it on open);
* SQLite acknowledges only what is fsynced (``synchronous=FULL``);
* history: the last 50, or what came after ``since``;
* a store that is down raises :class:`StoreUnavailable`, and works again once it is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.pg import postgres, postgres_url  # noqa: F401
from tutorial.chat.store import SCHEMA, SQLiteStore, Store, StoreUnavailable, open_store
from tutorial.cluster.postgres import TempPostgres

pytestmark = pytest.mark.timeout(60)

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_stores(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[OpenStore]:
    """A factory: each call opens one more store object on the same database."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/chat.db"
    else:
        url = request.getfixturevalue("postgres_url")
    opened: list[Store] = []

    async def make() -> Store:
        store = open_store(url)
        await store.open()
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def new_room(store: Store) -> str:
    room = unique("room")
    await store.add_room(room, private=False, members=[])
    return room


async def test_seq_starts_at_one_per_room(open_stores: OpenStore) -> None:
    store = await open_stores()
    room_a, room_b = await new_room(store), await new_room(store)
    a1 = await store.append(room_a, "alice", "one", unique("m"))
    b1 = await store.append(room_b, "alice", "uno", unique("m"))
    a2 = await store.append(room_a, "bob", "two", unique("m"))
    assert (a1.message.seq, a2.message.seq, b1.message.seq) == (1, 2, 1)
    assert not a1.duplicate and a1.message.user == "alice" and a1.message.ts > 0


async def test_concurrent_appends_no_gaps(open_stores: OpenStore) -> None:
    store = await open_stores()
    room = await new_room(store)
    results = await asyncio.gather(
        *(store.append(room, f"user{i % 4}", f"text {i}", unique("m")) for i in range(60))
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 61))
    assert [m.seq for m in await store.history(room, limit=100)] == list(range(1, 61))


@pytest.mark.postgres
async def test_two_servers_share_one_counter(postgres_url: str) -> None:  # noqa: F811
    """Two store objects (two servers' pools) appending to one room at once."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    await first.open()
    await second.open()
    try:
        room = await new_room(first)
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).append(room, "alice", f"t{i}", unique("m"))
                for i in range(80)
            )
        )
        assert sorted(r.message.seq for r in results) == list(range(1, 81))
        # The same clientMsgId through both servers at once: stored once.
        cid = unique("same")
        both = await asyncio.gather(
            first.append(room, "bob", "hello", cid), second.append(room, "bob", "hello", cid)
        )
        assert both[0].message.id == both[1].message.id
        assert sorted(r.duplicate for r in both) == [False, True]
        assert len(await second.history(room, since=80)) == 1
    finally:
        await first.close()
        await second.close()


async def test_exactly_once_by_user_and_client_msg_id(open_stores: OpenStore) -> None:
    store = await open_stores()
    room = await new_room(store)
    cid = unique("m")
    first = await store.append(room, "alice", "hello", cid)
    again = await store.append(room, "alice", "hello (resent)", cid)
    other_user = await store.append(room, "bob", "hello", cid)
    assert again.duplicate and again.message == first.message
    assert not other_user.duplicate and other_user.message.seq == 2
    assert [m.text for m in await store.history(room)] == ["hello", "hello"]


async def test_history_last_50_and_since(open_stores: OpenStore) -> None:
    store = await open_stores()
    room = await new_room(store)
    for i in range(1, 61):
        await store.append(room, "alice", f"m{i}", unique("m"))
    last = await store.history(room)
    assert [m.seq for m in last] == list(range(11, 61))
    assert [m.text for m in await store.history(room, since=55)] == [f"m{i}" for i in range(56, 61)]
    assert [m.seq for m in await store.history(room, since=0, limit=5)] == [1, 2, 3, 4, 5]
    assert await store.history(room, since=60) == []
    assert await store.history(await new_room(store)) == []


async def test_sqlite_store_down(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/chat.db")
    await store.open()
    room = await new_room(store)
    await store.close()  # the database is gone for this server
    with pytest.raises(StoreUnavailable):
        await store.append(room, "alice", "lost?", unique("m"))
    await store.open()  # back
    try:
        result = await store.append(room, "alice", "back", unique("m"))
        assert result.message.seq == 1
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_store_down(postgres: TempPostgres) -> None:  # noqa: F811
    store = open_store(postgres.url)
    await store.open()
    try:
        room = await new_room(store)
        await store.append(room, "alice", "before", unique("m"))
        postgres.pause()
        try:
            with pytest.raises(StoreUnavailable):
                await store.append(room, "alice", "while down", unique("m"))
            with pytest.raises(StoreUnavailable):
                await store.history(room)
        finally:
            postgres.resume()
        # Back: the pool replaces its dead connections; an append may need a retry or two.
        for _attempt in range(12):
            try:
                result = await store.append(room, "alice", "after", unique("m"))
                break
            except StoreUnavailable:
                continue
        else:
            pytest.fail("the store did not come back")
        assert result.message.seq == 2
        assert [m.text for m in await store.history(room)] == ["before", "after"]
    finally:
        await store.close()


# -- group commit and begin_append ----------------------------------------------------


async def test_begin_append_gives_seqs_in_call_order(open_stores: OpenStore) -> None:
    """Appends begun in turn get consecutive seqs in that order (SQLite: one batch,
    as nothing ran in between; PostgreSQL: one at a time per room)."""
    store = await open_stores()
    room = await new_room(store)
    futures = [store.begin_append(room, f"user{i % 3}", f"t{i}", unique("m")) for i in range(12)]
    results = await asyncio.gather(*futures)
    assert [r.message.seq for r in results] == list(range(1, 13))
    assert [r.message.text for r in results] == [f"t{i}" for i in range(12)]
    assert [m.seq for m in await store.history(room)] == list(range(1, 13))


async def test_duplicate_inside_one_batch_is_stored_once(open_stores: OpenStore) -> None:
    store = await open_stores()
    room = await new_room(store)
    cid = unique("m")
    first, other, again = await asyncio.gather(
        store.begin_append(room, "alice", "hello", cid),
        store.begin_append(room, "bob", "hi", unique("m")),
        store.begin_append(room, "alice", "hello (resent)", cid),
    )
    assert not first.duplicate and not other.duplicate and again.duplicate
    assert again.message == first.message
    assert (first.message.seq, other.message.seq) == (1, 2)  # no gap for the duplicate
    assert [m.text for m in await store.history(room)] == ["hello", "hi"]


async def test_unknown_room_fails_only_its_own_append(open_stores: OpenStore) -> None:
    store = await open_stores()
    room = await new_room(store)
    good1 = store.begin_append(room, "alice", "one", unique("m"))
    bad = store.begin_append(unique("no-such-room"), "alice", "lost", unique("m"))
    good2 = store.begin_append(room, "alice", "two", unique("m"))
    with pytest.raises(StoreUnavailable):
        await bad
    assert [(await good1).message.seq, (await good2).message.seq] == [1, 2]


async def test_sqlite_failure_mid_batch_fails_the_whole_batch(tmp_path: Path) -> None:
    """A database error on one message of a group commit: every caller of that batch
    gets StoreUnavailable, nothing of it is stored, the seq counter is untouched."""
    store = open_store(f"sqlite:///{tmp_path}/chat.db")
    await store.open()
    try:
        room = await new_room(store)
        db = store.db  # type: ignore[attr-defined]
        await db.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.text = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
        batch = [
            store.begin_append(room, "alice", text, unique("m"))
            for text in ("before", "boom", "after")
        ]
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert await store.history(room) == []
        assert await store.count_messages() == 0
        # The next transaction works, and the counter starts from 1: no gap.
        result = await store.append(room, "alice", "later", unique("m"))
        assert result.message.seq == 1
    finally:
        await store.close()


async def test_sqlite_close_writes_appends_already_begun(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/chat.db"
    store = open_store(url)
    await store.open()
    room = await new_room(store)
    futures = [store.begin_append(room, "alice", f"t{i}", unique("m")) for i in range(5)]
    await store.close()
    assert [(await f).message.seq for f in futures] == [1, 2, 3, 4, 5]
    with pytest.raises(StoreUnavailable):
        await store.append(room, "alice", "closed", unique("m"))
    again = open_store(url)
    await again.open()
    try:
        assert [m.text for m in await again.history(room)] == [f"t{i}" for i in range(5)]
    finally:
        await again.close()


async def test_the_same_client_msg_id_in_another_room_is_another_message(
    open_stores: OpenStore,
) -> None:
    # A client that numbers its messages per room (m-1, m-2 ... in each room).
    store = await open_stores()
    room_a, room_b = await new_room(store), await new_room(store)
    cid = unique("m")
    in_a = await store.append(room_a, "alice", "hello a", cid)
    in_b = await store.append(room_b, "alice", "hello b", cid)
    again_b = await store.append(room_b, "alice", "hello b", cid)
    assert not in_a.duplicate and not in_b.duplicate
    assert (in_b.message.room_id, in_b.message.seq, in_b.message.text) == (room_b, 1, "hello b")
    assert again_b.duplicate and again_b.message == in_b.message
    assert [m.text for m in await store.history(room_b, since=0)] == ["hello b"]


OLD_SCHEMA = SCHEMA.replace(
    "UNIQUE (room_id, user_name, client_msg_id)", "UNIQUE (user_name, client_msg_id)"
)


async def test_a_store_with_the_old_dedup_key_is_moved_to_the_per_room_key(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert OLD_SCHEMA != SCHEMA
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
        conn = sqlite3.connect(tmp_path / "old.db")
        conn.executescript(OLD_SCHEMA)
        conn.execute("INSERT INTO rooms (id) VALUES ('general'), ('tech-talk')")
        conn.execute("INSERT INTO messages VALUES ('id1', 'general', 1, 1, 'alice', 'old', 'm-1')")
        conn.execute("UPDATE rooms SET last_seq = 1 WHERE id = 'general'")
        conn.commit()
        conn.close()
    else:
        import asyncpg

        base = request.getfixturevalue("postgres_url")
        name = unique("old").replace("-", "_")
        admin = await asyncpg.connect(base)
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        url = base.rsplit("/", 1)[0] + "/" + name
        con = await asyncpg.connect(url)
        try:
            await con.execute(OLD_SCHEMA)
            await con.execute("INSERT INTO rooms (id, last_seq) VALUES ('general', 1)")
            await con.execute("INSERT INTO rooms (id) VALUES ('tech-talk')")
            await con.execute(
                "INSERT INTO messages VALUES ('id1', 'general', 1, 1, 'alice', 'old', 'm-1')"
            )
        finally:
            await con.close()
    for _ in range(2):  # opening twice: the second time there is nothing to move
        store = open_store(url)
        await store.open()
        try:
            kept = await store.history("general", since=0)
            assert [(m.id, m.text) for m in kept] == [("id1", "old")]
            assert (await store.append("general", "alice", "old", "m-1")).duplicate
        finally:
            await store.close()
    store = open_store(url)
    await store.open()
    try:
        other_room = await store.append("tech-talk", "alice", "new", "m-1")
        assert not other_room.duplicate and other_room.message.seq == 1
    finally:
        await store.close()


async def test_sqlite_commits_are_flushed_to_disk_before_the_ack(tmp_path: Path) -> None:
    # synchronous=FULL: every COMMIT (one per group-commit batch) fsyncs the WAL, so
    # an acknowledged message survives a power cut, not only a crash of the process.
    store = open_store(f"sqlite:///{tmp_path}/chat.db")
    await store.open()
    try:
        assert isinstance(store, SQLiteStore)
        async with store.db.execute("PRAGMA synchronous") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == 2  # 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
        async with store.db.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == "wal"
    finally:
        await store.close()
