"""Every arrow and note of a sequence diagram carries a stable id and class in the SVG,
so that a page can find, highlight and click the arrow of row k."""

from __future__ import annotations

import re
from pathlib import Path

from tutorial.render.sequence import diagram_rows, sequence_diagram
from tutorial.trace.model import Trace

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def test_every_row_with_events_is_tagged_in_the_svg_and_separators_are_not() -> None:
    trace = Trace.from_json((DIAGRAMS / "handshake.json").read_text(encoding="utf-8"))
    _, rows = diagram_rows(trace, "frames")
    svg = sequence_diagram(trace, "frames").pipe(format="svg").decode()
    tagged = {int(k) for k in re.findall(r'class="(?:node|edge) seq_row seq_row_(\d+)"', svg)}
    expected = {k for k, row in enumerate(rows) if row.kind != "separator"}
    assert tagged == expected
    assert any(row.kind == "separator" for row in rows)
    for k in expected:
        assert f'id="row{k}_label"' in svg


def test_notes_are_tagged_too() -> None:
    trace = Trace.from_json((DIAGRAMS / "event-flow.json").read_text(encoding="utf-8"))
    story = Trace(trace.lifelines, (e for e in trace.events if e.step is not None))
    _, rows = diagram_rows(story)
    notes = [k for k, row in enumerate(rows) if row.kind == "note"]
    svg = sequence_diagram(story).pipe(format="svg").decode()
    assert notes and all(f'id="row{k}_note"' in svg for k in notes)


def test_the_rows_hold_the_traces_own_event_objects() -> None:
    trace = Trace.from_json((DIAGRAMS / "handshake.json").read_text(encoding="utf-8"))
    _, rows = diagram_rows(trace, "packets")
    ids = {id(e) for e in trace.events}
    assert all(id(e) in ids for row in rows for e in row.events)
