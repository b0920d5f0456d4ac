"""Engine.IO heartbeats for many connections from one timer: the ping wheel.

Every ``pingInterval`` (25 s) the server sends each session a PING (``2``) and the
client answers PONG (``3``); a session whose PONG does not come within ``pingTimeout``
(20 s) is closed ("ping timeout"). That is the heartbeat of seed diagram 5's CONNECTED
state, and what makes a dead client's presence go away.

python-engineio (4.13) keeps it with tasks: per session and per cycle, one task that
sleeps ``ping_interval`` then queues the PING, whose writer task wakes to frame and
write it; and one service task that walks every session each ``ping_timeout`` with an
``asyncio.wait_for`` per session. Held 10,000 idle clients, that costs the server about
15 to 20 % of a core with no chat at all (``docs/explanation/performance.md``).

The wheel does the same with one timer:

* A session's next ping is due ``ping_interval`` after its connect or its last PONG
  ([compat.route_engineio_pings][tutorial.compat.route_engineio_pings] hands the
  library's ``schedule_ping`` here, instead of starting a task). Every session waits
  the same interval, so a FIFO keeps them in due order.
* One timer fires for the first due ping; the pings due within the next ``batch``
  seconds go out with it, each put on its session's queue as the library's ``send``
  puts it. (Not written past the queue, as broadcasts are: python-engineio's WebSocket
  writer gives up after ``ping_interval + ping_timeout`` without a packet, and the
  pings are what keeps it waiting.)
* ``ping_timeout`` after a ping, if no PONG came, the library's own check closes the
  session. A session found closed is dropped from python-engineio's table, which the
  service task did (the server starts python-engineio with ``monitor_clients=False``).

The bytes on the wire are the library's: the same ``2`` packet at the same intervals (up
to ``batch`` early), the same close on a missed PONG. ``tests/test_pingwheel.py`` reads
them off the wire.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from tutorial import compat

BATCH_SECONDS = 0.05
"""Pings due within this long of the first go out together (up to this much early)."""

CHECK_SLACK_SECONDS = 0.25
"""The missed-PONG check runs this long after ``ping_timeout`` has passed."""


class PingWheel:
    """The heartbeats of one python-engineio server (see the module's text)."""

    def __init__(
        self,
        eio: Any,
        ping_interval: float,
        ping_timeout: float,
        batch: float = BATCH_SECONDS,
    ) -> None:
        self.eio = eio
        self.interval = ping_interval
        self.timeout = ping_timeout
        self.batch = batch
        self.pings = 0  # sent
        self.timeouts = 0  # sessions closed for a missed PONG
        self._packet = compat.ping_packet()
        self._due: collections.deque[tuple[float, Any]] = collections.deque()
        self._checks: collections.deque[tuple[float, Any, float]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._stopped = False

    def install(self) -> None:
        """Take over python-engineio's ping scheduling for this server."""
        compat.route_engineio_pings(self.eio, self.schedule)

    def schedule(self, socket: Any) -> None:
        """``socket``'s next ping is due ``ping_interval`` from now."""
        if self._stopped:  # a PONG read while the server shuts down
            return
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self.interval, socket))
        self._arm(loop)

    def stop(self) -> None:
        """No more pings: the server is stopping."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        self._checks.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer at the earliest of the next due ping and the next check."""
        heads = [q[0][0] for q in (self._due, self._checks) if q]
        if not heads:
            return
        when = min(heads)
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._due
        check_at = now + self.timeout + CHECK_SLACK_SECONDS
        while due and due[0][0] <= now + self.batch:
            _, socket = due.popleft()
            if not compat.ping_due(socket):
                compat.forget_if_closed(self.eio, socket)
                continue
            self._checks.append((check_at, socket, compat.ping_sent(socket)))
            # On the session's queue, as the library's send puts it: its writer's wait
            # for packets times out after ping_interval + ping_timeout without one.
            compat.send_queue_of(socket).put_nowait(self._packet)
            self.pings += 1
        # Checks are appended in due order, all ping_timeout + slack after their ping;
        # the two appended below with a shorter delay may wait behind earlier entries,
        # by at most that difference.
        checks = self._checks
        while checks and checks[0][0] <= now:
            _, socket, sent = checks.popleft()
            if compat.pong_missing(socket, sent):
                if time.time() - sent > self.timeout:
                    self.timeouts += 1
                    task = loop.create_task(compat.close_if_silent(socket))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
                    # Forgotten a round later: a long-polling client still collects
                    # its CLOSE meanwhile (an unknown session would get a 400).
                    checks.append((now + self.timeout, socket, 0.0))
                else:  # the wall clock went back: look again a little later
                    checks.append((now + CHECK_SLACK_SECONDS, socket, sent))
            else:
                compat.forget_if_closed(self.eio, socket)
        self._arm(loop)

    async def settled(self) -> None:
        """Wait for the closes of sessions that missed their PONG, started so far."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


__all__ = ["PingWheel"]
