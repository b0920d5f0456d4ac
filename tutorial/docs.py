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
