"""Inspector(trace), the notebook widget, from the Python side: the cursor is two synced
traits, the document is the stepper's, and the static form is there for the site.
(In a real JupyterLab: tests/jupyterlab.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tutorial.render import stepper
from tutorial.trace.model import Trace
from tutorial.widgets.inspector import Inspector

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def committed(name: str) -> Trace:
    return Trace.from_json((DIAGRAMS / f"{name}.json").read_text(encoding="utf-8"))


def test_the_handshake_steps_through_packets_then_frames() -> None:
    inspector = Inspector(committed("handshake"))
    assert inspector.views == ["packets", "frames"]
    assert inspector.view == "packets" and inspector.position == 0
    assert inspector.current[0].event.label.startswith("GET /socket.io/")
    inspector.next()
    assert inspector.position == 1 and "101" in inspector.current[0].event.label
    inspector.next()  # over the "WebSocket Connection" separator
    assert inspector.current[0].event.fields["type"] == "OPEN"
    inspector.show(-1)
    assert inspector.position == inspector.arrows - 1
    inspector.next()
    assert inspector.position == inspector.arrows - 1  # the end stays the end
    inspector.show(0)
    inspector.previous()
    assert inspector.position == 0


def test_the_frames_view_explains_every_field_of_a_frame() -> None:
    inspector = Inspector(committed("handshake"), view="frames")
    for position in range(inspector.arrows):
        inspector.show(position)
        if inspector.current[0].event.layer.value == "ws":
            break
    text = inspector.explain()
    for field in ("FIN: 1: the final fragment", "opcode: 0x1 TEXT", "MASK:", "payload length:"):
        assert field in text


def test_the_story_comes_first_when_the_trace_has_one() -> None:
    inspector = Inspector(committed("event-flow"))
    assert inspector.views[0] == "story"
    inspector.show(2)
    assert inspector.current[0].sentence.startswith("Step 3: broadcast to room")


def test_the_document_is_the_steppers_and_the_static_form_is_in_the_bundle() -> None:
    trace = committed("handshake")
    inspector = Inspector(trace, title="handshake")
    assert json.loads(inspector.document) == json.loads(
        stepper.to_json(stepper.document(trace, title="handshake"))
    )
    bundle = inspector._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert 'class="trace-inspector"' in data["text/html"]
    assert "seq_row_0" in data["text/html"]


def test_the_browser_module_carries_the_shared_script() -> None:
    esm = str(Inspector._esm)
    assert "export default" in esm and "TraceInspector" in esm
    assert stepper.asset("inspector.js") in esm


def test_a_wrong_view_is_refused() -> None:
    with pytest.raises(ValueError, match="view 'bytes'"):
        Inspector(committed("handshake"), view="bytes")
    inspector = Inspector(committed("handshake"))
    with pytest.raises(ValueError, match="view 'story'"):
        inspector.show(0, view="story")


def test_a_drawn_document_keeps_the_rows_events_and_their_carriers_only() -> None:
    trace = committed("handshake")
    events = trace.events
    # A diagram drawn elsewhere with two rows: the first Socket.IO packet, then a note-less
    # separator row.
    sio = next(i for i, e in enumerate(events) if e.layer.value == "sio")
    doc = stepper.drawn_document(trace, "packets", [[sio], []])
    full = stepper.document(trace, views=["frames"])
    (view,) = doc["views"]
    assert view["svg"] == "" and [r["events"] for r in view["rows"]][1] == []
    (row,) = view["rows"][0]["events"]
    shown = doc["events"][row]
    kept = [e["label"] for e in doc["events"]]
    # The packet, the Engine.IO packet and the frame that carried it: nothing else.
    assert [e["layer"] for e in doc["events"]] == ["ws", "eio", "sio"]
    assert kept == [full["events"][i]["label"] for i in full["events"][sio]["family"]]
    assert shown["label"] == events[sio].label
    # Indices are renumbered consistently: every link points inside the document.
    for i, e in enumerate(doc["events"]):
        assert e["index"] == i and e["family"] == [0, 1, 2]
    assert doc["events"][0]["carries"] == [1] and doc["events"][1]["carried_by"] == [0]
    assert shown["carried_by"] == [1] and shown["bytes"] == full["events"][sio]["bytes"]
