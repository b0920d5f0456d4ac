"""Reference pages generated from the code (single sources of truth)."""

from __future__ import annotations

from pathlib import Path

from tutorial.client import states
from tutorial.protocol import catalog


def generated_docs() -> dict[str, str]:
    """Relative path -> content of every generated page."""
    state_page = "\n".join(
        [
            "# Client state machine",
            "",
            "Generated from `tutorial/client/states.py` by `tutorial docs`; do not edit by hand.",
            "",
            "The teaching client moves only along these rows (seed diagram 5). The first",
            "eight are the seed's list of state transitions; the last two are drawn in the",
            "seed's picture but not listed.",
            "",
            states.markdown_table(),
            "",
        ]
    )
    return {
        "docs/reference/events.md": catalog.markdown_table(),
        "docs/reference/states.md": state_page,
    }


def write_generated_docs(root: Path) -> list[Path]:
    written = []
    for rel, content in generated_docs().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p class='tutorial-widget-note'><em>In JupyterLab (<code>make lab</code>) this is a "
    "live widget: its controls run the scenario again and redraw. Here is the picture "
    "it drew when the chapter ran.</em></p>"
)


def prepare_site_notebooks(folder: Path) -> list[Path]:
    """Make executed chapter copies fit for a static, offline site.

    Widget outputs need a widget manager loaded from a CDN; on the site each becomes the
    static picture the widget carries (its ``text/html`` fallback) under a short note,
    and the saved widget state is dropped.
    """
    import nbformat

    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if WIDGET_MIME in data:
                    output["data"] = {"text/html": WIDGET_NOTE + data.get("text/html", "")}
        nbformat.write(nb, path)
        changed.append(path)
    return changed
