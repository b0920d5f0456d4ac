"""ipywidgets views for the chapter notebooks.

Each view drives real components from the package and re-renders a diagram. A notebook
shows ``view.widget`` and, in the next cell, the final diagram itself, so that a static
render of the notebook (the website) still shows the picture.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping
from typing import Any

import graphviz
import ipywidgets as widgets
from IPython.display import clear_output, display

from tutorial.client import ChatClient, TransitionRecord
from tutorial.render import rooms_diagram, state_diagram

# "story" is the scenario's own picture (the seed diagram); the others draw the whole
# trace in one layer view.
LAYER_CHOICES = {
    "the story": "story",
    "chat events": "chat",
    "packets": "packets",
    "frames": "frames",
}


class ScenarioExplorer:
    """Controls that change a scenario's parameters, a Run button, and its diagram."""

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
        self.button = widgets.Button(description="Run again", icon="play", button_style="primary")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.result: Any = None
        self._task: asyncio.Task[None] | None = None
        self.button.on_click(lambda _: self._schedule())
        self.layer.observe(lambda _: self._render(), names="value")

    @property
    def widget(self) -> widgets.VBox:
        row = widgets.HBox([*self.controls.values(), self.button])
        return widgets.VBox([row, self.layer, self.status, self.output])

    def params(self) -> dict[str, Any]:
        return {**self.fixed, **{k: w.value for k, w in self.controls.items()}}

    async def run(self) -> Any:
        """Run the scenario with the current control values and draw it."""
        from tutorial.scenarios import run_scenario

        params = self.params()
        self.status.value = f"running <code>{html.escape(self.name)}</code> …"
        self.result = await run_scenario(self.name, **params)
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        self.status.value = f"ran <code>{html.escape(self.name)}</code> with {html.escape(shown)}"
        self._render()
        return self.result

    def _schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())

    def diagram(self) -> graphviz.Digraph:
        if self.result is None:
            raise RuntimeError("run() first")
        layers = None if self.layer.value == "story" else self.layer.value
        diagram: graphviz.Digraph = self.result.diagram(layers=layers)
        return diagram

    def _render(self) -> None:
        if self.result is None:
            return
        with self.output:
            clear_output(wait=True)
            display(self.diagram())


class ChatPanel:
    """A small chat window for one live client: messages, typing indicator, a send box."""

    def __init__(self, client: ChatClient, room: str = "general") -> None:
        self.client = client
        self.room = room
        self.log = widgets.HTML(layout=widgets.Layout(height="160px", overflow="auto"))
        self.typing = widgets.HTML()
        self.text = widgets.Text(placeholder=f"message as {client.name}", continuous_update=True)
        self.send_button = widgets.Button(description="Send", button_style="info")
        self.send_button.on_click(lambda _: self._send())
        self.text.observe(self._on_input, names="value")
        for event in ("new-message", "typing-start", "typing-stop", "user-joined", "user-left"):
            client.on(event, lambda _payload: self.refresh())
        self._typing_sent = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self.refresh()

    @property
    def widget(self) -> widgets.VBox:
        title = widgets.HTML(f"<b>{html.escape(self.client.name)}</b> in #{html.escape(self.room)}")
        box = widgets.VBox(
            [title, self.log, self.typing, widgets.HBox([self.text, self.send_button])],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px", width="290px"),
        )
        return box

    def refresh(self) -> None:
        lines = [
            f"<div><b>{html.escape(m['user'])}</b>: {html.escape(m['text'])}</div>"
            for m in self.client.messages.get(self.room, [])[-30:]
        ]
        self.log.value = "".join(lines) or "<i>no messages yet</i>"
        others = sorted(self.client.typing.get(self.room, set()) - {self.client.name})
        self.typing.value = f"<i>{html.escape(', '.join(others))} typing…</i>" if others else ""

    def _on_input(self, change: dict[str, Any]) -> None:
        typing_now = bool(change["new"])
        if typing_now != self._typing_sent:
            self._typing_sent = typing_now
            call = self.client.typing_start if typing_now else self.client.typing_stop
            self._spawn(call(self.room))

    def _send(self) -> None:
        text = self.text.value.strip()
        if text:
            self.text.value = ""
            self._spawn(self.client.send(self.room, text))

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def chat_panels(clients: Mapping[str, ChatClient], room: str = "general") -> widgets.HBox:
    return widgets.HBox([ChatPanel(c, room).widget for c in clients.values()])


