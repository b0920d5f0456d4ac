"""Sequence diagrams drawn from traces: content of the DOT, palette, stability."""

from __future__ import annotations

import re
import subprocess

import pytest
from hashseeds import assert_same_across_hash_seeds

from tutorial.protocol.layers import Layer
from tutorial.render import palette
from tutorial.render.sequence import PRESETS, SEPARATOR_TEXT, build_rows, sequence_diagram
from tutorial.trace.model import Trace

EDGE = re.compile(r"^\s*(\S+) -> (\S+) \[(.*)\]$")
NODE = re.compile(r"^\s*(\S+) \[(.*)\]$")


def handshake() -> Trace:
    """Seed diagram 1, as a trace."""
    trace = Trace(clock=lambda: 0.0)
    trace.add_lifeline("client", "Client", "client")
    trace.add_lifeline("server", "Server", "server")
    request = (
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: example.com\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    trace.record("client", "server", Layer.HTTP, "GET /socket.io/?EIO=4", raw=request, phase="http")
    trace.record(
        "server",
        "client",
        Layer.HTTP,
        "HTTP/1.1 101 Switching Protocols",
        phase="http",
        status="ok",
        raw=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    )
    trace.record("server", "client", Layer.EIO, 'open {"sid":"abc"}', phase="ws")
    trace.record("client", "server", Layer.SIO, 'CONNECT {"type":"connect","namespace":"/"}')
    trace.record("server", "client", Layer.SIO, 'CONNECT {"sid":"def"}', status="ok")
    return trace


def broadcast() -> Trace:
    """Seed diagram 3, as a trace."""
    trace = Trace(clock=lambda: 0.0)
    for lid, kind in [
        ("alice", "client"),
        ("server", "server"),
        ("bob", "client"),
        ("charlie", "client"),
        ("diana", "client"),
    ]:
        trace.add_lifeline(lid, lid, kind)
    chat = {"event": "send-message"}
    trace.record(
        "alice", "server", Layer.APP, 'send-message "Hello everyone!"', step=1, fields=chat
    )
    trace.note("server", "validate message, add metadata", step=2)
    trace.note("server", "broadcast to room", step=3)
    trace.record("server", "alice", Layer.APP, "new-message (echo to sender)", step=4)
    trace.record("server", "bob", Layer.APP, "new-message (to other users)", step=5)
    trace.record("server", "charlie", Layer.APP, "new-message (to all room members)", step=6)
    trace.record("server", "diana", Layer.APP, "new-message (to all room members)", step=6)
    return trace


def long_trace() -> Trace:
    """45 events: a handshake, chat traffic to a store and a second client, pings."""
    trace = handshake()
    trace.add_lifeline("bob", "bob", "client")
    trace.add_lifeline("store", "SQLite", "store")
    n = 0
    while len(trace) < 45:
        n += 1
        trace.record("client", "server", Layer.APP, f"send-message {n} & <more>")
        trace.note("server", f"validate, seq={n}")
        trace.record("server", "store", Layer.APP, f"INSERT seq={n}")
        trace.record("server", "bob", Layer.APP, f"new-message seq={n}")
        if n % 3 == 0:
            for _ in range(3):
                trace.record("server", "client", Layer.EIO, "ping", raw=b"2")
                trace.record("client", "server", Layer.EIO, "pong", raw=b"3")
    return trace


def edges(source: str) -> list[tuple[str, str, str]]:
    return [m.groups() for line in source.splitlines() if (m := EDGE.match(line))]


def node_line(source: str, text: str) -> tuple[str, str]:
    """The first node whose attributes contain ``text``: (name, attributes)."""
    for line in source.splitlines():
        m = NODE.match(line)
        if m and "->" not in line and text in m.group(2):
            return m.group(1), m.group(2)
    raise AssertionError(f"no node with {text!r}")


def arrow_edges(source: str, label_text: str) -> list[tuple[str, str, str]]:
    """The edges of the arrow row below the label node that contains ``label_text``."""
    name, _ = node_line(source, label_text)
    rank = int(name[1:]) + 1
    row = f"p{rank}_"
    return [e for e in edges(source) if e[0].startswith(row) and e[1].startswith(row)]


def dot_stderr(source: str) -> str:
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True)
    return done.stderr.decode()


