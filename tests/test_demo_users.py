"""The demo cast's hashes are written down (none is worked out at start), and its
passwords still check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutorial.chat import auth
from tutorial.chat.auth import check_password, hash_password
from tutorial.chat.demo import DEMO_HASHES, USERS, demo_user, seed_demo
from tutorial.chat.store import open_store


def test_each_demo_user_is_hashed_once_and_checks_only_its_own_password() -> None:
    for name in USERS:
        assert demo_user(name) is demo_user(name)
        assert check_password(demo_user(name), name)
        assert not check_password(demo_user(name), name + "!")
    assert len({demo_user(name).password_hash for name in USERS}) == len(USERS)


async def test_two_demo_stores_get_the_same_records_without_hashing_again(
    tmp_path: Path,
) -> None:
    records = []
    for n in range(2):
        store = open_store(f"sqlite:///{tmp_path / f'demo{n}.db'}")
        await store.open()
        try:
            await seed_demo(store)
            records.append(await store.get_user("alice"))
        finally:
            await store.close()
    assert records[0] == records[1] == demo_user("alice")


def test_the_written_hashes_are_each_users_own_password_hashed_with_todays_parameters() -> None:
    assert sorted(DEMO_HASHES) == sorted(USERS)
    for name, (salt, digest) in DEMO_HASHES.items():
        assert hash_password(name, salt) == (salt, digest), name


def test_a_change_of_scrypt_parameters_makes_the_written_hashes_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "_SCRYPT", {**auth._SCRYPT, "n": 2**10})
    salt, digest = DEMO_HASHES["alice"]
    assert hash_password("alice", salt) != (salt, digest)
    assert not check_password(demo_user("alice"), "alice")
