"""The chapter widgets without a frontend: what they put in their traits, where their
work runs, what they say when their chat stopped. (The real frontend is
``tests/jupyterlab/``; these are the fast checks behind it.)"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import graphviz
import ipywidgets as widgets
import nbformat
from IPython.core.formatters import DisplayFormatter

from tutorial.docs import WIDGET_MIME, prepare_site_notebooks
from tutorial.lab import LiveChat
from tutorial.widgets import ScenarioExplorer, chat_panels, diagram_html, load_ipython_extension
from tutorial.widgets.base import Tasks
from tutorial.widgets.figure import COLUMN_PX, natural_size


def _run(value: str) -> int:
    match = re.search(r"data-run='(\d+)'", value)
    assert match, value[:200]
    return int(match.group(1))


async def test_run_again_replaces_the_picture_with_the_new_runs() -> None:
    transport = widgets.ToggleButtons(options=["websocket", "polling"], value="polling")
    explorer = ScenarioExplorer("handshake", {"transport": transport}, layers="packets")
    await explorer.run()
    first = explorer.picture.value
    assert _run(first) == 1 and "data-state='ok'" in first
    assert "PING probe" in explorer.picture.svg
    transport.value = "websocket"
    await explorer.run()
    assert _run(explorer.picture.value) == 2
    assert "PING probe" not in explorer.picture.svg
    assert "transport=&#x27;websocket&#x27;" in explorer.picture.value
    assert "✓ ran" in explorer.status.value


async def test_an_explorer_can_show_a_run_made_elsewhere_then_run_again() -> None:
    from tutorial.scenarios import run_scenario

    transport = widgets.ToggleButtons(options=["websocket", "polling"], value="polling")
    explorer = ScenarioExplorer("handshake", {"transport": transport}, layers="packets")
    above = await run_scenario("handshake", transport="polling")
    explorer.show(above)
    assert explorer.result is above and "the run above" in explorer.status.value
    assert "PING probe" in explorer.picture.svg
    transport.value = "websocket"
    await explorer.run()
    assert explorer.result is not above and "PING probe" not in explorer.picture.svg


async def test_a_failed_run_says_so_above_the_previous_picture() -> None:
    clients = widgets.IntSlider(value=2, min=0, max=9)
    explorer = ScenarioExplorer("architecture", {"clients": clients})
    await explorer.run()
    clients.value = 0  # the scenario refuses it
    explorer.tasks.spawn(explorer.run())
    await explorer.tasks.idle()
    assert "data-state='error'" in explorer.picture.value
    assert "ValueError" in explorer.status.value and "could not run" in explorer.status.value
    assert "the picture is from the previous run" in explorer.picture.value
    assert _run(explorer.picture.value) == 1  # no new picture was pretended


async def test_a_widget_carries_its_picture_for_pages_without_widgets() -> None:
    explorer = ScenarioExplorer("handshake")
    await explorer.run()
    bundle = explorer._repr_mimebundle_()
    assert bundle is not None and WIDGET_MIME in bundle
    assert "tutorial-diagram" in bundle["text/html"]


async def test_work_from_another_thread_runs_on_the_widgets_loop() -> None:
    """A click that arrives on a kernel subshell (its own thread and loop) must run its
    work on the loop the widget belongs to."""
    seen: list[asyncio.AbstractEventLoop] = []
    tasks = Tasks(on_error=lambda exc: None)
    main = asyncio.get_running_loop()
    done = asyncio.Event()

    async def work() -> None:
        seen.append(asyncio.get_running_loop())
        main.call_soon_threadsafe(done.set)

    def subshell() -> None:
        async def click() -> None:
            tasks.spawn(work())

        asyncio.run(click())

    thread = threading.Thread(target=subshell)
    thread.start()
    await asyncio.wait_for(done.wait(), 5)
    thread.join()
    assert seen == [main]


async def test_failures_from_another_thread_keep_their_traceback() -> None:
    errors: list[BaseException] = []
    tasks = Tasks(on_error=errors.append)
    failed = asyncio.Event()
    main = asyncio.get_running_loop()

    async def work() -> None:
        try:
            await asyncio.wait_for(asyncio.sleep(1), 0.01)  # sleep-ok: outlasts its timeout
        finally:
            main.call_soon(failed.set)

    thread = threading.Thread(target=lambda: asyncio.run(_spawn(tasks, work())))
    thread.start()
    await asyncio.wait_for(failed.wait(), 5)
    thread.join()
    await tasks.idle()
    assert len(errors) == 1 and isinstance(errors[0], TimeoutError)
    assert errors[0].__traceback__ is not None


async def _spawn(tasks: Tasks, work) -> None:  # type: ignore[no-untyped-def]
    tasks.spawn(work)


async def test_chat_panels_say_their_chat_stopped_and_start_it_again() -> None:
    chat = await LiveChat(users=("alice", "bob")).start()
    panels = chat_panels(chat, "general")
    try:
        assert panels.status.layout.display == "none"
        await chat.close()
        assert "This chat has stopped" in panels.status.message.value
        assert panels.status.layout.display == "flex"
        panels.status.tasks.spawn(panels.status._start_again())
        await panels.status.tasks.idle()
        assert chat.status == "running" and panels.status.layout.display == "none"
        alice = panels.panels[0]
        assert alice.client is chat.clients["alice"]
        alice.text.value = "after the restart"
        alice._send_text()
        bob = chat.clients["bob"]
        await bob.wait_until(lambda: "after the restart" in bob.received("general"))
        assert "after the restart" in panels.panels[1].history_box.value
    finally:
        await chat.close()


async def test_chat_windows_hold_the_new_clients_when_the_start_button_hides() -> None:
    """The moment a restarted chat says "running" (the status line hides its button),
    every window already sends with the new client, not the closed one."""
    chat = await LiveChat(users=("alice", "bob")).start()
    panels = chat_panels(chat, "general")
    seen: list[tuple[str, str, bool]] = []
    try:
        await chat.close()
        chat.watch(
            lambda c: seen.append(
                (
                    c.status,
                    panels.status.layout.display,
                    all(p.client is c.clients.get(p.user) for p in panels.panels),
                )
            )
        )
        await chat.start()
        assert seen == [("running", "none", True)]
    finally:
        await chat.close()


def test_a_wide_diagram_sits_at_natural_size_and_says_so() -> None:
    wide = graphviz.Digraph()
    wide.attr(rankdir="LR")
    for i in range(30):
        wide.edge(f"node number {i}", f"node number {i + 1}")
    html = diagram_html(wide)
    width, _ = natural_size(wide.pipe(format="svg").decode())
    assert width > COLUMN_PX
    assert f"{width} × " in html and "scroll sideways, or fit" in html
    assert "overflow:auto" in html and "max-width:none" in html
    narrow = diagram_html(graphviz.Digraph(body=["a -> b"]))
    assert "scroll sideways" not in narrow


def test_the_extension_shows_every_graphviz_diagram_in_the_box() -> None:
    class Shell:
        display_formatter = DisplayFormatter()

    shell = Shell()
    plain, _ = shell.display_formatter.format(graphviz.Digraph(body=["a -> b"]))
    assert "text/html" not in plain
    load_ipython_extension(shell)
    data, _ = shell.display_formatter.format(graphviz.Digraph(body=["a -> b"]))
    assert "tutorial-diagram" in data["text/html"]
    assert "data:image/svg+xml;base64," in data["text/html"]


def test_the_site_shows_a_widgets_picture_in_its_place(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={WIDGET_MIME: {"model_id": "x"}, "text/html": "<div>the picture</div>"},
        )
    ]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    prepare_site_notebooks(tmp_path)
    out = nbformat.read(tmp_path / "chapter.ipynb", as_version=4)
    data = out.cells[0].outputs[0]["data"]
    assert list(data) == ["text/html"] and "<div>the picture</div>" in data["text/html"]
    assert "live widget" in data["text/html"] and "widgets" not in out.metadata
