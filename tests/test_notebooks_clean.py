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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_widget_cell_is_followed_by_a_static_picture(path: Path) -> None:
    """The site cannot run widgets: the next cell must show what the widget drew."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    for cell, following in itertools.pairwise(code):
        last = cell.splitlines()[-1]
        if last.endswith(".widget") or last.startswith("chat_panels("):
            shown = following.splitlines()[-1]
            assert shown.endswith(".diagram()") or shown.startswith("transcript("), (
                f"{path.name}: `{last}` is not followed by a static picture"
            )


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_every_chapter_has_two_checked_exercises_and_a_teardown(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    checks = [c for c in nb.cells if c.cell_type == "code" and "exercises." in c.source]
    assert len(solutions) == 2 and len(checks) >= 2
    assert "teardown()" in nb.cells[-1].source
