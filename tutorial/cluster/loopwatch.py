"""Where a server's pauses come from: event-loop lag and garbage-collector pauses.

A fan-out's tail latency (its p99) is set less by the work per message than by the
moments the event loop does nothing useful for a while: a long callback, a burst of
timers, or a collection of Python's cyclic garbage collector, which stops everything
while it walks every tracked object of the generation it collects (10,000 connected
sessions are a few million objects). ``LoopWatch`` measures both, for one window:

* **loop lag**: a task asks to wake every ``interval`` seconds and records how late it
  woke (``loop.time()`` after the sleep minus the time asked for): the time some other
  callback held the loop;
* **GC pauses**: ``gc.callbacks`` timestamps the start and the stop of each collection,
  by generation, in wall time and in the collecting thread's CPU time (on a shared
  machine the first includes the time other processes had the core).

``tutorial bench`` starts a window when it says "go" to the load generators and ends it
when the last delivery is in (signals ``SIGUSR1`` and ``SIGUSR2`` to the bench server,
[tutorial.cluster.bench][]); the figures land in ``bench.json`` beside each row.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pauses:
    """What one window saw (milliseconds)."""

    lag_ms: list[float] = field(default_factory=list)  # one per wake-up
    gc_ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    # The same pauses in CPU time of the collecting thread: what the collector cost,
    # apart from the time the machine gave to other processes meanwhile.
    gc_cpu_ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    collected: int = 0  # unreachable objects the collections found (cyclic garbage)
    tracked: int = 0  # objects the collector tracks at the window's end (all generations)
    frozen: int = 0  # ... and those frozen out of its reach (gc.freeze)

    def summary(self) -> dict[str, Any]:
        lags = sorted(self.lag_ms)

        def pct(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 2) if lags else 0.0

        out: dict[str, Any] = {
            "loop_lag_p50_ms": pct(0.50),
            "loop_lag_p99_ms": pct(0.99),
            "loop_lag_max_ms": round(lags[-1], 2) if lags else 0.0,
            "loop_samples": len(lags),
            "gc_collected": self.collected,
            "gc_tracked": self.tracked,
            "gc_frozen": self.frozen,
        }
        for gen, pauses in self.gc_ms.items():
            out[f"gc{gen}_count"] = len(pauses)
            out[f"gc{gen}_total_ms"] = round(sum(pauses), 2)
            out[f"gc{gen}_max_ms"] = round(max(pauses), 2) if pauses else 0.0
            cpu = self.gc_cpu_ms.get(gen, [])
            out[f"gc{gen}_cpu_total_ms"] = round(sum(cpu), 2)
            out[f"gc{gen}_cpu_max_ms"] = round(max(cpu), 2) if cpu else 0.0
        return out


class LoopWatch:
    """Measures loop lag and GC pauses between ``start()`` and ``stop()``."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.pauses = Pauses()
        self._task: asyncio.Task[None] | None = None
        self._gc_started = 0.0
        self._gc_cpu_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
        else:
            took = (time.perf_counter() - self._gc_started) * 1000
            self.pauses.gc_ms.setdefault(info["generation"], []).append(took)
            cpu = (time.thread_time() - self._gc_cpu_started) * 1000
            self.pauses.gc_cpu_ms.setdefault(info["generation"], []).append(cpu)
            self.pauses.collected += info.get("collected", 0)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        lags = self.pauses.lag_ms
        interval = self.interval
        while True:
            asked = loop.time() + interval
            await asyncio.sleep(interval)
            lags.append(max(0.0, (loop.time() - asked) * 1000))

    def start(self) -> None:
        """Start a new window (what an earlier one saw is dropped).

        Nothing is counted here: listing the tracked objects (``stop``) takes a
        server holding 10,000 idle clients a few hundred milliseconds, which would fall
        inside the window being measured."""
        self._end()
        self.pauses = Pauses()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def _end(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def stop(self) -> dict[str, Any]:
        """End the window; its summary."""
        self._end()
        self.pauses.tracked = sum(gc.get_count()) + sum(
            len(gc.get_objects(generation)) for generation in (1, 2)
        )
        self.pauses.frozen = gc.get_freeze_count()
        return self.pauses.summary()


__all__ = ["LoopWatch", "Pauses"]
