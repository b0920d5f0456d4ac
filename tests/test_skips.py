"""Under ``make test`` (``TUTORIAL_NO_SKIPS=1``) a skipped test fails; set-up and the tests
find components through one lookup (``tutorial/components.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tutorial import components

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def run_pytest(directory: Path, no_skips: str | None) -> subprocess.CompletedProcess[str]:
    """pytest on ``directory``, whose conftest installs the hook of ``tests/skips.py``."""
    env = {k: v for k, v in os.environ.items() if k != "TUTORIAL_NO_SKIPS"}
    if no_skips is not None:
        env["TUTORIAL_NO_SKIPS"] = no_skips
    env["PYTHONPATH"] = f"{TESTS}{os.pathsep}{ROOT}"
    env["CHROMIUM"] = str(directory / "no-chromium-here")  # the component is missing
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text("from skips import pytest_runtest_makereport  # noqa\n")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "from skips import needs\n\n"
        "@needs('chromium')\n"
        "def test_needs_a_missing_program():\n    pass\n\n"
        "def test_skips_itself():\n    pytest.skip('no reason')\n\n"
        "def test_passes():\n    pass\n"
    )
    return tmp_path


def test_a_skip_is_a_skip_by_hand(suite: Path) -> None:
    done = run_pytest(suite, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout


def test_every_skip_fails_under_make_test(suite: Path) -> None:
    done = run_pytest(suite, "1")
    assert done.returncode == 1, done.stdout
    # A skip mark acts in set-up (reported as an error), pytest.skip() in the call.
    assert "1 failed, 1 passed, 1 error" in done.stdout
    assert "component missing: chromium" in done.stdout


def test_make_test_sets_the_flag_for_pytest_and_the_site() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "NO_SKIPS := TUTORIAL_NO_SKIPS=1" in makefile
    assert re.search(r"^unit:.*\n\t\$\(NO_SKIPS\) \$\(BIN\)/pytest -q", makefile, re.M)
    assert "$(NO_SKIPS) TUTORIAL_SITE_TESTS=1 $(BIN)/pytest -q tests/site" in makefile


def test_set_up_asks_the_same_lookup_as_the_tests() -> None:
    script = (ROOT / "scripts" / "system-packages.sh").read_text()
    assert 'tutorial/components.py" missing' in script
    assert "command -v" not in script.split("mapfile")[0]  # no second lookup before it


def test_the_lookup_follows_the_environment_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "chromium"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert components.find("chromium") == fake
    monkeypatch.delenv("CHROMIUM")
    monkeypatch.setenv("PATH", str(fake.parent))
    assert components.find("chromium") == fake
    monkeypatch.setenv("PATH", str(tmp_path))
    assert components.find("chromium") is None
    assert "chromium" in components.missing_packages()
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "nothing"))
    assert components.find("chromium") is None


def test_set_up_prints_what_the_lookup_misses(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "CHROMIUM": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-P", str(ROOT / "tutorial" / "components.py"), "missing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "chromium" in done.stdout.split()
