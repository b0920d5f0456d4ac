"""The seed's cast (diagram 4): seven users and four rooms, two of them private."""

from __future__ import annotations

import functools

from tutorial.chat.auth import make_user
from tutorial.chat.store import Store, UserRecord

USERS: tuple[str, ...] = ("alice", "bob", "charlie", "diana", "eve", "frank", "grace")

# room id -> members allowed in a private room (None: open to everybody)
ROOMS: dict[str, tuple[str, ...] | None] = {
    "general": None,
    "tech-talk": None,
    "private-chat": ("alice", "charlie"),
    "project-alpha": ("bob", "diana", "grace"),
}

# Who sits where in the seed's picture of diagram 4.
SEED_MEMBERSHIP: dict[str, tuple[str, ...]] = {
    "general": ("alice", "bob", "eve"),
    "tech-talk": ("charlie", "diana", "frank"),
    "private-chat": ("alice", "charlie"),
    "project-alpha": ("bob", "diana", "grace"),
}


def demo_password(user: str) -> str:
    """Demo mode only: every password equals the user name."""
    return user


@functools.cache
def demo_user(name: str) -> UserRecord:
    """``name``'s demo record, hashed once per process.

    scrypt is slow on purpose (tens of milliseconds, several times that on a busy
    machine), and every demo server a notebook or a scenario starts seeds all seven
    users: hashing them once saves seven hashes per server start. The passwords are
    public (the user names), so sharing a salt between throwaway demo stores costs
    nothing.
    """
    return make_user(name, demo_password(name))


async def seed_demo(store: Store) -> None:
    """Create the demo users and rooms (idempotent)."""
    for name in USERS:
        if await store.get_user(name) is None:
            await store.add_user(demo_user(name))
    for room_id, members in ROOMS.items():
        await store.add_room(room_id, private=members is not None, members=list(members or ()))
