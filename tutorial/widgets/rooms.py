"""Seed diagram 4, live: pick a user and a room, join or leave for real, and see the
server's membership redrawn."""

from __future__ import annotations

import html
from typing import Any

import graphviz
import ipywidgets as widgets

from tutorial.render import rooms_diagram
from tutorial.widgets.base import ChatStatus, Picture, Tasks, WithFallback, error_line


class RoomsExplorer(WithFallback):
    """Join and Leave buttons acting on ``chat``'s live clients; the picture is drawn
    from the server's membership after each action (or says why it could not be)."""

    def __init__(self, chat: Any) -> None:
        from tutorial.chat.demo import ROOMS

        self.chat = chat
        self.user = widgets.Dropdown(options=list(chat.users), description="user")
        self.room = widgets.Dropdown(options=list(ROOMS), description="room")
        self.join_button = widgets.Button(description="Join", button_style="success")
        self.leave_button = widgets.Button(description="Leave")
        self.join_button.add_class("tutorial-rooms-join")
        self.leave_button.add_class("tutorial-rooms-leave")
        self.status = widgets.HTML()
        self.picture = Picture()
        self.tasks = Tasks(self._failed)
        self.join_button.on_click(lambda _: self.tasks.spawn(self._act("join")))
        self.leave_button.on_click(lambda _: self.tasks.spawn(self._act("leave")))
        self.snapshot: dict[str, Any] | None = None
        self.chat_status = ChatStatus(chat, self.refresh)
        row = widgets.HBox(
            [self.user, self.room, self.join_button, self.leave_button],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        super().__init__([self.chat_status, row, self.status, self.picture])
        self.add_class("tutorial-rooms")

    @property
    def widget(self) -> RoomsExplorer:
        return self

    async def _act(self, action: str) -> None:
        from tutorial.lab import attempt

        user, room = self.user.value, self.room.value
        client = self.chat.clients.get(user)
        if self.chat.closed or client is None:
            self.status.value = "<span style='color:#842029'>✗ this chat has stopped</span>"
            return
        call = client.join if action == "join" else client.leave
        outcome = await attempt(call(room))
        verdict = "✓" if outcome == "ok" else f"✗ error <code>{html.escape(outcome)}</code>"
        self.status.value = (
            f"<span class='tutorial-rooms-outcome' data-outcome='{html.escape(outcome)}'>"
            f"{html.escape(user)} {action} #{html.escape(room)}: {verdict}</span>"
        )
        await self.refresh()

    async def refresh(self) -> graphviz.Digraph:
        """Read the server's membership now and draw it."""
        self.snapshot = await self.chat.server.rooms_snapshot()
        diagram = self.diagram()
        self.picture.show(diagram)
        return diagram

    def diagram(self) -> graphviz.Digraph:
        if self.snapshot is None:
            raise RuntimeError("refresh() first")
        return rooms_diagram(self.snapshot)

    def _failed(self, exc: BaseException) -> None:
        message = f"✗ {error_line(exc)}"
        self.status.value = f"<span style='color:#842029'>{message}</span>"
        self.picture.banner("error", message + " (the picture is from before)")

    def html_fallback(self) -> str:
        return self.picture.html_fallback()