# -- content ---------------------------------------------------------------------------


def test_every_lifeline_has_a_header_box_with_its_kind():
    source = sequence_diagram(broadcast()).source
    for name in ["alice", "server", "bob", "charlie", "diana"]:
        assert f'label="{name}\\n(' in source
    assert "(Socket.IO server)" in source and "(teaching client)" in source


def test_columns_keep_the_trace_order_through_invisible_header_edges():
    source = sequence_diagram(broadcast()).source
    chain = [(a, b) for a, b, attrs in edges(source) if a.startswith("h") and "invis" in attrs]
    assert chain == [("h0", "h1"), ("h1", "h2"), ("h2", "h3"), ("h3", "h4")]


def test_graph_uses_the_grid_technique():
    source = sequence_diagram(handshake()).source
    assert "newrank=true" in source and "splines=false" in source and "rankdir=TB" in source
    lifeline = [attrs for a, b, attrs in edges(source) if a == "p1_0" and b == "p2_0"]
    assert lifeline and "weight=100" in lifeline[0] and "dashed" in lifeline[0]


def test_every_step_number_of_seed_diagram_3_is_shown():
    source = sequence_diagram(broadcast()).source
    for step in range(1, 7):
        assert f'label="{step}. ' in source


def test_self_steps_are_note_boxes_beside_their_lifeline():
    source = sequence_diagram(broadcast()).source
    name, attrs = node_line(source, "2. validate message, add metadata")
    assert "shape=note" in attrs and palette.PROCESSING_GREY in attrs and "dashed" in attrs
    assert any(b == name and a.endswith("_1") for a, b, _ in edges(source))  # server's column


def test_right_to_left_messages_are_written_left_to_right_with_dir_back():
    source = sequence_diagram(broadcast()).source
    (echo,) = arrow_edges(source, "4. new-message (echo to sender)")
    assert echo[0].endswith("_0") and echo[1].endswith("_1")  # alice's column, then server's
    assert "dir=back" in echo[2]
    (send,) = arrow_edges(source, "1. send-message")
    assert "dir=back" not in send[2]


def test_a_message_that_skips_a_lifeline_is_routed_through_its_point():
    source = sequence_diagram(broadcast()).source
    six = arrow_edges(source, "6. new-message")
    cols = [(int(a.split("_")[1]), int(b.split("_")[1])) for a, b, _ in six]
    assert cols == [(1, 2), (2, 3), (3, 4)]  # server → bob → charlie → diana, straight
    assert "arrowhead=none" in six[0][2]  # passes bob by
    assert "arrowhead=none" not in six[1][2] and "arrowhead=none" not in six[2][2]


def test_http_phase_is_orange_dashed_and_the_101_green_with_a_checkmark():
    source = sequence_diagram(handshake()).source
    (get,) = arrow_edges(source, "1. GET /socket.io/")
    assert palette.HTTP_ORANGE in get[2] and "style=dashed" in get[2]
    (switch,) = arrow_edges(source, "2. ✓ HTTP/1.1 101")
    assert palette.SUCCESS_GREEN in switch[2] and "dir=back" in switch[2]


def test_websocket_phase_is_blue_solid_and_chat_events_purple():
    source = sequence_diagram(handshake()).source
    (connect,) = arrow_edges(source, "4. CONNECT")
    assert palette.WS_BLUE in connect[2] and "style=solid" in connect[2]
    chat = sequence_diagram(broadcast()).source
    (send,) = arrow_edges(chat, "1. send-message")
    assert palette.DATA_PURPLE in send[2]


def test_errors_are_red_bold_with_a_cross():
    trace = handshake()
    trace.record("server", "client", Layer.APP, "error rate_limited", kind="error")
    source = sequence_diagram(trace).source
    (error,) = arrow_edges(source, "✗ error rate_limited")
    assert palette.ERROR_RED in error[2] and "style=bold" in error[2]