class StateMachineView:
    """The seed's diagram 5, redrawn on every transition of a live client."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.output = widgets.Output()
        self.caption = widgets.HTML()
        client.on_transition(self._on_transition)
        self._render()

    @property
    def widget(self) -> widgets.VBox:
        return widgets.VBox([self.caption, self.output])

    def diagram(self) -> graphviz.Digraph:
        path = [(r.source, r.target) for r in self.client.history]
        return state_diagram(current=self.client.state, path=path)

    def _on_transition(self, record: TransitionRecord) -> None:
        self._render()

    def _render(self) -> None:
        last = self.client.history[-1] if self.client.history else None
        cause = f" — {html.escape(last.cause)}" if last else ""
        self.caption.value = f"state: <b>{self.client.state}</b>{cause}"
        with self.output:
            clear_output(wait=True)
            display(self.diagram())


class RoomsExplorer:
    """Pick a user and a room, join or leave for real, and see the live membership."""

    def __init__(self, chat: Any) -> None:
        from tutorial.chat.demo import ROOMS

        self.chat = chat
        self.user = widgets.Dropdown(options=sorted(chat.clients), description="user")
        self.room = widgets.Dropdown(options=list(ROOMS), description="room")
        self.join_button = widgets.Button(description="Join", button_style="success")
        self.leave_button = widgets.Button(description="Leave")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.join_button.on_click(lambda _: self._spawn(self._act("join")))
        self.leave_button.on_click(lambda _: self._spawn(self._act("leave")))
        self._tasks: set[asyncio.Future[Any]] = set()
        self.snapshot: dict[str, Any] | None = None

    @property
    def widget(self) -> widgets.VBox:
        row = widgets.HBox([self.user, self.room, self.join_button, self.leave_button])
        return widgets.VBox([row, self.status, self.output])

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, action: str) -> None:
        from tutorial.lab import attempt

        client = self.chat.clients[self.user.value]
        call = client.join if action == "join" else client.leave
        outcome = await attempt(call(self.room.value))
        verdict = "✓" if outcome == "ok" else f"✗ error <code>{html.escape(outcome)}</code>"
        self.status.value = f"{html.escape(self.user.value)} {action} #{self.room.value}: {verdict}"
        await self.refresh()

    async def refresh(self) -> graphviz.Digraph:
        self.snapshot = await self.chat.server.rooms_snapshot()
        diagram = self.diagram()
        with self.output:
            clear_output(wait=True)
            display(diagram)
        return diagram

    def diagram(self) -> graphviz.Digraph:
        if self.snapshot is None:
            raise RuntimeError("refresh() first")
        return rooms_diagram(self.snapshot)


def transcript(clients: Mapping[str, ChatClient], room: str = "general") -> Any:
    """What each chat window shows, as static HTML (for a page without widgets)."""
    from IPython.display import HTML

    columns = []
    for name, client in clients.items():
        lines = "".join(
            f"<div><b>{html.escape(m['user'])}</b>: {html.escape(m['text'])}"
            f" <small style='color:#6c757d'>seq {m['seq']}</small></div>"
            for m in client.messages.get(room, [])[-20:]
        )
        columns.append(
            "<div style='border:1px solid #ccc;padding:6px;min-width:200px'>"
            f"<b>{html.escape(name)}</b> in #{html.escape(room)}{lines}</div>"
        )
    return HTML("<div style='display:flex;gap:8px;flex-wrap:wrap'>" + "".join(columns) + "</div>")
