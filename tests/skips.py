"""Skips for a missing component, and the flag that makes every skip a failure.

A test that needs a system program says so with [needs][skips.needs]: the program is
looked up as set-up looks it up ([tutorial.components][tutorial.components]). Run by
hand on a machine without it, the test is skipped, with the reason. Run by ``make
test``, which installed every component and sets ``TUTORIAL_NO_SKIPS=1``, any skip is
a failure: a component that set-up installed and the tests cannot find is a bug, not
a reason to pass. ``tests/conftest.py`` installs the hook below.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from tutorial.components import find

NO_SKIPS = "TUTORIAL_NO_SKIPS"
"""The environment variable ``make test`` sets: when it is ``1``, a skip fails."""


def needs(*programs: str) -> pytest.MarkDecorator:
    """Skip (or, under ``TUTORIAL_NO_SKIPS=1``, fail) unless every program is found."""
    absent = [p for p in programs if find(p) is None]
    return pytest.mark.skipif(
        bool(absent), reason=f"component missing: {', '.join(absent)} (run make setup)"
    )


def skips_fail() -> bool:
    return os.environ.get(NO_SKIPS) == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    """Under ``TUTORIAL_NO_SKIPS=1``, report a skipped test as failed, with its reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and skips_fail() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under make test ({NO_SKIPS}=1), which fails every skip: {reason}"
        )
