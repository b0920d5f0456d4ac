"""Reference pages generated from the code (single sources of truth)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from tutorial import compat
from tutorial.protocol import catalog, states


def generated_docs() -> dict[str, str]:
    """Relative path -> content of every generated page."""
    state_page = "\n".join(
        [
            "# Client state machine",
            "",
            "Generated from `tutorial/protocol/states.py` by `tutorial docs`; do not edit by hand.",
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


CLI_INTRO = """\
# The `tutorial` command

Generated from the command's own parser (`tutorial/cli.py`) by `tutorial docs`; do not
edit by hand. A test fails when this page and the parser disagree.

Installed with the package (inside `.venv`: `.venv/bin/tutorial`); `python -m tutorial`
is the same command. Every subcommand prints its own help with `--help`. The exit status
is 0 on success; errors in the arguments exit with status 2 and a usage message.
"""


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.nargs == 0 and action.const is True:  # a flag (store_true)
        return "off"
    if action.default is None or action.default == argparse.SUPPRESS:
        return ""
    return f"`{action.default}`"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in compat.argparse_actions(parser):
        if action.dest == "help" or isinstance(action.choices, Mapping):
            continue  # --help, and the subcommands (each has its own section)
        if action.option_strings:
            name = " ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {action.metavar or action.dest.upper()}"
        else:
            name = str(action.metavar or action.dest)
            if action.choices:
                name = f"{{{','.join(map(str, action.choices))}}}"
        # Escaped for Markdown: a pattern such as [a-z][a-z0-9_-] would read as a link.
        help_text = (action.help or "").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
        rows.append(f"| `{name}` | {_default(action)} | {help_text} |")
    return rows if len(rows) > 2 else []


def cli_page(parser: argparse.ArgumentParser, notes: Mapping[str, str]) -> str:
    """``docs/reference/cli.md``: every subcommand of ``parser`` (its help, description,
    usage and arguments), then the hand-written ``notes`` of each, by command path."""
    lines = [CLI_INTRO, "```text", compat.argparse_usage(parser), "```", ""]
    lines += ["| subcommand | what it does |", "|---|---|"]
    commands: list[tuple[str, argparse.ArgumentParser, str]] = []

    def walk(p: argparse.ArgumentParser, path: str, help_text: str) -> None:
        subs = compat.argparse_subcommands(p)
        if not subs:
            commands.append((path, p, help_text))
            return
        for name, sub, sub_help in subs:
            walk(sub, f"{path} {name}", sub_help or help_text)

    for name, sub, help_text in compat.argparse_subcommands(parser):
        walk(sub, name, help_text)
    for path, _, help_text in commands:
        anchor = "tutorial-" + path.replace(" ", "-")
        lines.append(f"| [`{path}`](#{anchor}) | {help_text} |")
    lines.append("")
    for path, sub, help_text in commands:
        lines += [f"## `tutorial {path}`", ""]
        lines += [sub.description or help_text[:1].upper() + help_text[1:] + ".", ""]
        lines += ["```text", compat.argparse_usage(sub), "```", ""]
        options = _options(sub)
        if options:
            lines += [*options, ""]
        if path in notes:
            lines += [notes[path].strip(), ""]
    if "" in notes:
        lines += [notes[""].strip(), ""]
    return "\n".join(lines)


def write_generated_docs(root: Path, pages: Mapping[str, str] | None = None) -> list[Path]:
    written = []
    for rel, content in (pages if pages is not None else generated_docs()).items():
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
    ([tutorial.render.stepper.document][tutorial.render.stepper.document]); the page only lays it
    out.
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
