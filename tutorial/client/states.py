"""The client's connection state machine: the table lives in
[tutorial.protocol.states][] (data both the client and the renderer read); this module
keeps the client's old import path."""

from tutorial.protocol.states import (
    INITIAL_STATE,
    TRANSITIONS,
    IllegalTransition,
    State,
    Transition,
    Trigger,
    allowed_targets,
    markdown_table,
    transition,
)

__all__ = [
    "INITIAL_STATE",
    "TRANSITIONS",
    "IllegalTransition",
    "State",
    "Transition",
    "Trigger",
    "allowed_targets",
    "markdown_table",
    "transition",
]
