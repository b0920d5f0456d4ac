"""Garbage collection for a server that holds many connections: long-lived objects frozen.

CPython frees most objects the moment their last reference goes (reference counting).
Its *cyclic* collector is for the rest, and it works by generations: young objects are
checked often, and an object that survives two young collections is promoted to the
oldest generation, which a **full collection** walks whole, stopping the event loop
meanwhile. In CPython 3.11 a full collection runs once the objects promoted since the
last one exceed a quarter of those that survived it.

A server holding 10,000 idle WebSocket clients keeps about a million tracked objects
(sessions, queues, the reader and writer tasks of each connection). Every ping cycle
(25 s) makes a new task, timer and future per connection; with Python's default young
threshold (700) they live through young collections, are promoted, and count toward
the next full collection, although they later die by reference counting. Measured with
[tutorial.cluster.loopwatch][] (``tutorial bench --idle 10000``; see
``docs/explanation/performance.md``): with Python's defaults, full collections of
1.0 to 1.6 million objects came during the room's run and stopped the loop for 1.9 to
6.1 s each.

The policy here, [LongLivedGc][tutorial.chat.gcpolicy.LongLivedGc]:

1. **a young threshold of 50,000** instead of 700: a young collection runs when the
   tracked objects grew by that many since the last one. A server in a steady state
   frees about as many as it makes (reference counting), so young collections, and
   the promotions that bring on full ones, become rare; each walks at most about
   50,000 young objects (milliseconds). With it, no collection ran in the measured
   window at all;
2. after start-up one collection, then ``gc.freeze()``: what exists now (modules,
   the app, the store) is never walked again; and ``gc.freeze()`` after every full
   collection: what survived it (the connections held then) leaves the collector's
   reach, so the next full collection walks only what came since. Frozen objects are
   still freed by reference counting when a connection closes (``gc.freeze`` only
   stops the *cyclic* collector from walking them);
3. cyclic garbage among frozen objects (a closed connection whose objects refer to each
   other in a cycle) would stay until a whole collection: every ``full_every``
   seconds (default 600) the policy unfreezes everything and collects it all: one
   pause as long as one of Python's full collections above, at a known rate, instead
   of several a minute. The bench runs found no such garbage (``collected`` 0).

Freezing after full collections *without* the higher threshold did not help: young
collections kept promoting the ping cycles' objects, and the collector's CPU time in
the window went from 2.3 s to 3.5 s.

It changes the whole process's collector, so the process's owner installs it
(``tutorial serve`` and the bench server do), never a library: notebooks and tests that
start servers inside their own process keep Python's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class GcCounters:
    """What the policy did since it was installed (``/stats`` could show them)."""

    freezes: int = 0  # gc.freeze() after a full collection
    whole: int = 0  # unfreeze + collect everything (every full_every seconds)
    whole_collected: int = 0  # unreachable objects those found (frozen cyclic garbage)
    whole_ms: float = 0.0  # the longest of those pauses


class LongLivedGc:
    """Freeze what survives a full collection; collect everything every ``full_every`` s."""

    def __init__(self, full_every: float = 600.0, young_threshold: int = 50_000) -> None:
        self.full_every = full_every
        self.young_threshold = young_threshold
        self._thresholds: tuple[int, int, int] | None = None
        self.counters = GcCounters()
        self._task: asyncio.Task[None] | None = None

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector's callback, on whichever thread allocated: freeze is a
        # constant-time move of the generations' lists, safe here.
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()
            self.counters.freezes += 1

    def collect_everything(self) -> int:
        """Unfreeze, collect every generation, freeze what survived; the number of
        unreachable objects found."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()  # the callback freezes the survivors
        gc.freeze()
        took = (time.perf_counter() - started) * 1000
        self.counters.whole += 1
        self.counters.whole_collected += found
        self.counters.whole_ms = max(self.counters.whole_ms, took)
        return found

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.full_every)
            self.collect_everything()

    def install(self) -> None:
        """Freeze start-up's objects and watch full collections (call from the running
        loop, after the server started)."""
        if self._after not in gc.callbacks:
            gc.callbacks.append(self._after)
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            _, middle, old = self._thresholds
            gc.set_threshold(self.young_threshold, middle, old)
        gc.collect()  # the callback freezes what survived
        gc.freeze()
        if self._task is None and self.full_every > 0:
            self._task = asyncio.get_running_loop().create_task(self._every())

    def uninstall(self) -> None:
        """Python's defaults again (everything unfrozen)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._after in gc.callbacks:
            gc.callbacks.remove(self._after)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        gc.unfreeze()


__all__ = ["GcCounters", "LongLivedGc"]
