"""Notebooks are committed clean: no outputs, no execution counts, only package imports."""

from __future__ import annotations

import itertools
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHAPTERS = [
    "00-start-here",
    "01-handshake",
    "02-architecture",
    "03-event-flow",
    "04-rooms",
    "05-state-machine",
    "06-scaling",
]


def test_all_seven_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == CHAPTERS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defines_no_logic(path: Path) -> None:
    """A notebook imports the package; functions and classes live in `tutorial/`."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            stripped = line.lstrip()
            assert not stripped.startswith(("def ", "class ", "async def ")), (
                f"{path.name}: move `{stripped}` into the package"
            )
            if stripped.startswith(("import ", "from ")):
                module = stripped.split()[1]
                assert module.split(".")[0] in {
                    "tutorial",
                    "asyncio",
                    "IPython",
                    "ipywidgets",
                    "hashlib",
                    "base64",
                }, f"{path.name}: imports {module}"


WIDGET_ENDINGS = ("explorer", "view", "chat_panels(")


def _shows_a_widget(source: str) -> bool:
    last = source.strip().splitlines()[-1]
    return last in WIDGET_ENDINGS[:2] or last.startswith(WIDGET_ENDINGS[2])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_widget_is_shown_once(path: Path) -> None:
    """A widget carries its own static picture for the site: the next cell must not
    draw the same diagram again."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    for cell, following in itertools.pairwise(code):
        if _shows_a_widget(cell):
            shown = following.splitlines()[-1]
            assert not shown.endswith(".diagram()") and not shown.startswith("transcript("), (
                f"{path.name}: `{following}` repeats the widget's picture"
            )


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_diagrams_are_shown_in_the_readable_box(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source.startswith("%load_ext tutorial.widgets"), path.name


def exercises_of(path: Path) -> list[tuple[int, int, int]]:
    """(answer, check, solution) cell indices of every exercise, in order."""
    nb = nbformat.read(path, as_version=4)
    tagged = {
        tag: [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]
        for tag in ("answer", "check", "solution")
    }
    return list(zip(tagged["answer"], tagged["check"], tagged["solution"], strict=True))


def solution_code(source: str) -> str:
    return source.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_has_two_exercises_that_run_all_leaves_unanswered(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    found = exercises_of(path)
    assert len(found) == 2, path.name
    for answer, check, solution in found:
        assert answer + 1 == check < solution, path.name
        assert nb.cells[answer].source.startswith("answer = None"), path.name
        assert "exercises." in nb.cells[check].source, path.name
        sol = nb.cells[solution]
        assert sol.cell_type == "markdown", f"{path.name}: Run All would run the solution"
        assert sol.source.startswith("<details>"), f"{path.name}: the solution is not folded"
        assert solution_code(sol.source).startswith(("answer =", "import", "digest")), path.name
        wrong = sol.metadata.get("tutorial", {}).get("wrong", [])
        assert wrong, f"{path.name}: every check needs at least one wrong answer to reject"
    # Nothing else sets the answer: Run All must leave it unanswered.
    setters = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and any(line.startswith("answer =") for line in c.source.splitlines())
    ]
    assert setters == [a for a, _, _ in found], path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_a_teardown_that_checks(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[-1].source.strip().endswith("await teardown()"), path.name