def test_http_headers_are_shown_under_the_request_like_seed_diagram_1():
    source = sequence_diagram(handshake()).source
    _, attrs = node_line(source, "1. GET /socket.io/")
    assert (
        "Upgrade: websocket\\l" in attrs and "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in attrs
    )


def test_a_separator_row_divides_the_http_phase_from_the_websocket_phase():
    source = sequence_diagram(handshake()).source
    name, attrs = node_line(source, SEPARATOR_TEXT)
    assert palette.WS_BLUE in attrs
    bold = [e for e in edges(source) if name in e[:2]]
    assert len(bold) == 2 and all("penwidth=3" in e[2] for e in bold)
    assert source.index(SEPARATOR_TEXT) < source.index("3. open")


def test_repeated_ping_pong_pairs_fold_into_one_row():
    trace = handshake()
    for _ in range(4):
        trace.record("server", "client", Layer.EIO, "ping", raw=b"2")
        trace.record("client", "server", Layer.EIO, "pong", raw=b"3")
    source = sequence_diagram(trace).source
    assert "6. ping/pong ×4" in source
    (row,) = arrow_edges(source, "ping/pong ×4")
    assert "dir=both" in row[2]
    unfolded = sequence_diagram(trace, fold_pings=False).source
    assert "ping/pong" not in unfolded and "13. pong" in unfolded


def test_steps_use_event_step_when_given_else_a_running_number():
    rows = build_rows(broadcast().events)
    assert [r.step for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1].targets == ("charlie", "diana")  # one fan-out row for step 6


def test_presets_choose_layers_and_drop_idle_lifelines():
    assert set(PRESETS) == {"frames", "packets", "chat"}
    assert PRESETS["frames"].layers == {Layer.TCP, Layer.HTTP, Layer.WS}
    assert PRESETS["packets"].layers == {Layer.HTTP, Layer.EIO, Layer.SIO}
    trace = long_trace()
    chat = sequence_diagram(trace, layers="chat").source
    assert "GET /socket.io" not in chat and "send-message 1" in chat
    packets = sequence_diagram(trace, layers="packets").source
    assert "send-message" not in packets and "SQLite" not in packets
    with pytest.raises(ValueError, match="unknown preset"):
        sequence_diagram(trace, layers="bytes")


def test_labels_are_escaped_and_cut_at_max_label():
    trace = Trace(clock=lambda: 0.0)
    trace.add_lifeline("a", "A")
    trace.add_lifeline("b", "B")
    trace.record("a", "b", Layer.APP, "<b>R&D</b> \\l " + "x" * 80)
    source = sequence_diagram(trace, max_label=30).source
    # "1. <b>R&D</b> \l " and 12 x's and "…": 30 characters in all.
    assert 'label="1. &lt;b&gt;R&amp;D&lt;/b&gt; \\\\l xxxxxxxxxxxx…"' in source
    svg = sequence_diagram(trace, max_label=30).pipe(format="svg").decode()
    assert "&lt;b&gt;R&amp;D&lt;/b&gt; \\l x" in svg


def test_a_legend_explains_the_palette():
    source = sequence_diagram(handshake()).source
    assert "cluster_legend" in source
    for text in ["HTTP phase", "WebSocket phase", "Success", "Data flow", "Server processing"]:
        assert text in source
    assert "cluster_legend" not in sequence_diagram(handshake(), show_legend=False).source


# -- stability and rendering -----------------------------------------------------------


def dot_and_svg() -> str:
    graph = sequence_diagram(long_trace())
    return graph.source + graph.pipe(format="svg").decode()


def test_equal_traces_give_identical_dot_and_svg_under_any_hash_seed():
    assert "<svg" in assert_same_across_hash_seeds("test_render_sequence", "dot_and_svg")


def test_a_45_event_trace_renders_without_warnings():
    trace = long_trace()
    assert len(trace) >= 45
    graph = sequence_diagram(trace, title="45 events")
    assert dot_stderr(graph.source) == ""
    assert "ping/pong ×3" in graph.source


@pytest.mark.parametrize("preset", [None, "frames", "packets", "chat"])
def test_every_preset_renders_without_warnings(preset):
    assert dot_stderr(sequence_diagram(long_trace(), layers=preset).source) == ""


