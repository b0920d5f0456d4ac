"""Determinism across processes: the same code run under different ``PYTHONHASHSEED``.

Rendering twice in one process cannot catch an order that depends on the hash seed
(a set or a dict built from a set iterates in a different order in another process).
[across_hash_seeds][hashseeds.across_hash_seeds] runs a function of a test module in a
fresh interpreter per seed and returns what each printed; a test asserts they agree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SEEDS = ("1", "2")
"""Two seeds under which a set of five words iterates in different orders (checked by
``tests/test_hashseeds.py``)."""


def across_hash_seeds(module: str, function: str, timeout: float = 300) -> dict[str, str]:
    """``{seed: output}``: ``module.function()`` (returning ``str``) in one new process
    per seed in ``SEEDS``, the test modules importable as in pytest."""
    code = (
        f"import sys; sys.path[:0] = {[str(TESTS), str(ROOT)]!r}\n"
        f"import {module} as m\n"
        f"sys.stdout.write(m.{function}())\n"
    )
    outputs: dict[str, str] = {}
    for seed in SEEDS:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs[seed] = done.stdout
    return outputs


def assert_same_across_hash_seeds(module: str, function: str, timeout: float = 300) -> str:
    """The one output every seed gave (not empty); fails naming the seeds that differ."""
    outputs = across_hash_seeds(module, function, timeout)
    first = outputs[SEEDS[0]]
    assert first, f"{module}.{function}() printed nothing"
    differ = [seed for seed, out in outputs.items() if out != first]
    assert differ == [], f"{module}.{function}() differs under PYTHONHASHSEED {differ}"
    return first


def seed_sensitive() -> str:
    """Output that depends on the hash seed: what the check above must reject."""
    return ",".join({"alpha", "beta", "gamma", "delta", "epsilon"})
