"""Chat windows for the live clients of a [LiveChat][tutorial.lab.LiveChat]."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from tutorial.client import ChatClient
from tutorial.protocol.catalog import Event
from tutorial.widgets.base import ChatStatus, Tasks, WithFallback, error_line

EVENTS = (
    Event.NEW_MESSAGE,
    Event.TYPING_START,
    Event.TYPING_STOP,
    Event.USER_JOINED,
    Event.USER_LEFT,
)


class ChatPanel(widgets.VBox):  # type: ignore[misc]
    """One user's window: messages, who is typing, a text box (Enter sends) and Send."""

    def __init__(self, chat: Any, user: str, room: str = "general") -> None:
        self.chat = chat
        self.user = user
        self.room = room
        self.client: ChatClient | None = None
        self.history_box = widgets.HTML(layout=widgets.Layout(height="160px", overflow="auto"))
        self.typing = widgets.HTML(layout=widgets.Layout(min_height="1.5em"))
        self.error = widgets.HTML()
        self.text = widgets.Text(
            placeholder=f"message as {user}",
            continuous_update=True,
            layout=widgets.Layout(flex="1 1 auto", width="auto", min_width="0"),
        )
        self.send_button = widgets.Button(
            description="Send",
            button_style="info",
            layout=widgets.Layout(width="64px", flex="0 0 auto"),
        )
        self.send_button.add_class("tutorial-send")
        self.text.add_class("tutorial-chat-input")
        self.send_button.on_click(lambda _: self._send_text())
        # Enter in the text box: the frontend sends a "submit" message to the model.
        self.text.on_msg(self._on_text_msg)
        self.text.observe(self._on_input, names="value")
        self.tasks = Tasks(self._failed)
        self._typing_sent = False
        title = widgets.HTML(f"<b>{html.escape(user)}</b> in #{html.escape(room)}")
        row = widgets.HBox([self.text, self.send_button], layout=widgets.Layout(width="100%"))
        super().__init__(
            [title, self.history_box, self.typing, row, self.error],
            layout=widgets.Layout(
                border="1px solid #ccc", padding="6px", width="270px", overflow="hidden"
            ),
        )
        self.add_class("tutorial-chat-panel")
        self.add_class(f"tutorial-chat-panel-{user}")
        self.bind()

    def bind(self) -> None:
        """Follow the chat's current client for this user (a new one after a restart)."""
        client = self.chat.clients.get(self.user)
        if client is not None and client is not self.client:
            self.client = client
            for event in EVENTS:
                client.on(event, lambda _payload, c=client: self._refresh_if(c))
        self._typing_sent = False
        self.refresh()

    def _refresh_if(self, client: ChatClient) -> None:
        if client is self.client:
            self.refresh()

    def refresh(self) -> None:
        client = self.client
        messages = client.messages.get(self.room, []) if client else []
        lines = [
            f"<div><b>{html.escape(m['user'])}</b>: {html.escape(m['text'])}</div>"
            for m in messages[-30:]
        ]
        self.history_box.value = "".join(lines) or "<i>no messages yet</i>"
        others = sorted(client.typing.get(self.room, set()) - {self.user}) if client else []
        self.typing.value = f"<i>{html.escape(', '.join(others))} typing…</i>" if others else ""

    def _usable(self) -> ChatClient | None:
        if self.chat.clients.get(self.user) is not self.client:
            self.bind()  # the chat started again: send with its new client
        if self.chat.closed or self.client is None:
            self.error.value = "<span style='color:#842029'>this chat has stopped</span>"
            return None
        return self.client

    def _on_input(self, change: dict[str, Any]) -> None:
        typing_now = bool(change["new"])
        client = self.client
        if typing_now != self._typing_sent and client is not None and not self.chat.closed:
            self._typing_sent = typing_now
            call = client.typing_start if typing_now else client.typing_stop
            self.tasks.spawn(call(self.room))

    def _on_text_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            self._send_text()

    def _send_text(self) -> None:
        text = self.text.value.strip()
        client = self._usable()
        if text and client is not None:
            self.error.value = ""
            self.text.value = ""
            self.tasks.spawn(self._deliver(client, text))

    async def _deliver(self, client: ChatClient, text: str) -> None:
        # On the kernel's main loop (see Tasks): the outbox's future belongs there.
        await client.send(self.room, text)

    def _failed(self, exc: BaseException) -> None:
        self.error.value = f"<span style='color:#842029'>✗ {error_line(exc)}</span>"


class ChatPanels(WithFallback):
    """One [ChatPanel][tutorial.widgets.chat.ChatPanel] per user of ``chat``.

    Side by side, wrapping when the column is narrow."""

    def __init__(self, chat: Any, room: str = "general") -> None:
        self.chat = chat
        self.room = room
        self.panels = [ChatPanel(chat, user, room) for user in chat.users]
        # Follow the chat's new clients as soon as it says "running" (before the status
        # line, registered next, hides its button), not after start() has returned.
        chat.watch(lambda _chat: self._rebind())
        self.status = ChatStatus(chat, self._rebind)
        row = widgets.HBox(self.panels, layout=widgets.Layout(flex_flow="row wrap"))
        row.layout.grid_gap = "6px"
        super().__init__([self.status, row])
        self.add_class("tutorial-chat-panels")

    def _rebind(self) -> None:
        for panel in self.panels:
            panel.bind()

    def html_fallback(self) -> str:
        return transcript_html(self.chat.clients, self.room)


def chat_panels(chat: Any, room: str = "general") -> ChatPanels:
    """Chat windows for every user of ``chat`` (a [LiveChat][tutorial.lab.LiveChat])."""
    return ChatPanels(chat, room)


def transcript_html(clients: Mapping[str, ChatClient], room: str = "general") -> str:
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
    return "<div style='display:flex;gap:8px;flex-wrap:wrap'>" + "".join(columns) + "</div>"


def transcript(clients: Mapping[str, ChatClient], room: str = "general") -> Any:
    """What each chat window shows, as static HTML."""
    from IPython.display import HTML

    return HTML(transcript_html(clients, room))
