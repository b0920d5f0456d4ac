"""How the ``tutorial`` command answers an operator's mistake: one line, a non-zero exit.

A usage error (a port out of range, a store URL of an unknown kind, a user name that
could never log in) is found while parsing: [OneLineParser][tutorial.cli_errors.OneLineParser]
prints one line and exits with status 2, as argparse does, without the usage block.
A mistake found while running (a port in use, an address this machine lacks, a store
or Redis that cannot be reached, a path that cannot be written) reaches
[tutorial.cli.main][tutorial.cli.main], which prints [explain][tutorial.cli_errors.explain]'s
line and exits with its status. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

from tutorial.protocol.catalog import USERNAME_PATTERN

MAX_PASSWORD = 200
"""The longest password ``authenticate`` accepts (the catalog's limit)."""


class CommandError(Exception):
    """A mistake found while running a command: its one line, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error answered in one line (``PROG: error: ...``) and
    status 2, pointing at ``--help`` instead of printing the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def explain(exc: BaseException) -> tuple[str, int]:
    """The one line and the exit status for an exception that ended a command."""
    from tutorial.chat.presence import RedisUnavailable  # loaded once a command has failed
    from tutorial.chat.store import StoreUnavailable

    if isinstance(exc, CommandError):
        return str(exc), exc.status
    if isinstance(exc, StoreUnavailable):
        return f"cannot open the message store: {exc}", 1
    if isinstance(exc, RedisUnavailable):
        return str(exc), 1
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return f"{exc.strerror or exc}: {exc.filename}", 1
        return str(exc) or type(exc).__name__, 1
    name = type(exc).__name__
    return f"{name}: {exc} (run with --debug for the traceback)", 1


def writable_directory(path: Path, option: str = "--out") -> Path:
    """Create ``path`` if need be and prove it can be written, before any work starts;
    raise CommandError naming it otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".tutorial-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CommandError(f"{option} {path}: cannot write there ({reason})") from exc
    return path


# -- argument types: each raises ArgumentTypeError, which OneLineParser prints -------


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0 picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0-65535")
    return port


def positive_int(text: str, most: int = sys.maxsize) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= most:
        bound = f"between 1 and {most}" if most != sys.maxsize else "at least 1"
        raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def store_url(text: str) -> str:
    """``sqlite:///PATH``, ``postgresql://...`` or a bare path (a SQLite file)."""
    if text.startswith(STORE_SCHEMES) or ("://" not in text and text):
        return text
    raise argparse.ArgumentTypeError(
        f"unsupported store URL {text!r}: use sqlite:///PATH or postgresql://..."
    )


REDIS_SCHEMES = ("redis", "rediss", "redis+sentinel", "valkey", "valkeys", "valkey+sentinel")


def redis_url(text: str) -> str:
    """A URL python-socketio's Redis manager can use: ``redis://HOST:PORT`` and kin."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in REDIS_SCHEMES or not rest:
        raise argparse.ArgumentTypeError(
            f"not a Redis URL: {text!r} (use redis://HOST:PORT, rediss://... "
            f"or redis+sentinel://HOST:PORT/0/SERVICE)"
        )
    return text


def user_name(text: str) -> str:
    """A name ``authenticate`` accepts (the catalog's pattern), else it could never log in."""
    if re.fullmatch(USERNAME_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"user name {text!r} could never log in: it must match {USERNAME_PATTERN}"
        )
    return text


def password_text(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("the password is empty")
    if len(text) > MAX_PASSWORD:
        raise argparse.ArgumentTypeError(
            f"the password is longer than {MAX_PASSWORD} characters: it could never log in"
        )
    return text
