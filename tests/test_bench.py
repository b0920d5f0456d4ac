"""A smoke run of every ``tutorial bench`` target, Node socket.io included: a few clients,
a few messages, so a broken target fails CI (the benchmark itself is not a test).

Each target runs under the official JavaScript client (the default load generator);
two run under the Python one as well. A run where deliveries go missing reports them
as errors, so the smoke check can fail.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tutorial.cluster import bench

pytestmark = pytest.mark.timeout(300)

CLIENTS, SENDERS, MESSAGES = 3, 2, 2


def bench_args(out: Path, *extra: str, reads: bool = False) -> argparse.Namespace:
    """A tiny run; the read-scaling part (PostgreSQL with standbys, the slowest part to
    start) only where ``reads`` asks for it, and then tiny too."""
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    return parser.parse_args(
        [
            *(["--read-clients", "2", "--reads-each", "2"] if reads else ["--no-reads"]),
            "--clients",
            str(CLIENTS),
            "--senders",
            str(SENDERS),
            "--messages",
            str(MESSAGES),
            "--repeat",
            "1",
            "--workers",
            "1",
            "--timeout",
            "30",
            "--out",
            str(out),
            "--no-chart",
            *extra,
        ]
    )


def results_of(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = json.loads((out / "bench.json").read_text())
    return data, data["results"]


def test_every_target_delivers_everything_under_the_js_load_generator(tmp_path: Path) -> None:
    assert bench.node_modules_missing() is None, bench.node_modules_missing()
    # Every target but "1 server + nginx + Redis", the same code as the 2-server one
    # (each start of nginx, its CA and Redis costs seconds).
    names = [t.name for t in bench.targets(2) if not t.name.startswith("1 server")]
    only = [arg for name in names for arg in ("--only", name)]
    assert bench.main(bench_args(tmp_path, "--servers", "2", *only, reads=True)) == 0
    data, results = results_of(tmp_path)
    assert len(names) == len(bench.targets(2)) - 1
    assert [r["name"] for r in results] == names
    assert bench.NODE_TARGET in names and bench.BASELINE_TARGET in names
    expected = CLIENTS * SENDERS * MESSAGES
    for r in results:
        assert (r["generator"], r["deliveries"], r["errors"]) == ("js", expected, 0), r
        assert r["deliveries_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0, r
        assert r["server_cpu_us"] is not None, r  # 10 ms ticks: a tiny run may read 0
    node = next(r for r in results if r["name"] == bench.NODE_TARGET)
    base = next(r for r in results if r["name"] == bench.BASELINE_TARGET)
    assert node["vs_node"] == 1.0 and base["vs_baseline"] == 1.0
    for r in results:
        assert r["vs_node"] == pytest.approx(
            r["deliveries_per_s"] / node["deliveries_per_s"], rel=1e-2
        )
    assert data["cpus"] and data["cpu_model"] and len(data["loadavg_before"]) == 3
    assert data["socket_io"].startswith("4.") and data["socket_io_client"].startswith("4.")
    # The teaching servers' pause windows were read (loop lag, GC), Node's and the
    # baseline's have none.
    for r in results:
        if r["name"] in (bench.NODE_TARGET, bench.BASELINE_TARGET):
            assert r["pauses"] is None, r
        else:
            assert r["pauses"] and r["pauses"]["loop_samples"] > 0, r
    # The read-scaling part: every read answered, from the primary, then the standbys.
    reads = data["reads"]
    assert [r["replicas"] for r in reads] == [0, 2]
    assert all(r["errors"] == 0 and r["reads"] == 4 for r in reads), reads
    assert set(reads[0]["served"]) == {"primary"}
    assert "primary" not in reads[1]["served"], reads[1]


def test_the_python_load_generator_still_runs(tmp_path: Path) -> None:
    args = bench_args(tmp_path, "--generator", "python", "--only", "bare", "--only", "off")
    assert bench.main(args) == 0
    _, results = results_of(tmp_path)
    assert [(r["name"], r["generator"]) for r in results] == [
        (bench.BASELINE_TARGET, "python"),
        ("teaching server, tracing off", "python"),
    ]
    assert all(r["errors"] == 0 for r in results), results
    assert results[0]["vs_node"] is None  # Node did not run under this generator


def test_missing_deliveries_are_reported_as_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each generator is told one message fewer than the parent counts on: the run
    ends at its timeout, and the missing deliveries are errors."""
    real = bench.WorkerConfig

    def short(**kwargs: Any) -> bench.WorkerConfig:
        return dataclasses.replace(real(**kwargs), messages=kwargs["messages"] - 1)

    monkeypatch.setattr(bench, "WorkerConfig", short)
    args = bench_args(tmp_path, "--only", "Node", "--timeout", "3")
    assert bench.main(args) == 0
    _, [node] = results_of(tmp_path)
    assert node["deliveries"] == CLIENTS * SENDERS * (MESSAGES - 1)
    assert node["errors"] == CLIENTS * SENDERS


def test_a_negative_warmup_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--warmup must be 0 or more"):
        bench.main(bench_args(tmp_path, "--warmup", "-1"))
