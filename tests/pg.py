"""A throwaway PostgreSQL server for the tests (session scope).

pytest only loads fixtures from ``conftest.py`` files, so a test module that needs it
imports it: ``from tests.pg import postgres_url  # noqa: F401``. Skips only when the
PostgreSQL binaries are not installed, and under ``make test`` that
skip is a failure (``tests/skips.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tutorial.cluster.postgres import PostgresMissing, TempPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    """The running :class:`TempPostgres` (tests that stop and restart it use this)."""
    try:
        pg = TempPostgres()
    except PostgresMissing as exc:
        pytest.skip(f"component missing: {exc} (run make setup)")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: TempPostgres) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/chat`` of a server started for this session."""
    return postgres.url
