"""Where the system programs the tutorial runs for real are found: one lookup for all.

Set-up (``scripts/system-packages.sh`` runs ``python3 tutorial/components.py missing``
to learn which Debian packages to install), the cluster launchers and the tests all ask
[find][tutorial.components.find], so a program set-up accepts is the program the tests
run. Standard library only: set-up runs this file before the virtual environment exists.

    find("chromium")   # $CHROMIUM, else `chromium` on PATH, else None
    find("pg_ctl")     # $PG_BIN/pg_ctl, else PATH, else Debian's newest /usr/lib/postgresql/N/bin
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Component:
    """A program the tutorial runs, and the Debian package that provides it."""

    program: str
    package: str
    env: str | None = None
    """An environment variable naming the program's file (or, for ``PG_BIN``, its directory)."""
    dirs: tuple[str, ...] = ()
    """Directories (globs) looked in after PATH, the newest version first."""


COMPONENTS: dict[str, Component] = {
    c.program: c
    for c in (
        Component("dot", "graphviz"),
        Component("nginx", "nginx-light", dirs=("/usr/sbin",)),
        Component("redis-server", "redis-server", dirs=("/usr/bin", "/usr/sbin")),
        Component("pg_ctl", "postgresql", env="PG_BIN", dirs=("/usr/lib/postgresql/*/bin",)),
        Component("initdb", "postgresql", env="PG_BIN", dirs=("/usr/lib/postgresql/*/bin",)),
        Component("chromium", "chromium", env="CHROMIUM"),
        Component("node", "nodejs"),
        Component("npm", "npm"),
    )
}
"""Every system program, by name (``initdb`` and ``pg_ctl`` come together)."""


def _version(directory: str) -> int:
    for part in reversed(Path(directory).parts):
        if part.isdigit():
            return int(part)
    return 0


def find(program: str) -> Path | None:
    """The program's file: the component's environment variable, then PATH, then its
    known directories (the newest version first); None when it is not installed."""
    component = COMPONENTS[program]
    if component.env and os.environ.get(component.env):
        given = Path(os.environ[component.env])
        path = given / program if given.is_dir() else given
        return path if os.access(path, os.X_OK) else None
    on_path = shutil.which(program)
    if on_path:
        return Path(on_path)
    for pattern in component.dirs:
        for directory in sorted(glob.glob(pattern), key=_version, reverse=True):
            path = Path(directory) / program
            if os.access(path, os.X_OK):
                return path
    return None


def missing_packages() -> list[str]:
    """The Debian packages to install for the programs :func:`find` cannot find."""
    return sorted({c.package for name, c in COMPONENTS.items() if find(name) is None})


def main(argv: list[str]) -> int:
    """``python3 tutorial/components.py missing`` prints one package a line;
    ``... where`` prints each program and where it was found."""
    if argv == ["missing"]:
        for package in missing_packages():
            print(package)
        return 0
    if argv == ["where"]:
        for name in COMPONENTS:
            print(f"{name}: {find(name) or 'not found'}")
        return 0
    print("usage: python3 tutorial/components.py missing|where", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
