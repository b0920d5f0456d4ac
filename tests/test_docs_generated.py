"""Pages generated from the code must match the code (single sources of truth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutorial.cli import generated_pages

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rel", sorted(generated_pages()))
def test_generated_page_is_up_to_date(rel: str) -> None:
    committed = (ROOT / rel).read_text(encoding="utf-8")
    assert committed == generated_pages()[rel], f"run `tutorial docs` to regenerate {rel}"


def test_every_error_code_and_event_is_in_the_events_page() -> None:
    from tutorial.protocol.catalog import EVENTS, ErrorCode

    page = (ROOT / "docs/reference/events.md").read_text(encoding="utf-8")
    for event in EVENTS:
        assert f"`{event.name}`" in page
    for code in ErrorCode:
        assert f"`{code.value}`" in page


def test_the_cli_page_names_every_option_of_every_subcommand() -> None:
    from tutorial import compat
    from tutorial.cli import build_parser

    page = (ROOT / "docs/reference/cli.md").read_text(encoding="utf-8")
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        parsers += [sub for _, sub, _ in compat.argparse_subcommands(parser)]
        for action in compat.argparse_actions(parser):
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, option
