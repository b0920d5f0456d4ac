"""The seed's cast (diagram 4): seven users and four rooms, two of them private."""

from __future__ import annotations

from tutorial.chat.auth import make_user
from tutorial.chat.store import Store

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


async def seed_demo(store: Store) -> None:
    """Create the demo users and rooms (idempotent)."""
    for name in USERS:
        if await store.get_user(name) is None:
            await store.add_user(make_user(name, demo_password(name)))
    for room_id, members in ROOMS.items():
        await store.add_room(room_id, private=members is not None, members=list(members or ()))