def test_an_empty_trace_still_renders():
    trace = Trace()
    trace.add_lifeline("a", "A")
    assert dot_stderr(sequence_diagram(trace).source) == ""


def _chat_room(users: list[str]) -> Trace:
    """Every user connects (the same packets, each with its own name and sid), then the
    first one's message is broadcast as seed steps 1, 4, 5 and 6."""
    trace = Trace(clock=lambda: 0.0)
    for user in users[:1]:
        trace.add_lifeline(user, user, "client")
    trace.add_lifeline("server", "Server", "server")
    for user in users[1:]:
        trace.add_lifeline(user, user, "client")
    for n, user in enumerate(users):
        trace.record(user, "server", Layer.HTTP, "GET /socket.io/?EIO=4", phase="http")
        trace.record("server", user, Layer.HTTP, "101 Switching Protocols", phase="http")
        trace.record("server", user, Layer.EIO, f"eio OPEN sid=sid-{n}", phase="ws")
        carrier = {"type": "MESSAGE"}
        auth = f'{{"username":"{user}"}}'
        trace.record(user, "server", Layer.EIO, f"eio MESSAGE 0{auth}", fields=carrier)
        trace.record(user, "server", Layer.SIO, f"sio CONNECT {auth}")
        trace.record("server", user, Layer.EIO, "eio MESSAGE 0{}", fields=carrier)
        trace.record("server", user, Layer.SIO, f'sio CONNECT {{"sid":"s{n}"}}')
    trace.record(users[0], "server", Layer.SIO, "send-message", step=1)
    trace.record("server", users[0], Layer.SIO, "new-message (echo)", step=4)
    for user in users[1:]:
        trace.record("server", user, Layer.SIO, "new-message", step=5)
    return trace


def _numbers(g) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'label="(\d+)\. ', g.source)


def test_a_view_mixing_story_rows_and_others_never_repeats_a_number():
    g = sequence_diagram(_chat_room(["alice", "bob"]), layers="packets")
    numbers = _numbers(g)
    assert len(numbers) == len(set(numbers)) and numbers == sorted(numbers, key=int)
    assert "[seed step 1] send-message" in g.source
    assert "[seed step 4] new-message (echo)" in g.source


def test_a_story_view_keeps_the_seed_numbers():
    story = _chat_room(["alice", "bob"])
    story = Trace(story.lifelines, (e for e in story.events if e.step is not None))
    g = sequence_diagram(story)
    assert "1. send-message" in g.source and "4. new-message (echo)" in g.source
    assert "seed step" not in g.source


def test_a_long_trace_folds_carriers_and_repeated_handshakes():
    users = ["alice", "bob", "charlie", "diana", "eve", "frank"]
    trace = _chat_room(users)
    rows = build_rows(trace.events, clients=users)
    assert len([e for e in trace.events]) > 40
    labels = [r.label for r in rows]
    assert not any(label.startswith("eio MESSAGE") for label in labels)
    assert "bob: the same 5 packets as alice (folded)" in labels
    assert "frank: the same 5 packets as alice (folded)" in labels
    assert sum(1 for label in labels if label.startswith("sio CONNECT")) == 2  # alice's only
    assert labels[-1] == "new-message" and len(rows) < 25


def test_a_short_trace_is_not_folded():
    rows = build_rows(_chat_room(["alice", "bob"]).events, clients=["alice", "bob"])
    assert any(r.label.startswith("eio MESSAGE") for r in rows)
    assert not any("folded" in r.label for r in rows)


def test_a_long_trace_keeps_every_row_when_folding_is_off():
    """The browser's live panel keeps its own window of events: nothing is folded."""
    users = ["alice", "bob", "charlie", "diana", "eve", "frank"]
    trace = _chat_room(users)
    rows = build_rows(trace.events, clients=users, fold_long=False)
    labels = [r.label for r in rows]
    assert sum(1 for label in labels if label.startswith("eio MESSAGE")) == 2 * len(users)
    assert not any("folded" in label for label in labels)
    g = sequence_diagram(trace, layers="packets", fold_long=False)
    assert "eio MESSAGE" in g.source
