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


DEMO_HASHES: dict[str, tuple[str, str]] = {
    "alice": (
        "d6fc4c694ce805d205b1a000899510f2",
        "eefcee6898ca588f7ff69ea047688208198aabd5565b6b9a76de82b7fb73e595",
    ),
    "bob": (
        "2c3df963cf04fe787a03c021e8b9cad2",
        "ce60108f44953bec658eb4e7b55dd516197b4e3612a1bca872668921567d766f",
    ),
    "charlie": (
        "89d79404a1c25128ae85d36dc1ae092a",
        "7f3ddc6536072c4bb9ae2064ef6d8ab807efc09fa07721e413d86c8ef37d897b",
    ),
    "diana": (
        "94ae12a46310320774fb93a44bfe5ca4",
        "2c7f6a6677d724384679a6dd4552c8b2993e9950b8469da1d51131afac14410c",
    ),
    "eve": (
        "5d372e99e1c79798fc6f1aa7c881f5dd",
        "2dc4866abd0bc97ef1ef7dfee4d77d1ab184f511f2fff59aa1fa39a559bb9934",
    ),
    "frank": (
        "1a65f2df95475c99ac0536c57b78c3e8",
        "adf01ed4762c5a3d8120b5f1da45ca2943dbbd864002c5c2b24de32906ef44f9",
    ),
    "grace": (
        "8331d0ae646d0e5900ade632fdc74436",
        "6092beeee0b0f0b29ba231cc164ac76a401478a7976bedef5b9327ceea3b5585",
    ),
}
"""``name -> (salt, scrypt hash)`` of each demo password, worked out once and written
here (tests/test_demo_users.py checks each against ``hash_password``)."""


@functools.cache
def demo_user(name: str) -> UserRecord:
    """``name``'s demo record: no hashing at all at start.

    scrypt is slow on purpose (tens of milliseconds, several times that on a busy
    machine), and every demo server a notebook, a scenario or a cluster starts seeds
    all seven users: seven hashes per server process (0.5 s of CPU; a cluster starts
    three at once). The passwords are public (the user names), so their hashes are
    worked out once and written in [DEMO_HASHES][tutorial.chat.demo.DEMO_HASHES]; a
    login still checks its password with scrypt.
    """
    if name in DEMO_HASHES:
        salt, digest = DEMO_HASHES[name]
        return UserRecord(name, salt, digest)
    return make_user(name, demo_password(name))


async def seed_demo(store: Store) -> None:
    """Create the demo users and rooms (idempotent)."""
    for name in USERS:
        if await store.get_user(name) is None:
            await store.add_user(demo_user(name))
    for room_id, members in ROOMS.items():
        await store.add_room(room_id, private=members is not None, members=list(members or ()))
