"""Seed diagram 5, live: one client's state machine, redrawn on every transition, with
buttons that move it (stop the server, start it again, reset and connect)."""

from __future__ import annotations

import html
from typing import Any

import graphviz
import ipywidgets as widgets

from tutorial.client import ChatClient, State, TransitionRecord
from tutorial.render import state_diagram
from tutorial.widgets.base import ChatStatus, Picture, Tasks, WithFallback, error_line


class StateMachineView(WithFallback):
    """``user``'s client of ``chat`` (a [LiveChat][tutorial.lab.LiveChat]): the current
    state filled, the path taken numbered, and the buttons to break and mend it.

    The buttons act on the real server: *Stop server* (the client starts reconnecting
    with backoff, and after its last retry gives up: FAILED), *Start server* (same port,
    same data: the client reconnects by itself), *Reset + connect* (from FAILED or
    DISCONNECTED: the manual reset, then a new ``connect()``).
    """

    tasks: Tasks

    def __init__(self, chat: Any, user: str = "alice") -> None:
        self.chat = chat
        self.user = user
        self.client: ChatClient | None = None
        self.caption = widgets.HTML()
        self.picture = Picture()
        self.stop_button = widgets.Button(description="Stop server", icon="stop")
        self.start_button = widgets.Button(description="Start server", icon="play")
        self.reset_button = widgets.Button(description="Reset + connect", icon="refresh")
        for name, button in (
            ("stop", self.stop_button),
            ("start", self.start_button),
            ("reset", self.reset_button),
        ):
            button.add_class(f"tutorial-states-{name}")
        self.stop_button.on_click(lambda _: self.tasks.spawn(chat.stop_server()))
        self.start_button.on_click(lambda _: self.tasks.spawn(chat.restart_server()))
        self.reset_button.on_click(lambda _: self.tasks.spawn(self._reset_and_connect()))
        self.error = widgets.HTML()
        self.tasks = Tasks(self._failed)
        # Follow the chat's new client as soon as it says "running" (before the status
        # line, registered next, hides its button), not after start() has returned.
        chat.watch(lambda _chat: self._follow())
        self.status = ChatStatus(chat, self.bind)
        buttons = widgets.HBox([self.stop_button, self.start_button, self.reset_button])
        super().__init__([self.status, buttons, self.caption, self.error, self.picture])
        self.add_class("tutorial-states")
        self.bind()

    @property
    def widget(self) -> StateMachineView:
        return self

    def bind(self) -> None:
        """Follow the chat's current client for this user (a new one after a restart)."""
        client = self.chat.clients.get(self.user)
        if client is not None and client is not self.client:
            self.client = client
            client.on_transition(lambda record, c=client: self._on_transition(c, record))
        self._render()

    def _follow(self) -> None:
        self.bind()
        self._update_buttons()

    def _on_transition(self, client: ChatClient, record: TransitionRecord) -> None:
        if client is self.client:
            self._render()

    def diagram(self) -> graphviz.Digraph:
        client = self.client
        if client is None:
            return state_diagram()
        path = [(r.source, r.target) for r in client.history]
        return state_diagram(current=client.state, path=path)

    def _render(self) -> None:
        client = self.client
        if client is None:
            self.caption.value = "no client"
            return
        last = client.history[-1] if client.history else None
        cause = f" — {html.escape(last.cause)}" if last else ""
        self.caption.value = (
            f"<span class='tutorial-state' data-state='{client.state}'>"
            f"{html.escape(self.user)} is <b>{client.state}</b></span>{cause}"
        )
        self.picture.show(self.diagram())
        self._update_buttons()

    def _update_buttons(self) -> None:
        closed = self.chat.closed
        server_up = self.chat.server is not None
        state = self.client.state if self.client else None
        self.stop_button.disabled = closed or not server_up
        self.start_button.disabled = closed or server_up
        self.reset_button.disabled = closed or state not in (State.FAILED, State.DISCONNECTED)

    async def _reset_and_connect(self) -> None:
        client = self.client
        if client is None:
            return
        if client.state is State.FAILED:
            await client.reset()
        await client.connect()

    def _failed(self, exc: BaseException) -> None:
        self.error.value = f"<span style='color:#842029'>✗ {error_line(exc)}</span>"

    def html_fallback(self) -> str:
        return self.picture.html_fallback()
