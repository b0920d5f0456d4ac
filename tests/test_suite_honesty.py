"""The suite synchronises on events, never on time: no sleep waits for something to happen.

A sleep that paces a load generator, or one that exists to outlast a timeout (it waits
for nothing), says so on its line (``pacing``, ``sleep-ok:``); any other ``sleep(`` in
the tests fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLEEP = re.compile(r"\bsleep\s*\(|wait_for_timeout\s*\(")


def sleeps_in(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SLEEP.search(line) and "pacing" not in line and "sleep-ok:" not in line:
                name = path.relative_to(TESTS) if path.is_relative_to(TESTS) else path.name
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_no_test_sleeps_to_synchronise() -> None:
    here = Path(__file__).resolve()
    paths = [p for p in sorted(TESTS.rglob("*.py")) if p != here]
    paths += sorted(TESTS.rglob("*.mjs"))
    assert sleeps_in(paths) == []


def test_the_check_finds_a_sleep(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text("await asyncio.sleep(0.1)\ntime.sleep(1)\nsleep(pace)  # pacing\n")
    assert len(sleeps_in([sample])) == 2
