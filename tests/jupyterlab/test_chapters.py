"""Every chapter in a real JupyterLab, as a learner uses it.

One JupyterLab server (from the venv) and one Chromium for the whole module; each
chapter is opened once, in a page 1280x1000 with the file browser open, and:

* *Run All*: no error or stderr output, no "Error displaying widget", every exercise
  says *not answered yet*, the teardown cell found nothing left, no output wider than
  its column outside a scroll container; Run All's wall time is recorded;
* every control in :data:`~tests.jupyterlab.controls.CONTROLS` is operated, and the
  widget's new picture (decoded from the page) must show the new setting;
* every exercise's solution (from its folded Markdown cell) is typed into the answer
  cell and run with the check: it must say *right*; every wrong answer listed in the
  solution cell's metadata must be rejected.

Screenshots go to ``test-output/jupyterlab/``; the Run All times to
``test-output/jupyterlab/run-all.json`` (and the terminal summary).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.jupyterlab.controls import CONTROLS, Control, View
from tests.jupyterlab.frontend import (
    JUPYTER,
    NOTEBOOKS,
    OUTPUT,
    VIEWPORT,
    JupyterLabServer,
    NotebookPage,
    close_notebook,
    open_lab,
    open_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.jupyterlab, pytest.mark.timeout(300)]

CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))

#: Run All must take at most this long (the aim is 15 s on an idle machine; a shared
#: 2-core machine can be 3x slower, so the test allows that and the report shows the
#: measured figures).
RUN_ALL_LIMIT_S = float(os.environ.get("TUTORIAL_RUN_ALL_LIMIT", "45"))

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def lab() -> Iterator[JupyterLabServer]:
    assert CHROMIUM.exists(), f"needs Debian's chromium at {CHROMIUM}: make setup"
    assert JUPYTER.exists(), f"needs JupyterLab in the venv ({JUPYTER}): make setup"
    with JupyterLabServer() as server:
        yield server


@pytest.fixture(scope="session")
def lab_page(lab: JupyterLabServer) -> Iterator[Any]:
    """One browser, one JupyterLab page for every chapter (each opens in it, in turn)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport=VIEWPORT)
        try:
            yield open_lab(ctx, lab)
        finally:
            ctx.close()
            browser.close()
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "run-all.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")


@pytest.fixture(scope="module", params=CHAPTERS)
def chapter(request: pytest.FixtureRequest, lab_page: Any) -> Iterator[NotebookPage]:
    nb = open_notebook(lab_page, f"{request.param}.ipynb")
    nb.seconds = nb.run_all()
    TIMINGS[nb.stem] = round(nb.seconds, 1)
    try:
        yield nb
    finally:
        close_notebook(nb)


def _screenshot_outputs(nb: NotebookPage) -> list[Path]:
    shots = []
    cells = nb.code_cells()
    for i in range(cells.count()):
        output = nb.output_of(i)
        if output.locator(".jp-OutputArea-output").count() == 0:
            continue
        output.scroll_into_view_if_needed()
        shots.append(nb.shot(f"{nb.stem}-out{i:02d}.png"))
    return shots


def test_run_all_is_clean(chapter: NotebookPage) -> None:
    nb = chapter
    assert nb.errors() == [], f"{nb.stem}: error output after Run All"
    widget_errors = [e for e in nb.console_errors if "widget" in e.lower()]
    assert widget_errors == [], widget_errors
    verdicts = nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-verdict")
    states = verdicts.evaluate_all("els => els.map(e => e.dataset.verdict)")
    assert states == ["unanswered", "unanswered"], f"{nb.stem}: Run All answered {states}"
    teardown = nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-teardown")
    assert "no child process and no listening port is left" in teardown.inner_text()
    assert nb.overflowing() == []
    _screenshot_outputs(nb)
    limit = RUN_ALL_LIMIT_S
    assert nb.seconds <= limit, f"{nb.stem}: Run All took {nb.seconds:.1f} s"


