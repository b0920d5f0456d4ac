"""The client's connection state machine, drawn from its transition table (seed diagram 5).

The picture is generated from ``tutorial.protocol.states.TRANSITIONS``, never typed:
add a row to the table and it appears here. The layout follows the seed: DISCONNECTED
at the top with ERROR to its right, then CONNECTING, CONNECTED and RECONNECTING down
the middle, FAILED at the bottom. Transitions the seed lists are solid; the ones we
added (``seed=False``) are dotted grey and say "(added)".
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import graphviz

from tutorial.protocol.states import TRANSITIONS, State, Transition
from tutorial.render import palette

LAYOUT: tuple[tuple[State, ...], ...] = (
    (State.DISCONNECTED, State.ERROR),
    (State.CONNECTING,),
    (State.CONNECTED,),
    (State.RECONNECTING,),
    (State.FAILED,),
)
"""Rows of the layout, top to bottom; states in one row share a rank, left to right."""

STATE_HINTS: dict[State, str] = {
    State.DISCONNECTED: "not connected; nothing in flight",
    State.CONNECTING: "handshake in progress",
    State.CONNECTED: "Socket.IO session open",
    State.RECONNECTING: "lost the connection; retrying with backoff",
    State.ERROR: "the connection attempt failed",
    State.FAILED: "gave up after the last retry",
}


def state_diagram(
    current: State | str | None = None,
    path: Iterable[tuple[State | str, State | str]] = (),
    transitions: Sequence[Transition] = TRANSITIONS,
) -> graphviz.Digraph:
    """Draw the transition table; ``current`` is filled, ``path`` drawn bold and numbered.

    ``path`` is the list of (source, target) moves actually taken, in order; a move
    taken twice shows both numbers ("1, 5"). A move that is not in ``transitions``
    raises ``ValueError``.
    """
    current_state = State(current) if current is not None else None
    table = {(t.source, t.target): t for t in transitions}
    order: dict[tuple[State, State], list[int]] = {}
    for n, (a, b) in enumerate(path, start=1):
        key = (State(a), State(b))
        if key not in table:
            raise ValueError(f"{key[0]} → {key[1]} is not a transition of the table")
        order.setdefault(key, []).append(n)

    g = graphviz.Digraph(name="client_states")
    g.attr(
        rankdir="TB",
        nodesep="0.6",
        ranksep="0.55",
        fontname=palette.FONT,
        fontsize="12",
        fontcolor=palette.INK,
        label="Client connection states",
        labelloc="t",
    )
    g.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fillcolor="white",
        fontname=palette.FONT,
        fontsize="11",
        color=palette.INK,
        fontcolor=palette.INK,
        width="1.6",
        height="0.45",
    )
    g.attr(
        "edge",
        fontname=palette.FONT,
        fontsize=palette.FONT_SIZE,
        color=palette.INK,
        fontcolor=palette.INK,
        arrowsize="0.8",
    )

    states = [s for row in LAYOUT for s in row]
    states += sorted({s for t in transitions for s in (t.source, t.target)} - set(states))
    visited = {s for key in order for s in key}
    for row in LAYOUT:
        with g.subgraph() as s:
            s.attr(rank="same")
            for state in row:
                _state_node(s, state, current_state, state in visited)
            for a, b in itertools.pairwise(row):
                s.edge(a.value, b.value, style="invis", minlen="2")
    for state in states[sum(len(r) for r in LAYOUT) :]:
        _state_node(g, state, current_state, state in visited)
    # The spine: keeps the middle column straight even where no transition runs down.
    spine = [row[0] for row in LAYOUT]
    for a, b in itertools.pairwise(spine):
        if (a, b) not in table:
            g.edge(a.value, b.value, style="invis", weight="10")

    place = {s: (i, j) for i, row in enumerate(LAYOUT) for j, s in enumerate(row)}
    for t in transitions:
        _transition_edge(g, t, order.get((t.source, t.target), []), place)
    return g


def _state_node(g: graphviz.Digraph, state: State, current: State | None, visited: bool) -> None:
    attrs: dict[str, str] = {"tooltip": f"{state}: {STATE_HINTS.get(state, '')}"}
    if any(row[0] is state for row in LAYOUT):
        attrs["group"] = "spine"  # dot keeps edges inside a group straight
    if state is current:
        attrs |= {
            "fillcolor": palette.HIGHLIGHT_FILL,
            "color": palette.WS_BLUE,
            "penwidth": "2.5",
            "label": _escape_lines(f"{state}\n(current)"),
        }
    elif visited:
        attrs |= {"color": palette.WS_BLUE, "penwidth": "1.5"}
    if state is State.FAILED or state is State.ERROR:
        attrs.setdefault("fontcolor", palette.ERROR_RED)
    g.node(state.value, **attrs)


def _transition_edge(
    g: graphviz.Digraph, t: Transition, numbers: list[int], place: dict[State, tuple[int, int]]
) -> None:
    text = str(t.trigger)
    attrs: dict[str, str] = {"tooltip": palette.escape(f"{t.source} → {t.target}: {t.meaning}")}
    if not t.seed:
        text += "\n(added)"
        attrs |= {
            "style": "dotted",
            "color": palette.PROCESSING_GREY,
            "fontcolor": palette.PROCESSING_GREY,
            "tooltip": palette.escape(
                f"{t.source} → {t.target}: {t.meaning} (added: not in the seed)"
            ),
        }
    if numbers:
        text = f"[{', '.join(map(str, numbers))}] {text}"
        attrs |= {
            "color": palette.WS_BLUE,
            "fontcolor": palette.WS_BLUE,
            "penwidth": "2.5",
            "style": "bold" if t.seed else "bold,dotted",
        }
    a, b = place.get(t.source, (99, 0)), place.get(t.target, (99, 0))
    if a[1] == b[1] == 0 and abs(a[0] - b[0]) == 1:
        attrs["weight"] = "10"  # a step down (or up) the seed's middle column
        if b < a:  # a step back up leaves the column on the right, like the seed's
            attrs |= {"tailport": "e", "headport": "e"}
    else:
        attrs["weight"] = "0"  # the other moves do not pull the column sideways
        if a[1] == b[1] == 0 and b < a:  # a long way back up runs on the left
            attrs |= {"tailport": "w", "headport": "w"}
    if b < a:
        # An upward (or leftward) move: written top to bottom, left to right, with
        # dir=back, so it does not fight the seed's layout.
        attrs["dir"] = "back"
        g.edge(t.target.value, t.source.value, label=_escape_lines(text), **attrs)
    else:
        # Straight down the middle column: an xlabel takes no room in the layout, so
        # the column stays straight (a label would become a node and push it aside).
        key = "xlabel" if attrs["weight"] == "10" else "label"
        g.edge(t.source.value, t.target.value, **{key: _escape_lines(text)}, **attrs)


def _escape_lines(text: str) -> str:
    return palette.lines(*text.split("\n"))
