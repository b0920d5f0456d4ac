"""The teaching client: the seed's state machine, backoff, outbox and offsets."""

from tutorial.client.client import (
    ChatClient,
    ChatError,
    ClientError,
    ClientOptions,
    LoginRequired,
    TransitionRecord,
)
from tutorial.client.recovery import PATTERNS, Backoff, classify
from tutorial.protocol.states import TRANSITIONS, State, Trigger

__all__ = [
    "PATTERNS",
    "TRANSITIONS",
    "Backoff",
    "ChatClient",
    "ChatError",
    "ClientError",
    "ClientOptions",
    "LoginRequired",
    "State",
    "TransitionRecord",
    "Trigger",
    "classify",
]
