"""The client's connection state machine, as data (seed diagram 5).

Protocol-level data, like the event catalog: the teaching client moves along it and
the renderer draws it, and neither imports the other.

``TRANSITIONS`` is the single source of truth: the teaching client refuses any
move that is not in it, and the state diagram is drawn from it. The first eight rows
are the seed's "State Transitions" list, word for word; the last two are drawn in the
seed's picture but not listed (``seed=False``): a user who closes a live connection,
and a user who gives up while the client is reconnecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"
    ERROR = "ERROR"
    FAILED = "FAILED"


class Trigger(StrEnum):
    """What makes the client move: the seed's edge labels."""

    CONNECT_CALLED = "socket.connect()"
    CONNECT_EVENT = "connect event"
    TIMEOUT_ERROR = "timeout/error"
    DISCONNECT_EVENT = "disconnect event"
    RECONNECT_EVENT = "reconnect event"
    MAX_RETRIES = "max_retries_exceeded"
    CONNECT_ERROR = "connect_error"
    MANUAL_RESET = "manual reset"
    CLOSE_CALLED = "socket.disconnect()"


@dataclass(frozen=True)
class Transition:
    source: State
    target: State
    trigger: Trigger
    meaning: str
    seed: bool = True


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        State.DISCONNECTED, State.CONNECTING, Trigger.CONNECT_CALLED, "User initiates connection"
    ),
    Transition(State.CONNECTING, State.CONNECTED, Trigger.CONNECT_EVENT, "Handshake successful"),
    Transition(State.CONNECTING, State.ERROR, Trigger.TIMEOUT_ERROR, "Connection fails"),
    Transition(State.CONNECTED, State.RECONNECTING, Trigger.DISCONNECT_EVENT, "Connection lost"),
    Transition(
        State.RECONNECTING, State.CONNECTED, Trigger.RECONNECT_EVENT, "Reconnection successful"
    ),
    Transition(State.RECONNECTING, State.FAILED, Trigger.MAX_RETRIES, "Max retries exceeded"),
    Transition(State.ERROR, State.DISCONNECTED, Trigger.CONNECT_ERROR, "Error handled"),
    Transition(State.FAILED, State.DISCONNECTED, Trigger.MANUAL_RESET, "Manual reset"),
    Transition(
        State.CONNECTED, State.DISCONNECTED, Trigger.CLOSE_CALLED, "User closes", seed=False
    ),
    Transition(
        State.RECONNECTING, State.DISCONNECTED, Trigger.CLOSE_CALLED, "User gives up", seed=False
    ),
)

INITIAL_STATE = State.DISCONNECTED

_TABLE: dict[tuple[State, State], Transition] = {(t.source, t.target): t for t in TRANSITIONS}


class IllegalTransition(RuntimeError):
    """A move the table does not allow: a bug in the client, never a network event."""


def transition(source: State, target: State) -> Transition:
    """The table row for ``source → target``; raises
    [IllegalTransition][tutorial.protocol.states.IllegalTransition] if none."""
    try:
        return _TABLE[(source, target)]
    except KeyError:
        raise IllegalTransition(f"{source} → {target} is not in the transition table") from None


def allowed_targets(source: State) -> tuple[State, ...]:
    return tuple(t.target for t in TRANSITIONS if t.source is source)


def markdown_table() -> str:
    """The transition table as Markdown, for the docs."""
    rows = ["| from | to | trigger | meaning | in the seed's list |", "|---|---|---|---|---|"]
    rows += [
        f"| {t.source} | {t.target} | `{t.trigger}` | {t.meaning} | {'yes' if t.seed else 'no'} |"
        for t in TRANSITIONS
    ]
    return "\n".join(rows)
