"""The long-lived GC policy: what survives a full collection leaves the collector's
reach, frozen cyclic garbage is still found by the periodic whole collection, and
uninstalling gives Python's defaults back."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from tutorial.chat.gcpolicy import LongLivedGc
from tutorial.cluster.loopwatch import LoopWatch


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def policy():
    policy = LongLivedGc(full_every=0)  # no timer: the tests call collect_everything
    yield policy
    policy.uninstall()
    assert gc.get_freeze_count() == 0


async def test_install_freezes_what_exists_after_start_up(policy: LongLivedGc) -> None:
    kept = [Node() for _ in range(1000)]
    policy.install()
    assert gc.get_freeze_count() >= len(kept)
    # A full collection no longer walks them: only what was made since.
    assert len(gc.get_objects(2)) < len(kept)


async def test_a_full_collection_freezes_its_survivors(policy: LongLivedGc) -> None:
    policy.install()
    frozen = gc.get_freeze_count()
    survivors = [Node() for _ in range(1000)]
    gc.collect()  # a full collection, as the collector would run it
    assert policy.counters.freezes >= 2  # install's and this one
    assert gc.get_freeze_count() >= frozen + len(survivors)


async def test_frozen_cyclic_garbage_is_found_by_the_whole_collection(
    policy: LongLivedGc,
) -> None:
    policy.install()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()  # a and b survive (still referenced here) and are frozen
    del a, b  # now a cycle nobody reaches: garbage only the cyclic collector can free
    assert gc.collect() == 0, "a normal collection must not see frozen garbage"
    assert policy.collect_everything() >= 2
    assert policy.counters.whole == 1


async def test_without_the_policy_nothing_is_frozen() -> None:
    policy = LongLivedGc(full_every=0)
    policy.install()
    policy.uninstall()
    assert gc.get_freeze_count() == 0
    assert policy._after not in gc.callbacks
    kept = [Node() for _ in range(100)]
    gc.collect()
    assert gc.get_freeze_count() == 0, kept[0]


async def test_the_loop_watch_sees_collections_and_a_blocked_loop() -> None:
    watch = LoopWatch(interval=0.001)
    watch.start()
    await asyncio.sleep(0.005)  # sleep-ok: the sampler's first wake-ups
    gc.collect()
    gc.collect(0)
    until = time.perf_counter() + 0.05
    while time.perf_counter() < until:  # the loop held for 50 ms
        pass
    await asyncio.sleep(0.005)  # sleep-ok: the sampler wakes, late
    summary = watch.stop()
    assert summary["gc2_count"] >= 1 and summary["gc0_count"] >= 1
    assert summary["loop_lag_max_ms"] >= 40
    assert summary["gc2_cpu_total_ms"] >= 0


async def test_install_raises_the_young_threshold_and_uninstall_restores_it() -> None:
    before = gc.get_threshold()
    policy = LongLivedGc(full_every=0, young_threshold=12_345)
    policy.install()
    try:
        assert gc.get_threshold() == (12_345, before[1], before[2])
    finally:
        policy.uninstall()
    assert gc.get_threshold() == before
