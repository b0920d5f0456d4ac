"""Token buckets: the event rate per user, login attempts, and strikes (seed diagram 5:
"Rate Limit Exceeded → Temporary Throttling → Queue Messages & Slow Down").

* [RateLimiter][tutorial.chat.ratelimit.RateLimiter]: one bucket per key. Each event takes one
token; tokens come
  back at ``rate`` per second up to ``capacity``. An empty bucket answers how long to
  wait, which the server sends as ``retryAfter``. A bucket that has refilled is the
  same as no bucket, so [RateLimiter.sweep][tutorial.chat.ratelimit.RateLimiter.sweep] drops
  those: the table holds only
  keys that were busy lately, whatever the number of users, names or connections seen.
* [LoginThrottle][tutorial.chat.ratelimit.LoginThrottle]: password checks per user name and per
source address, so
  that guessing costs the guesser time and the server no CPU (scrypt is expensive on
  purpose). Only failed checks use up attempts.
* [Strikes][tutorial.chat.ratelimit.Strikes]: the refusals a connection collected in the last
``window``
  seconds. A connection that reaches ``limit`` of them is disconnected, so a client that
  ignores ``rate_limited`` and keeps flooding is cut off, while one that slips now and
  then never is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    capacity: float
    rate: float
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 if allowed, else the seconds to wait before retrying."""
        wait = self.wait(cost)
        if wait == 0.0:
            self.tokens -= cost
        return wait

    def wait(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0.0: now), taking nothing."""
        self._refill()
        if self.tokens >= cost:
            return 0.0
        if cost > self.capacity:
            return float("inf")
        return (cost - self.tokens) / self.rate

    def give_back(self, cost: float = 1.0) -> None:
        self._refill()
        self.tokens = min(self.capacity, self.tokens + cost)

    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity


class RateLimiter:
    """One bucket per key (a user name, an address, or a connection before it logs in)."""

    # Sweep refilled buckets once the table has grown this much since the last sweep.
    SWEEP_AT = 1024

    def __init__(self, capacity: float, rate: float, clock: Clock = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = self.SWEEP_AT

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self.sweep()
            bucket = self._buckets[key] = TokenBucket(self.capacity, self.rate, self.clock)
        return bucket

    def take(self, key: str, cost: float = 1.0) -> float:
        return self.bucket(key).take(cost)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def sweep(self) -> int:
        """Drop every bucket that has refilled (it remembers nothing); return how many."""
        full = [key for key, bucket in self._buckets.items() if bucket.full()]
        for key in full:
            del self._buckets[key]
        self._sweep_at = max(self.SWEEP_AT, 2 * len(self._buckets))
        return len(full)


class LoginThrottle:
    """Password checks allowed per user name and per source address.

    ``reserve`` before a check takes one attempt from both buckets (or answers how
    long to wait, taking nothing); ``succeeded`` gives both back, so only wrong
    passwords use them up. With ``per_name = (5, 5 / 60)`` a name gets 5 attempts at
    once and 5 more a minute: at most 10 guesses in any minute.
    """

    def __init__(
        self,
        per_name: tuple[float, float] = (5.0, 5.0 / 60),
        per_address: tuple[float, float] = (20.0, 20.0 / 60),
        clock: Clock = time.monotonic,
    ) -> None:
        self.names = RateLimiter(*per_name, clock=clock)
        self.addresses = RateLimiter(*per_address, clock=clock)

    def reserve(self, name: str, address: str | None) -> float:
        """0.0 and one attempt reserved, or the seconds to wait (nothing reserved)."""
        name_bucket = self.names.bucket(name.lower()[:64])
        address_bucket = self.addresses.bucket(address) if address else None
        wait = max(name_bucket.wait(), address_bucket.wait() if address_bucket else 0.0)
        if wait > 0:
            return wait
        name_bucket.take()
        if address_bucket is not None:
            address_bucket.take()
        return 0.0

    def succeeded(self, name: str, address: str | None) -> None:
        """The reserved attempt was the right password: it was not a guess."""
        self.names.bucket(name.lower()[:64]).give_back()
        if address:
            self.addresses.bucket(address).give_back()

    def sweep(self) -> None:
        self.names.sweep()
        self.addresses.sweep()


class Strikes:
    """Refusals of one connection within a sliding ``window`` of seconds."""

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.total = 0
        self._times: deque[float] = deque(maxlen=limit)

    def add(self) -> bool:
        """One more strike; True when ``limit`` of them fall within the window."""
        now = self.clock()
        self._times.append(now)
        self.total += 1
        return len(self._times) >= self.limit and now - self._times[0] <= self.window
