"""Presence: who is in which room, per *user*, across every server of a cluster.

A user may have several connections (tabs, devices) in one room. The room sees them as
one person: ``user-joined`` when the user's first connection joins, ``user-left`` when
the last one goes, and nothing in between. That keeps presence traffic linear: a user
who opens a thousand sockets in a room costs the room one ``user-joined`` and one
``user-left``, not a thousand of each to every member.

Two levels:

* **This server** ([Presence][tutorial.chat.presence.Presence]): ``room -> user -> {sid}``. A
connection joining
  or leaving changes the set; only the first add and the last remove of a user are
  *transitions*, and only those reach the cluster level.
* **The cluster**: one server needs nothing more. With ``--redis`` the servers share
  [RedisPresence][tutorial.chat.presence.RedisPresence]: a hash per room counts, per user, the
  servers that have her
  in the room (``HINCRBY``, atomic), so the first server to add her announces
  ``user-joined`` and the last to remove her announces ``user-left``; ``members`` is
  that hash's keys, so ``room-joined`` lists the members on every server.

A server that dies without saying goodbye (``kill -9``) leaves its counts behind. Each
server keeps a heartbeat key with a time to live and a set of what it contributed; a
live server that finds a dead server's set takes its contributions back and announces
the users that thereby left. If Redis itself restarts empty, each server notices its
heartbeat gone and puts back what it holds.

A missing heartbeat proves a death only if Redis could be reached all the while. In a
Redis failover nobody can write until a Sentinel has promoted a replica and the
servers have found it, one by one; when that outlasts the time to live, the promoted
replica has expired *every* heartbeat, and the first server back would reap the others
and announce ``user-left`` for users who never left. So a server reaps only after it
has itself been in contact with Redis for a whole time to live (``TTL``): its beats
all succeeded, none more than ``2 * HEARTBEAT`` apart, and Redis still knew its own
heartbeat. Any server alive in that window has beaten again by then. A real death is
then announced at most one ``TTL`` later than without an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("tutorial.chat.presence")


class Presence:
    """This server's presence, and (for one server) the cluster's too."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[str]]] = {}

    # -- this server -------------------------------------------------------------------

    def add(self, room: str, user: str, sid: str) -> bool:
        """Record ``sid`` of ``user`` in ``room``; True if it is her first one here."""
        users = self._rooms.setdefault(room, {})
        sids = users.setdefault(user, set())
        first = not sids
        sids.add(sid)
        return first

    def remove(self, room: str, user: str, sid: str) -> bool:
        """Forget ``sid``; True if it was her last connection in ``room`` here."""
        users = self._rooms.get(room)
        if users is None or sid not in users.get(user, ()):
            return False
        sids = users[user]
        sids.discard(sid)
        if sids:
            return False
        del users[user]
        if not users:
            del self._rooms[room]
        return True

    def local_members(self, room: str) -> list[str]:
        return sorted(self._rooms.get(room, {}))

    def connections(self, room: str, user: str) -> int:
        return len(self._rooms.get(room, {}).get(user, ()))

    def held(self) -> list[tuple[str, str]]:
        """Every (room, user) this server has at least one connection for."""
        return sorted((room, user) for room, users in self._rooms.items() for user in users)

    # -- the cluster (one server: this server is the cluster) ---------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def joined(self, room: str, user: str) -> bool:
        """This server's first connection of ``user`` in ``room``: announce it?"""
        return True

    async def left(self, room: str, user: str) -> bool:
        """This server's last connection of ``user`` in ``room`` went: announce it?"""
        return True

    async def members(self, room: str) -> list[str]:
        return self.local_members(room)

    async def withdraw(self) -> list[tuple[str, str]]:
        """Shutting down: take back everything; the (room, user) pairs that left."""
        return []


# Lua scripts run atomically in Redis: the count and the server's own record move together.
_JOIN = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  return redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
return -1
"""
_LEAVE = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  local n = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
  if n <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
  return n
end
return -1
"""
# Take back every contribution of a dead server; return the "room\\0user" that left.
_REAP = """
local gone = {}
for _, item in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local sep = string.find(item, '\\0', 1, true)
  local room = string.sub(item, 1, sep - 1)
  local user = string.sub(item, sep + 1)
  local key = ARGV[1] .. room
  local n = redis.call('HINCRBY', key, user, -1)
  if n <= 0 then
    redis.call('HDEL', key, user)
    table.insert(gone, item)
  end
end
redis.call('DEL', KEYS[1])
return gone
"""

Announce = Callable[[str, str], Awaitable[None]]


