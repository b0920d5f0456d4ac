"""Committed diagrams are reproducible: deterministic runs, in two processes under two hash
seeds, give byte-identical files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hashseeds import SEEDS

from tutorial.scenarios import SCENARIOS

COMMITTED = Path(__file__).resolve().parent.parent / "diagrams"

# Two regenerations start two whole clusters (scenarios architecture and cluster).
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two regenerations of every diagram (``tutorial diagrams``), in two directories,
    each by its own process under its own ``PYTHONHASHSEED``, side by side."""
    out = [tmp_path_factory.mktemp(f"seed{seed}") for seed in SEEDS]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tutorial", "diagrams", "--out", str(directory)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for seed, directory in zip(SEEDS, out, strict=True)
    ]
    try:
        for run in runs:
            output, _ = run.communicate(timeout=600)
            assert run.returncode == 0, output.decode(errors="replace")[-3000:]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    return out[0], out[1]


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_every_scenario_gives_json_dot_and_svg(fresh: tuple[Path, Path]) -> None:
    names = set(files(fresh[0]))
    for scenario in SCENARIOS:
        assert {f"{scenario}.json", f"{scenario}.dot", f"{scenario}.svg"} <= names
    assert {"handshake-frames.svg", "rooms-structure.svg"} <= names
    assert {
        "cluster-balancer.svg",
        "cluster-redis-failover.svg",
        "cluster-database-failover.svg",
    } <= names


@pytest.mark.parametrize("suffix", [".json", ".dot", ".svg"])
def test_two_deterministic_runs_under_two_hash_seeds_are_byte_identical(
    fresh: tuple[Path, Path], suffix: str
) -> None:
    one, two = files(fresh[0]), files(fresh[1])
    assert one.keys() == two.keys()
    different = [n for n in one if n.endswith(suffix) and one[n] != two[n]]
    assert different == []


def test_the_committed_diagrams_match_a_fresh_regeneration(fresh: tuple[Path, Path]) -> None:
    committed = {n: b for n, b in files(COMMITTED).items() if not n.startswith(".")}
    generated = files(fresh[0])
    assert sorted(committed) == sorted(generated), "run `tutorial diagrams` and commit"
    stale = [n for n in generated if committed[n] != generated[n]]
    assert stale == [], f"stale committed diagrams {stale}: run `tutorial diagrams`"


def test_the_handshake_json_holds_the_seed_handshake() -> None:
    text = (COMMITTED / "handshake.json").read_text(encoding="utf-8")
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in text
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in text
