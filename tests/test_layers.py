"""The layer table is enforced: ``lint-imports`` (``make lint``) passes on the package as
it is, and fails when one forbidden import is added to a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "pyproject.toml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package and its import contracts, copied (the real tree is never touched)."""
    shutil.copytree(ROOT / "tutorial", tmp_path / "tutorial")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(copy: Path) -> None:
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "chat/server.py",
            "from tutorial.render import sequence",
            "The chat server draws nothing and knows no trace",
        ),
        ("render/sequence.py", "import tutorial.client.client", "Layers"),
        ("protocol/limits.py", "import asyncio", "Protocol code is sans-I/O"),
        ("client/recovery.py", "import tutorial.trace.model", "The teaching client knows no"),
    ],
)
def test_one_forbidden_import_breaks_the_lint(
    copy: Path, module: str, line: str, contract: str
) -> None:
    path = copy / "tutorial" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = lint_imports(copy)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