class RedisPresence(Presence):
    """Presence shared by every server through Redis (see the module docstring)."""

    PREFIX = "tutorial:presence:"
    HEARTBEAT = 2.0  # seconds between heartbeats
    TTL = 6  # a server whose heartbeat is older than this is dead

    def __init__(
        self,
        url: str,
        announce_left: Announce | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.url = url
        self.clock = clock
        """Seconds, for the heartbeat's bookkeeping (a test may drive its own)."""
        self.server_id = uuid.uuid4().hex[:12]
        self.announce_left = announce_left
        self.redis: Any = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}
        self.reaped = 0
        self._last_beat: float | None = None  # when the last beat succeeded
        self._contact_since: float | None = None  # start of unbroken contact with Redis

    # -- keys ------------------------------------------------------------------------

    def _room_key(self, room: str) -> str:
        return f"{self.PREFIX}room:{room}"

    def _own_key(self, server_id: str | None = None) -> str:
        return f"{self.PREFIX}server:{server_id or self.server_id}"

    def _alive_key(self, server_id: str | None = None) -> str:
        return f"{self.PREFIX}alive:{server_id or self.server_id}"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.redis = connect_redis(self.url)
        self._scripts = {
            "join": self.redis.register_script(_JOIN),
            "leave": self.redis.register_script(_LEAVE),
            "reap": self.redis.register_script(_REAP),
        }
        with contextlib.suppress(Exception):
            await self.beat()
        self._task = asyncio.create_task(self._heartbeat())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.delete(self._alive_key())
            with contextlib.suppress(Exception):
                await self.redis.aclose()
            self.redis = None

    async def beat(self) -> None:
        """One heartbeat: refresh this server's key; after Redis forgot it, put back what
        this server holds; take back the contributions of dead servers. Raises when Redis
        cannot be reached (the heartbeat task tries again at its next beat)."""
        redis = self.redis
        try:
            alive = await redis.set(self._alive_key(), str(time.time()), ex=self.TTL, get=True)
        except Exception:
            self._contact_since = None
            raise
        now = self.clock()
        last, self._last_beat = self._last_beat, now
        broken = alive is None or last is None or now - last > 2 * self.HEARTBEAT
        if broken or self._contact_since is None:
            self._contact_since = now  # contact (re)starts: others may not be back yet
        if alive is None and self.held():
            async with self._lock:
                for room, user in self.held():
                    await self._scripts["join"](
                        keys=[self._own_key(), self._room_key(room)], args=[f"{room}\0{user}", user]
                    )
            log.warning(
                "presence: Redis had forgotten this server; %d entries restored", len(self.held())
            )
        if now - self._contact_since >= self.TTL:
            await self._reap_dead()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.HEARTBEAT)
            try:
                await self.beat()
            except Exception as exc:  # Redis away: try again next beat
                log.debug("presence heartbeat failed: %s", exc)

    async def _reap_dead(self) -> None:
        """Take back the contributions of servers whose heartbeat expired."""
        redis = self.redis
        async for key in redis.scan_iter(match=f"{self.PREFIX}server:*", count=100):
            server_id = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1]
            if server_id == self.server_id or await redis.exists(self._alive_key(server_id)):
                continue
            async with self._lock:
                gone = await self._scripts["reap"](
                    keys=[self._own_key(server_id)], args=[f"{self.PREFIX}room:"]
                )
            self.reaped += 1
            for item in gone:
                text = item.decode() if isinstance(item, bytes) else item
                room, _, user = text.partition("\0")
                if self.announce_left is not None:
                    await self.announce_left(room, user)

    # -- transitions -------------------------------------------------------------------

    async def joined(self, room: str, user: str) -> bool:
        try:
            async with self._lock:
                n = await self._scripts["join"](
                    keys=[self._own_key(), self._room_key(room)], args=[f"{room}\0{user}", user]
                )
        except Exception as exc:  # Redis away: decide locally
            log.warning("presence: Redis unreachable (%s); announcing from this server", exc)
            return True
        return int(n) == 1

    async def left(self, room: str, user: str) -> bool:
        try:
            async with self._lock:
                n = await self._scripts["leave"](
                    keys=[self._own_key(), self._room_key(room)], args=[f"{room}\0{user}", user]
                )
        except Exception as exc:
            log.warning("presence: Redis unreachable (%s); announcing from this server", exc)
            return True
        return int(n) == 0

    async def members(self, room: str) -> list[str]:
        try:
            names = await self.redis.hkeys(self._room_key(room))
        except Exception:
            return self.local_members(room)
        users = {n.decode() if isinstance(n, bytes) else n for n in names}
        return sorted(users | set(self.local_members(room)))

    async def withdraw(self) -> list[tuple[str, str]]:
        gone = []
        for room, user in self.held():
            if await self.left(room, user):
                gone.append((room, user))
        self._rooms.clear()
        return gone


class RedisUnavailable(Exception):
    """Redis could not be reached when a server started (it refuses to start without it)."""


async def reach_redis(url: str, timeout: float = 3.0) -> None:
    """PING Redis at ``url`` once; raise RedisUnavailable naming it if nothing answers
    within ``timeout`` seconds. Without this check python-socketio's manager would
    retry in the background while the server said it was listening."""
    from redis.exceptions import RedisError

    client = connect_redis(url)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except (OSError, TimeoutError, ValueError, RedisError) as exc:
        reason = str(exc) or type(exc).__name__
        raise RedisUnavailable(f"cannot reach Redis at {url}: {reason}") from exc
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def connect_redis(url: str) -> Any:
    """A redis-py asyncio client for ``redis://`` / ``rediss://`` / ``redis+sentinel://``."""
    from redis import asyncio as aioredis

    if url.startswith("redis+sentinel://") or url.startswith("valkey+sentinel://"):
        from tutorial import compat

        sentinels, service, options = compat.parse_redis_sentinel_url(url)
        sentinel = aioredis.Sentinel(sentinels, **options)
        return sentinel.master_for(service or "socketio")  # as python-socketio defaults
    return aioredis.Redis.from_url(url)
