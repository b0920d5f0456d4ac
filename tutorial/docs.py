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


#: The chapters whose recorded traces the site publishes for stepping through, in order.
INSPECTED_SCENARIOS: tuple[str, ...] = (
    "handshake",
    "architecture",
    "event-flow",
    "rooms",
    "state-machine",
    "scaling",
)


def write_site_inspections(docs: Path, diagrams: Path) -> list[Path]:
    """The site's step-through data: ``docs/inspector/<scenario>.json`` for each
    chapter's recorded trace (``diagrams/<scenario>.json``, the committed deterministic
    runs), and the inspector's script and style in ``docs/assets/``.

    The JSON is the same document the notebook widget shows
    (:func:`tutorial.render.stepper.document`); the page only lays it out.
    """
    from tutorial.render import stepper
    from tutorial.trace.model import Trace

    written = []
    out = docs / "inspector"
    out.mkdir(parents=True, exist_ok=True)
    for name in INSPECTED_SCENARIOS:
        trace = Trace.from_json((diagrams / f"{name}.json").read_text(encoding="utf-8"))
        path = out / f"{name}.json"
        path.write_text(stepper.to_json(stepper.document(trace)), encoding="utf-8")
        written.append(path)
    assets = docs / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for asset in ("inspector.js", "inspector.css"):
        (assets / asset).write_text(stepper.asset(asset), encoding="utf-8")
        written.append(assets / asset)
    return written


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
INSPECTOR_MARK = 'class="trace-inspector"'

WIDGET_NOTE = (
    "<p class='tutorial-widget-note'><em>In JupyterLab (<code>make lab</code>) this is a "
    "live widget: its controls run the scenario again and redraw. Here is the picture "
    "it drew when the chapter ran.</em></p>"
)


def prepare_site_notebooks(folder: Path) -> list[Path]:
    """Make executed chapter copies fit for a static, offline site.

    Widget outputs need a widget manager loaded from a CDN; on the site each becomes the
    static picture the widget carries (its ``text/html`` fallback) under a short note,
    and the saved widget state is dropped. The trace inspector's static form is kept as
    it is: the site's script steps through it.
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
                    html = data.get("text/html", "")
                    html = "".join(html) if isinstance(html, list) else html
                    # The inspector brings its own static form: the site's script mounts it.
                    keep = INSPECTOR_MARK in html
                    output["data"] = {"text/html": html if keep else WIDGET_NOTE + html}
        nbformat.write(nb, path)
        changed.append(path)
    return changed
