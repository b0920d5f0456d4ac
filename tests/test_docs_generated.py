"""Pages generated from the code must match the code (single sources of truth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutorial.docs import generated_docs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rel", sorted(generated_docs()))
def test_generated_page_is_up_to_date(rel: str) -> None:
    committed = (ROOT / rel).read_text(encoding="utf-8")
    assert committed == generated_docs()[rel], f"run `tutorial docs` to regenerate {rel}"


def test_every_error_code_and_event_is_in_the_events_page() -> None:
    from tutorial.protocol.catalog import EVENTS, ErrorCode

    page = (ROOT / "docs/reference/events.md").read_text(encoding="utf-8")
    for event in EVENTS:
        assert f"`{event.name}`" in page
    for code in ErrorCode:
        assert f"`{code.value}`" in page
