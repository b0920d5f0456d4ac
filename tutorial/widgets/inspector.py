"""``Inspector(trace)``: step through a run arrow by arrow, with every byte explained.

A notebook cell:

    from tutorial.widgets.inspector import Inspector
    result = await run_scenario("handshake")
    Inspector(result)            # or Inspector(result.trace)

shows ◀ ▶, a play button and a slider over the arrows of the diagram; the current arrow
is highlighted and the ones that have not happened yet are dimmed. Below it, the
arrow's bytes: each field of the WebSocket frame (FIN, RSV1-3, opcode, MASK, length,
masking key, payload), of the HTTP message (request or status line, each header), of
the Engine.IO and Socket.IO packets (type, namespace, ack id, JSON), each coloured and
named, the decoded fields, and one sentence saying what the step means. The views
(story, packets, frames) are linked: a frame's card shows the packets it carried, a
packet's card the frame that carried it, and "show in frames" jumps there.

It is an `anywidget <https://anywidget.dev>`_: the document (diagrams, rows, annotated
bytes) is computed here in Python ([tutorial.render.stepper][tutorial.render.stepper]) and synced
once;
the browser only lays it out. The cursor is two synced traits, ``view`` and ``row``:
clicking in the browser sets them, and setting them from Python (``inspector.row = 3``,
``next``, ``show``) redraws at once, from any callback, with no output
capture involved.

On the static site, the same fragment is shown without a kernel (its ``text/html``
form, [tutorial.render.stepper.static_html][tutorial.render.stepper.static_html]).
"""

from __future__ import annotations

import json
from typing import Any

import anywidget
import traitlets

from tutorial.render import stepper
from tutorial.trace.inspection import Step, inspect_trace
from tutorial.trace.model import Trace

_GLUE = """
export default {
  render({ model, el }) {
    const read = () => JSON.parse(model.get("document"));
    let inspector = null;
    const mount = () => {
      inspector = globalThis.TraceInspector.mount(el, read(), {
        view: model.get("view"),
        row: model.get("row"),
        height: model.get("height"),
        onChange(view, row) {
          model.set("view", view);
          model.set("row", row);
          model.save_changes();
        },
      });
    };
    mount();
    const follow = () => {
      const s = inspector.state;
      if (s.view !== model.get("view") || s.row !== model.get("row")) {
        inspector.show(model.get("view"), model.get("row"));
      }
    };
    model.on("change:row", follow);
    model.on("change:view", follow);
    model.on("change:document", () => { inspector.destroy(); mount(); });
    return () => inspector.destroy();
  },
};
"""


def _esm() -> str:
    return (
        "globalThis.TRACE_INSPECTOR_NO_AUTOMOUNT = true;\n" + stepper.asset("inspector.js") + _GLUE
    )


class Inspector(anywidget.AnyWidget):  # type: ignore[misc]
    """Step through ``trace`` (a [Trace][tutorial.trace.model.Trace] or a scenario result) arrow
    by arrow."""

    _esm = _esm()
    _css = stepper.asset("inspector.css")

    document = traitlets.Unicode("{}").tag(sync=True)
    view = traitlets.Unicode("").tag(sync=True)
    row = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(440).tag(sync=True)

    def __init__(
        self,
        trace: Any,
        *,
        view: str | None = None,
        views: list[str] | None = None,
        title: str | None = None,
        height: int = 440,
        **kwargs: Any,
    ) -> None:
        if not isinstance(trace, Trace):  # a ScenarioResult
            title = title if title is not None else getattr(trace, "title", None)
            trace = trace.trace
        self.trace: Trace = trace
        self.steps: tuple[Step, ...] = inspect_trace(trace)
        self._doc = stepper.document(trace, title=title, views=views)
        if not self._doc["views"]:
            raise ValueError("this trace has no arrow to step through")
        names = [v["name"] for v in self._doc["views"]]
        chosen = view if view is not None else names[0]
        if chosen not in names:
            raise ValueError(f"view {chosen!r} not in {names}")
        super().__init__(
            document=stepper.to_json(self._doc),
            view=chosen,
            row=self._steppable(chosen)[0],
            height=height,
            **kwargs,
        )

    # -- the cursor, from Python --------------------------------------------------

    @property
    def widget(self) -> Inspector:
        """The widget itself (the other chapter views expose ``.widget`` too)."""
        return self

    @property
    def views(self) -> list[str]:
        return [v["name"] for v in self._doc["views"]]

    def _view(self, name: str | None = None) -> dict[str, Any]:
        wanted = name or self.view
        return next(v for v in self._doc["views"] if v["name"] == wanted)

    def _steppable(self, name: str | None = None) -> list[int]:
        return [k for k, r in enumerate(self._view(name)["rows"]) if r["events"]]

    @property
    def arrows(self) -> int:
        """How many arrows (and notes) the current view steps through."""
        return len(self._steppable())

    @property
    def position(self) -> int:
        """Which arrow is current, 0-based, in the current view."""
        steppable = self._steppable()
        return steppable.index(self.row) if self.row in steppable else 0

    def show(self, position: int, view: str | None = None) -> None:
        """Make arrow ``position`` (0-based; negative counts from the end) current.

        Returns nothing, so that a cell ending with it does not display the widget twice.
        """
        if view is not None:
            if view not in self.views:
                raise ValueError(f"view {view!r} not in {self.views}")
            self.view = view
        steppable = self._steppable()
        self.row = steppable[max(-len(steppable), min(position, len(steppable) - 1))]

    def next(self) -> None:
        self.show(self.position + 1)

    def previous(self) -> None:
        self.show(max(0, self.position - 1))

    @property
    def current(self) -> list[Step]:
        """The steps (trace events) of the current arrow: one, or several for a fan-out."""
        return [self.steps[i] for i in self._view()["rows"][self.row]["events"]]

    def explain(self) -> str:
        """The current arrow as plain text: its sentence, then every field of its bytes."""
        lines = []
        for step in self.current:
            lines.append(step.sentence)
            if step.annotated is not None:
                lines += [f"  {span}" for span in step.annotated.spans]
        return "\n".join(lines)

    # -- display ----------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            # A page without a kernel (the site) mounts the same document from this.
            data["text/html"] = stepper.static_html(self._doc, height=self.height, view=self.view)
        return bundle

    def to_json(self) -> str:
        """The step-through document (the site publishes one per chapter)."""
        return json.dumps(self._doc, ensure_ascii=False)


__all__ = ["Inspector"]