def _operate(nb: NotebookPage, n: int, control: Control) -> None:
    root = nb.page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {control.widget}").first
    root.scroll_into_view_if_needed()
    picture = root.locator(".tutorial-picture .tutorial-diagram").first
    before = picture.get_attribute("data-run") if control.redraws else None
    for act in control.actions:
        act(root)
    if control.redraws:
        # Wait for a new picture (the widget replaces its HTML) or an error banner.
        nb.page.wait_for_function(
            """([root, before]) => {
                const el = root.querySelector('.tutorial-picture .tutorial-diagram');
                return !!el && (el.dataset.state === 'error'
                    || (el.dataset.state === 'ok' && el.dataset.run !== before));
            }""",
            arg=[root.element_handle(), before],
            timeout=control.wait_ms,
        )
        # The element is replaced on every redraw: read the new one.
        state = root.locator(".tutorial-picture .tutorial-diagram").first.get_attribute(
            "data-state"
        )
        if state != "ok":
            root.locator("details").evaluate_all("els => els.forEach(e => e.open = true)")
        assert state == "ok", f"{control.name}: {root.inner_text()}"
    root.scroll_into_view_if_needed()
    nb.shot(f"{nb.stem}-control{n:02d}-{control.name}.png")
    view = View(root)
    problems = [p for p in (check(view) for check in control.expect) if p]
    assert problems == [], f"{nb.stem} / {control.name}: {problems}"


def test_every_control_redraws_the_right_picture(chapter: NotebookPage) -> None:
    controls = CONTROLS[chapter.stem]
    widgets = chapter.page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-explorer, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-rooms, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-states, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-chat-panels, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .tutorial-drill, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .trace-inspector"
    )
    covered = {c.widget for c in controls}
    for i in range(widgets.count()):
        classes = widgets.nth(i).get_attribute("class") or ""
        assert any(w.lstrip(".") in classes.split() for w in covered), (
            f"{chapter.stem}: a widget ({classes}) has no row in CONTROLS"
        )
    for n, control in enumerate(controls):
        _operate(chapter, n, control)
    assert chapter.errors() == []


def _exercises(stem: str) -> list[tuple[int, int, str, list[str]]]:
    """(answer cell, check cell, solution code, wrong answers) from the notebook file."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    answers = [i for i, t in enumerate(tags) if "answer" in t]
    checks = [i for i, t in enumerate(tags) if "check" in t]
    solutions = [nb.cells[i] for i, t in enumerate(tags) if "solution" in t]
    found = []
    for a, c, sol in zip(answers, checks, solutions, strict=True):
        code = sol.source.split("```python\n", 1)[1].split("\n```", 1)[0]
        found.append((a, c, code, list(sol.metadata["tutorial"]["wrong"])))
    return found


RUN_CELL_JS = """async ([index, source]) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const notebook = panel.content;
    if (source !== null) notebook.widgets[index].model.sharedModel.setSource(source);
    notebook.activeCellIndex = index;
    notebook.deselectAll();
    await window.jupyterapp.commands.execute('notebook:run-cell');
    const out = notebook.widgets[index].node.querySelector('.tutorial-verdict');
    return out ? out.dataset.verdict : null;
}"""


def _answer(nb: NotebookPage, answer_cell: int, check_cell: int, source: str) -> str:
    nb.page.evaluate(RUN_CELL_JS, [answer_cell, source])
    nb.wait_kernel_idle()
    verdict = nb.page.evaluate(RUN_CELL_JS, [check_cell, None])
    nb.wait_kernel_idle()
    return str(verdict)


def test_every_solution_passes_and_every_wrong_answer_is_rejected(chapter: NotebookPage) -> None:
    nb = chapter
    exercises = _exercises(nb.stem)
    assert exercises, f"{nb.stem}: no exercises"
    started = time.monotonic()
    for n, (answer, check, solution, wrongs) in enumerate(exercises, 1):
        assert wrongs, f"{nb.stem} exercise {n}: no wrong answer to reject"
        got = _answer(nb, answer, check, solution)
        nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(
            check
        ).scroll_into_view_if_needed()
        nb.shot(f"{nb.stem}-exercise{n}-solution.png")
        assert got == "right", f"{nb.stem} exercise {n}: the solution got {got!r}"
        for wrong in wrongs:
            got = _answer(nb, answer, check, wrong)
            assert got == "wrong", f"{nb.stem} exercise {n}: {wrong!r} got {got!r}"
        got = _answer(nb, answer, check, "answer = None")
        assert got == "unanswered", f"{nb.stem} exercise {n}: None got {got!r}"
    assert nb.errors() == []
    assert time.monotonic() - started < 120
