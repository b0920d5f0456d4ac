"""The client state diagram, drawn from the transition table (seed diagram 5)."""

from __future__ import annotations

import re
import subprocess

import pytest
from hashseeds import assert_same_across_hash_seeds

from tutorial.client.states import TRANSITIONS, State, Transition, Trigger
from tutorial.render import palette, state_diagram

EDGE = re.compile(r"^\s*(\S+) -> (\S+) \[(.*)\]$")


def edge_attrs(source: str, a: State, b: State) -> str:
    """The attributes of the edge for the move a → b (written either way round)."""
    for line in source.splitlines():
        m = EDGE.match(line)
        if m and {m.group(1), m.group(2)} == {a.value, b.value} and f'"{a} → {b}:' in line:
            return m.group(3)
    raise AssertionError(f"no edge {a} → {b}")


def node_attrs(source: str, state: State) -> str:
    for line in source.splitlines():
        m = re.match(rf"^\s*{state.value} \[(.*)\]$", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no node {state}")


def test_every_state_is_a_rounded_box():
    source = state_diagram().source
    assert "shape=box" in source and 'style="rounded,filled"' in source
    for state in State:
        node_attrs(source, state)


def test_every_transition_is_an_edge_labelled_with_its_trigger():
    source = state_diagram().source
    for t in TRANSITIONS:
        assert str(t.trigger) in edge_attrs(source, t.source, t.target)


def test_the_layout_follows_the_seed():
    source = state_diagram().source
    assert re.search(r"rank=same\s+DISCONNECTED \[[^\]]*\]\s+ERROR \[", source)
    # the middle column, top to bottom, kept straight by a group
    for state in [
        State.DISCONNECTED,
        State.CONNECTING,
        State.CONNECTED,
        State.RECONNECTING,
        State.FAILED,
    ]:
        assert "group=spine" in node_attrs(source, state)
    assert "group=spine" not in node_attrs(source, State.ERROR)


def test_upward_moves_are_written_downward_with_dir_back():
    attrs = edge_attrs(state_diagram().source, State.FAILED, State.DISCONNECTED)
    assert "dir=back" in attrs
    line = next(ln for ln in state_diagram().source.splitlines() if "manual reset" in ln)
    assert line.strip().startswith("DISCONNECTED -> FAILED")


def test_transitions_not_in_the_seed_are_dotted_grey_and_say_added():
    source = state_diagram().source
    added = [t for t in TRANSITIONS if not t.seed]
    assert added
    for t in added:
        attrs = edge_attrs(source, t.source, t.target)
        assert "style=dotted" in attrs and palette.PROCESSING_GREY in attrs
        assert "(added)" in attrs
    seed = edge_attrs(source, State.CONNECTING, State.CONNECTED)
    assert "dotted" not in seed and "(added)" not in seed


def test_the_current_state_is_filled():
    source = state_diagram(current=State.CONNECTED).source
    attrs = node_attrs(source, State.CONNECTED)
    assert palette.HIGHLIGHT_FILL in attrs and "(current)" in attrs
    assert palette.HIGHLIGHT_FILL not in node_attrs(source, State.CONNECTING)
    assert state_diagram(current="CONNECTED").source == source


def test_the_path_taken_is_bold_blue_and_numbered_in_order():
    path = [
        (State.DISCONNECTED, State.CONNECTING),
        (State.CONNECTING, State.CONNECTED),
        (State.CONNECTED, State.RECONNECTING),
        (State.RECONNECTING, State.CONNECTED),
        (State.CONNECTED, State.RECONNECTING),
    ]
    source = state_diagram(path=path).source
    attrs = edge_attrs(source, State.DISCONNECTED, State.CONNECTING)
    assert "[1] socket.connect()" in attrs and "bold" in attrs and palette.WS_BLUE in attrs
    assert "[3, 5] disconnect event" in edge_attrs(source, State.CONNECTED, State.RECONNECTING)
    assert "[4] reconnect event" in source
    untaken = edge_attrs(source, State.RECONNECTING, State.FAILED)
    assert "bold" not in untaken and "[" not in untaken


def test_a_path_outside_the_table_is_refused():
    with pytest.raises(ValueError, match="not a transition"):
        state_diagram(path=[(State.DISCONNECTED, State.CONNECTED)])


def test_the_diagram_follows_the_table_it_is_given():
    table = (
        *TRANSITIONS,
        Transition(
            State.ERROR, State.CONNECTING, Trigger.CONNECT_CALLED, "Retry at once", seed=False
        ),
    )
    attrs = edge_attrs(state_diagram(transitions=table).source, State.ERROR, State.CONNECTING)
    assert "socket.connect()" in attrs and "dotted" in attrs


def dot_and_svg() -> str:
    graph = state_diagram(current=State.ERROR, path=[(State.DISCONNECTED, State.CONNECTING)])
    return graph.source + graph.pipe(format="svg").decode()


def test_same_input_gives_identical_dot_and_svg_under_any_hash_seed():
    assert "<svg" in assert_same_across_hash_seeds("test_render_states", "dot_and_svg")


def test_dot_renders_it_without_warnings():
    source = state_diagram(
        current=State.CONNECTED, path=[(State.DISCONNECTED, State.CONNECTING)]
    ).source
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True)
    assert done.stderr == b""
