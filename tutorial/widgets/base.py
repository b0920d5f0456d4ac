"""What the chapter widgets share: a picture that background work can replace, tasks
that report their errors in the widget, a static fallback for the site, and the
"this chat has stopped" banner.

Why traits, not ``with output:``: a button's handler returns at once and the scenario
runs in a task afterwards. Output sent from that task is routed by whatever message is
current then (another cell, or nothing), and JupyterLab drops it. A trait change
(``HTML.value``) is a comm message to the widget's own model: it reaches every view of
the widget in JupyterLab 4 and Notebook 7, whenever it is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

import ipywidgets as widgets

from tutorial.widgets.figure import diagram_html, svg_text

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Picture(widgets.HTML):  # type: ignore[misc]
    """A diagram box ([diagram_html][tutorial.widgets.figure.diagram_html]) whose content is
    replaced by setting `value`: from a click handler or from background work.

    Every new picture gets the next run number (``data-run``); while work is under way
    or after it failed, the previous picture stays, dimmed, under a banner that says so.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("tutorial-picture")
        self.run = 0
        self.svg: str | None = None
        self.caption = ""

    def show(self, diagram: Any, caption: str = "") -> None:
        self.svg = svg_text(diagram)
        self.caption = caption
        self.run += 1
        self.value = diagram_html(self.svg, caption=caption, run=self.run)

    def banner(self, state: str, message: str) -> None:
        """Keep the picture (if any), dimmed, with ``message`` above it."""
        if self.svg is None:
            colour = "#842029" if state == "error" else "#664d03"
            self.value = (
                f"<div class='tutorial-diagram' data-state='{state}' data-run='{self.run}'"
                f" style='font:13px sans-serif;color:{colour}'>{message}</div>"
            )
            return
        self.value = diagram_html(
            self.svg, caption=self.caption, state=state, run=self.run, banner=message
        )

    def html_fallback(self) -> str:
        """The current picture as static HTML (for a page without a widget manager)."""
        if self.svg is None:
            return ""
        return diagram_html(self.svg, caption=self.caption)


def error_details(exc: BaseException) -> str:
    """The traceback, folded, for whoever wants to know more than the error line."""
    text = "".join(traceback.format_exception(exc))
    return (
        "<details><summary>traceback</summary><pre style='font-size:11px;white-space:"
        f"pre-wrap'>{html.escape(text)}</pre></details>"
    )


def error_line(exc: BaseException) -> str:
    """One line for a learner: the error, and where in the tutorial it happened."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if "/tutorial/" in f.filename]
    if ours:
        where = ours[-1]
        last += f" (in {where.name}, {where.filename.rsplit('/tutorial/', 1)[1]}:{where.lineno})"
    return html.escape(last)


class Tasks:
    """Background work started by a click, kept alive, its failure shown in the widget.

    The work runs on the event loop the widget was made on: the kernel's main loop,
    where the notebook's cells run and where a [LiveChat][tutorial.lab.LiveChat]'s server
    and clients live. A click may arrive elsewhere: JupyterLab 4.6 with ipykernel 7 can
    deliver widget messages on a kernel *subshell*, a thread with an event loop of its
    own, and a server stopped from there fails ("attached to a different loop").
    """

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self.on_error = on_error
        self.running: set[asyncio.Future[Any] | concurrent.futures.Future[Any]] = set()
        self.errors: list[BaseException] = []  # what failed, for a learner to inspect
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        guarded = self._guard(work)
        future: asyncio.Future[Any] | concurrent.futures.Future[Any]
        if self.loop is None or here is self.loop:
            future = asyncio.ensure_future(guarded)
        else:
            future = asyncio.run_coroutine_threadsafe(guarded, self.loop)
        self.running.add(future)
        future.add_done_callback(self.running.discard)

    async def _guard(self, work: Coroutine[Any, Any, Any]) -> Any:
        # Caught here, on the loop that ran it, with its traceback (a future handed
        # across threads would turn a TimeoutError into a new one without it).
        try:
            return await work
        except Exception as exc:
            self.errors.append(exc)
            self.on_error(exc)
            return None

    @property
    def busy(self) -> bool:
        return bool(self.running)

    async def idle(self) -> None:
        """Wait until every piece of work started so far has finished (or failed)."""
        while self.running:
            pending = [
                f if isinstance(f, asyncio.Future) else asyncio.wrap_future(f)
                for f in list(self.running)
            ]
            await asyncio.gather(*pending, return_exceptions=True)


class WithFallback(widgets.VBox):  # type: ignore[misc]
    """A widget box that also carries a static picture of itself, as ``text/html``.

    JupyterLab and Notebook 7 show the widget; a page without a widget manager (the
    static site, built from executed notebooks) shows the ``text/html`` picture, so a
    notebook needs no second cell repeating the diagram.
    """

    def html_fallback(self) -> str:
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        fallback = self.html_fallback()
        if bundle is not None and fallback:
            bundle["text/html"] = fallback
        return bundle  # type: ignore[no-any-return]


class ChatStatus(widgets.HBox):  # type: ignore[misc]
    """The line a widget bound to a [LiveChat][tutorial.lab.LiveChat] shows when that chat
    is not running: what happened, and a button that starts it again."""

    tasks: Tasks

    def __init__(self, chat: Any, on_restarted: Callable[[], Any]) -> None:
        self.chat = chat
        self.on_restarted = on_restarted
        self.message = widgets.HTML()
        self.button = widgets.Button(description="Start again", icon="play", button_style="warning")
        self.button.add_class("tutorial-start-again")
        self.button.on_click(lambda _: self.tasks.spawn(self._start_again()))
        self.tasks = Tasks(self._failed)
        super().__init__([self.message, self.button])
        self.add_class("tutorial-chat-status")
        chat.watch(lambda _chat: self.update())
        self.update()

    def update(self) -> None:
        status = self.chat.status
        if status == "closed":
            self.message.value = (
                "<b style='color:#842029'>⏹ This chat has stopped</b> (its teardown cell "
                "ran): its server and clients are closed."
            )
            self.layout.display = "flex"
            self.button.layout.display = ""
        elif status == "server stopped":
            self.message.value = (
                "<b style='color:#664d03'>⏸ The server is stopped</b>: the clients are "
                "reconnecting, or gave up."
            )
            self.layout.display = "flex"
            self.button.layout.display = "none"
        else:
            self.message.value = ""
            self.layout.display = "none"

    async def _start_again(self) -> None:
        self.button.disabled = True
        self.message.value = "starting a new server and clients …"
        try:
            await self.chat.start()
            await _maybe_await(self.on_restarted())
        finally:
            self.button.disabled = False
            self.update()

    def _failed(self, exc: BaseException) -> None:
        self.message.value = f"<b style='color:#842029'>✗ could not start:</b> {error_line(exc)}"


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value
