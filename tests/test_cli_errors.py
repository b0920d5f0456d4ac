"""An operator's mistake on the ``tutorial`` command line gets one line and a non-zero exit.

Each case runs the real command in a subprocess, as an operator would, and expects
within ``ANSWER_WITHIN`` seconds: the exit status (2 for a usage error, as argparse
gives, 1 for what is found while running), exactly one line on standard error that
names the problem, no traceback, and for ``serve`` no claim that it is listening.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ANSWER_WITHIN = 5.0  # seconds on an idle machine, interpreter start included


def answer_bound() -> float:
    """``ANSWER_WITHIN``, stretched by how busy the machine is now.

    Almost all of a failing command's time is CPU (starting Python, importing the
    libraries); with a load average above the number of cores each process gets about
    cores/load of a core, so the same work takes load/cores times as long. What the bound
    is there to catch (a hang, a 30 s connect timeout) is not CPU and still fails it.
    """
    cores = os.cpu_count() or 1
    return ANSWER_WITHIN * max(1.0, os.getloadavg()[0] / cores)


@dataclass
class Answer:
    status: int
    stdout: str
    stderr: str
    seconds: float
    bound: float = ANSWER_WITHIN

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def tutorial(*args: str, cwd: Path) -> Answer:
    """Run ``python -m tutorial ARGS`` in ``cwd``; a hang fails the test at the bound."""
    bound = answer_bound()
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tutorial", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=bound + 5,  # past the bound: the assertion below says by how much
        check=False,
    )
    return Answer(done.returncode, done.stdout, done.stderr, time.monotonic() - start, bound)


@dataclass
class Places:
    """Things a case points at: a busy port, a closed one, a file that is no database."""

    tmp: Path
    busy_port: int
    closed_port: int

    @property
    def not_a_database(self) -> Path:
        path = self.tmp / "notes.txt"
        path.write_text("these are my notes, not a database\n" * 100)
        return path

    @property
    def under_a_file(self) -> Path:
        """A path no one can create: its parent is a regular file."""
        (self.tmp / "plain-file").write_text("x")
        return self.tmp / "plain-file" / "out"


@pytest.fixture
def places(tmp_path: Path) -> Iterator[Places]:
    with socket.socket() as busy, socket.socket() as probe:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        yield Places(tmp_path, busy.getsockname()[1], closed_port)


Case = Callable[[Places], list[str]]

# name: (the arguments, words the line must name; {busy_port} and {closed_port} filled in)
USAGE_ERRORS: dict[str, tuple[Case, list[str]]] = {
    "port above 65535": (lambda p: ["serve", "--port", "99999"], ["99999", "65535"]),
    "negative port": (lambda p: ["serve", "--port", "-1"], ["-1", "65535"]),
    "port not a number": (lambda p: ["serve", "--port", "http"], ["--port", "http"]),
    "store of an unknown kind": (lambda p: ["serve", "--db", "mysql://x/chat"], ["mysql://"]),
    "redis URL over http": (
        lambda p: ["serve", "--redis", f"http://127.0.0.1:{p.closed_port}"],
        ["--redis", "http://"],
    ),
    "redis without a scheme": (lambda p: ["serve", "--redis", "localhost"], ["localhost"]),
    "zero read timeout": (lambda p: ["serve", "--read-timeout", "0"], ["--read-timeout"]),
    "origin not a URL": (lambda p: ["serve", "--origin", "chat.example.org"], ["origin"]),
    "user name that cannot log in": (
        lambda p: ["user-add", "Bad!Name", "--password", "x", "--db", str(p.tmp / "c.db")],
        ["Bad!Name"],
    ),
    "empty password": (
        lambda p: ["user-add", "ada", "--password", "", "--db", str(p.tmp / "c.db")],
        ["password", "empty"],
    ),
    "password too long to log in": (
        lambda p: ["user-add", "ada", "--password", "x" * 201, "--db", str(p.tmp / "c.db")],
        ["password", "200"],
    ),
    "cluster of no servers": (lambda p: ["cluster", "up", "--servers", "0"], ["--servers", "0"]),
    "cluster of minus three servers": (
        lambda p: ["cluster", "up", "--servers", "-3"],
        ["--servers", "-3"],
    ),
    "cluster of a thousand servers": (
        lambda p: ["cluster", "up", "--servers", "1000"],
        ["--servers", "1000"],
    ),
    "cluster on an unknown store": (
        lambda p: ["cluster", "up", "--db", "mysql://x"],
        ["mysql://"],
    ),
    "unknown scenario": (lambda p: ["trace", "nosuch", "--out", str(p.tmp)], ["nosuch"]),
    "no command": (lambda p: [], ["required"]),
    "unknown option": (lambda p: ["serve", "--prot", "1"], ["--prot"]),
}

RUNTIME_ERRORS: dict[str, tuple[Case, list[str]]] = {
    "port in use": (
        lambda p: ["serve", "--port", str(p.busy_port), "--db", str(p.tmp / "c.db")],
        ["{busy_port}", "address already in use"],
    ),
    "address this machine lacks": (
        lambda p: ["serve", "--host", "192.0.2.1", "--port", "0", "--db", str(p.tmp / "c.db")],
        ["192.0.2.1"],
    ),
    "PostgreSQL that does not answer": (
        lambda p: ["serve", "--port", "0", "--db", f"postgresql://u@127.0.0.1:{p.closed_port}/c"],
        ["store", "PostgreSQL", "{closed_port}"],
    ),
    "a file that is not a database": (
        lambda p: ["serve", "--port", "0", "--db", f"sqlite:///{p.not_a_database}"],
        ["store", "notes.txt", "not a database"],
    ),
    "a store where no file can be made": (
        lambda p: ["serve", "--port", "0", "--db", f"sqlite:///{p.under_a_file}/chat.db"],
        ["store", "plain-file"],
    ),
    "Redis that does not answer": (
        lambda p: [
            "serve",
            "--port",
            "0",
            "--db",
            str(p.tmp / "c.db"),
            "--redis",
            f"redis://127.0.0.1:{p.closed_port}",
        ],
        ["Redis", "127.0.0.1:{closed_port}"],
    ),
    "user-add on a file that is not a database": (
        lambda p: ["user-add", "ada", "--password", "pw", "--db", str(p.not_a_database)],
        ["store", "not a database"],
    ),
    "trace into a path that cannot be written": (
        lambda p: ["trace", "handshake", "--out", str(p.under_a_file)],
        ["--out", "plain-file", "cannot write"],
    ),
    "diagrams into a path that cannot be written": (
        lambda p: ["diagrams", "--out", str(p.under_a_file)],
        ["--out", "plain-file", "cannot write"],
    ),
}


def check_answer(answer: Answer, status: int, words: list[str]) -> None:
    assert "Traceback" not in answer.stderr + answer.stdout, answer.stderr
    assert answer.status == status, (answer.status, answer.stderr)
    assert len(answer.lines) == 1, answer.stderr
    for word in words:
        assert word in answer.lines[0], (word, answer.lines[0])
    assert "listening" not in answer.stdout
    assert answer.seconds < answer.bound, f"answered after {answer.seconds:.1f} s"


@pytest.mark.parametrize("name", list(USAGE_ERRORS))
def test_a_usage_error_is_one_line_and_status_2(name: str, places: Places) -> None:
    case, words = USAGE_ERRORS[name]
    check_answer(tutorial(*case(places), cwd=places.tmp), 2, words)


@pytest.mark.parametrize("name", list(RUNTIME_ERRORS))
def test_a_runtime_mistake_is_one_line_and_status_1(name: str, places: Places) -> None:
    case, words = RUNTIME_ERRORS[name]
    words = [w.format(busy_port=places.busy_port, closed_port=places.closed_port) for w in words]
    check_answer(tutorial(*case(places), cwd=places.tmp), 1, words)


def test_debug_shows_the_traceback_instead(places: Places) -> None:
    db = f"sqlite:///{places.not_a_database}"
    answer = tutorial("--debug", "serve", "--port", "0", "--db", db, cwd=places.tmp)
    assert answer.status != 0
    assert "Traceback" in answer.stderr and "StoreUnavailable" in answer.stderr
    after = tutorial("serve", "--port", "0", "--db", db, "--debug", cwd=places.tmp)
    assert "Traceback" in after.stderr


def test_the_checks_pass_a_good_answer_and_fail_a_bad_one() -> None:
    good = Answer(1, "", "tutorial serve: cannot open the message store: x\n", 0.5)
    check_answer(good, 1, ["store"])
    bad = [
        Answer(1, "", "Traceback (most recent call last):\n  ...\nValueError: x\n", 0.5),
        Answer(0, "chat server listening on http://127.0.0.1:1\n", "", 0.5),
        Answer(1, "", "tutorial serve: store\nand a second line\n", 0.5),
        Answer(1, "", "tutorial serve: cannot open the message store: x\n", 6.0),
        Answer(1, "", "tutorial serve: something else\n", 0.5),
    ]
    for answer in bad:
        with pytest.raises(AssertionError):
            check_answer(answer, 1, ["store"])


#: What ``serve`` needs and a usage error does not: none of it may load before the
#: command line is parsed (it costs about a second, several on a busy machine).
SERVER_LIBRARIES = ("socketio", "engineio", "aiohttp", "redis", "aiosqlite")


def loaded_by(statement: str) -> list[str]:
    probe = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    modules = out.stdout.split()
    return [name for name in SERVER_LIBRARIES if name in modules]


def test_the_command_line_is_parsed_before_the_server_libraries_load() -> None:
    assert loaded_by("import tutorial.cli; tutorial.cli.build_parser()") == []
    assert loaded_by("from tutorial.scenarios import SCENARIOS; list(SCENARIOS)") == []
    assert loaded_by("from tutorial.scenarios import SCENARIOS; 'rooms' in SCENARIOS") == []
    # ... and the probe sees them once a command does need them.
    assert loaded_by("from tutorial.scenarios import SCENARIOS; SCENARIOS['handshake']") != []
