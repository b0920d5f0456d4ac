"""Change a scenario's parameters, run it again for real, and see the new diagram."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import graphviz
import ipywidgets as widgets

from tutorial.widgets.base import Picture, Tasks, WithFallback, error_details, error_line

# "story" is the scenario's own picture (the seed diagram); the others draw the whole
# trace in one layer view.
LAYER_CHOICES = {
    "the story": "story",
    "chat events": "chat",
    "packets": "packets",
    "frames": "frames",
}


class ScenarioExplorer(WithFallback):
    """Controls for a scenario's parameters, a *Run again* button, a layer switch, and
    the diagram of the last run.

    *Run again* starts the scenario in the background; when it finishes, its diagram
    replaces the previous one (the status line says which settings it ran with). If it
    fails, the widget says so in red above the previous picture, dimmed. Switching the
    layer redraws the same run at once.
    """

    def __init__(
        self,
        name: str,
        controls: Mapping[str, widgets.ValueWidget] | None = None,
        layers: str = "story",
        **fixed: Any,
    ) -> None:
        self.name = name
        self.controls = dict(controls or {})
        self.fixed = fixed
        self.layer = widgets.ToggleButtons(
            options=list(LAYER_CHOICES.items()), value=layers, description="show"
        )
        self.layer.style.button_width = "auto"
        self.button = widgets.Button(description="Run again", icon="play", button_style="primary")
        self.status = widgets.HTML()
        self.picture = Picture()
        self.result: Any = None
        self.ran_with: dict[str, Any] = {}
        self.tasks = Tasks(self._failed)
        self.button.on_click(lambda _: self._schedule())
        self.layer.observe(lambda _: self._draw(), names="value")
        row = widgets.HBox(
            [*self.controls.values(), self.button],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
        )
        super().__init__([row, self.layer, self.status, self.picture])
        self.add_class("tutorial-explorer")
        self.add_class(f"tutorial-explorer-{name}")

    @property
    def widget(self) -> ScenarioExplorer:
        return self

    def params(self) -> dict[str, Any]:
        return {**self.fixed, **{k: _plain(w.value) for k, w in self.controls.items()}}

    def _shown(self, params: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in params.items() if k in self.controls)

    async def run(self) -> Any:
        """Run the scenario with the current control values and draw it."""
        from tutorial.scenarios import run_scenario

        params = self.params()
        shown = html.escape(self._shown(params)) or "its defaults"
        self.button.disabled = True
        self.status.value = f"running <code>{html.escape(self.name)}</code> with {shown} …"
        self.picture.banner("running", f"running with {shown} … (the picture is the last run)")
        try:
            self.result = await run_scenario(self.name, **params)
        finally:
            self.button.disabled = False
        self.ran_with = params
        self.status.value = (
            f"✓ ran <code>{html.escape(self.name)}</code> with {shown}"
            f" in {self.result.seconds:.1f} s"
        )
        self._draw()
        return self.result

    def show(self, result: Any) -> None:
        """Draw ``result``, a run made elsewhere with the controls' current values (the
        chapter's first cell, say), instead of running the same thing twice. *Run
        again* runs it anew."""
        self.result = result
        self.ran_with = self.params()
        shown = html.escape(self._shown(self.ran_with)) or "its defaults"
        self.status.value = (
            f"✓ the run above: <code>{html.escape(self.name)}</code> with {shown}"
            f" in {result.seconds:.1f} s (change a setting, then <b>Run again</b>)"
        )
        self._draw()

    def _schedule(self) -> None:
        if not self.tasks.busy:
            self.tasks.spawn(self.run())

    def _failed(self, exc: BaseException) -> None:
        message = f"✗ could not run <code>{html.escape(self.name)}</code>: {error_line(exc)}"
        self.status.value = f"<span style='color:#842029'>{message}</span>{error_details(exc)}"
        self.picture.banner("error", message + " (the picture is from the previous run)")

    def diagram(self) -> graphviz.Digraph:
        if self.result is None:
            raise RuntimeError("run() first")
        layers = None if self.layer.value == "story" else self.layer.value
        diagram: graphviz.Digraph = self.result.diagram(layers=layers)
        return diagram

    def _draw(self) -> None:
        if self.result is None:
            return
        try:
            diagram = self.diagram()
        except Exception as exc:  # a picture that cannot be drawn says why
            self._failed(exc)
            return
        view = next(k for k, v in LAYER_CHOICES.items() if v == self.layer.value)
        shown = html.escape(self._shown(self.ran_with)) or "its defaults"
        self.picture.show(diagram, caption=f"{view}: <code>{self.name}</code> with {shown}")

    def html_fallback(self) -> str:
        return self.picture.html_fallback()


def _plain(value: Any) -> Any:
    """Widget values as the scenario wants them (a SelectMultiple gives a tuple)."""
    return list(value) if isinstance(value, tuple) else value
