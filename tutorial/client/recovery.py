"""Backoff and error classification (seed diagram 5, "Error Recovery Patterns").

Pure functions and data: the client uses them, the state-machine chapter plots them.

| detection            | classification              | recovery                          |
|----------------------|-----------------------------|-----------------------------------|
| network timeout      | temporary issue (recoverable) | auto retry, exponential backoff |
| auth failure         | user action required        | back to the login page            |
| server rejection     | permanent failure           | show the error message to the user |
| rate limit exceeded  | temporary throttling        | queue messages and slow down      |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from tutorial.protocol.catalog import ErrorCode


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * factor**attempt``, capped, then jittered.

    ``jitter=0.5`` spreads each delay uniformly over [50%, 100%] of its value, so a
    thousand clients cut off at once do not all come back in the same millisecond.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        raw = min(self.cap, self.base * self.factor**attempt)
        if self.jitter <= 0:
            return raw
        r = (rng or random).random()
        return raw * (1 - self.jitter * r)

    def schedule(self, retries: int, rng: random.Random | None = None) -> list[float]:
        return [self.delay(i, rng) for i in range(retries)]


class Detection(StrEnum):
    NETWORK_TIMEOUT = "Network Timeout"
    AUTH_FAILURE = "Auth Failure"
    SERVER_REJECTION = "Server Rejection"
    RATE_LIMIT = "Rate Limit Exceeded"


class Classification(StrEnum):
    TEMPORARY = "Temporary Issue (Recoverable)"
    USER_ACTION = "User Action Required"
    PERMANENT = "Permanent Failure"
    THROTTLING = "Temporary Throttling"


class Recovery(StrEnum):
    RETRY_WITH_BACKOFF = "Auto Retry with Exponential Backoff"
    LOGIN_AGAIN = "Redirect to Login Page"
    SHOW_ERROR = "Show Error Message to User"
    QUEUE_AND_SLOW_DOWN = "Queue Messages & Slow Down"


@dataclass(frozen=True)
class RecoveryPattern:
    detection: Detection
    classification: Classification
    recovery: Recovery


PATTERNS: tuple[RecoveryPattern, ...] = (
    RecoveryPattern(
        Detection.NETWORK_TIMEOUT, Classification.TEMPORARY, Recovery.RETRY_WITH_BACKOFF
    ),
    RecoveryPattern(Detection.AUTH_FAILURE, Classification.USER_ACTION, Recovery.LOGIN_AGAIN),
    RecoveryPattern(Detection.SERVER_REJECTION, Classification.PERMANENT, Recovery.SHOW_ERROR),
    RecoveryPattern(Detection.RATE_LIMIT, Classification.THROTTLING, Recovery.QUEUE_AND_SLOW_DOWN),
)
_BY_DETECTION = {p.detection: p for p in PATTERNS}

# Server error codes that are worth another try after a pause (another tab may close
# and free a connection).
_TEMPORARY_CODES = {ErrorCode.STORE_UNAVAILABLE.value, ErrorCode.TOO_MANY_CONNECTIONS.value}


def classify(code: str | None) -> RecoveryPattern:
    """The recovery pattern for an error: ``code`` is a server error code, or None for a
    network failure (refused, reset or timed out)."""
    if code is None or code in _TEMPORARY_CODES:
        return _BY_DETECTION[Detection.NETWORK_TIMEOUT]
    if code in (ErrorCode.AUTH_FAILED.value, ErrorCode.UNAUTHENTICATED.value):
        return _BY_DETECTION[Detection.AUTH_FAILURE]
    if code == ErrorCode.RATE_LIMITED.value:
        return _BY_DETECTION[Detection.RATE_LIMIT]
    return _BY_DETECTION[Detection.SERVER_REJECTION]
