"""A throwaway PostgreSQL cluster: ``initdb`` into a temporary directory, ``pg_ctl start``
on a free loopback port, one database, trust authentication; removed by ``stop``.

``initdb`` refuses to run as root, so as root every server binary runs as the
``postgres`` user (``runuser -u postgres --``) in a directory that user owns.

    pg = TempPostgres()
    pg.start()            # pg.url == "postgresql://postgres@127.0.0.1:PORT/chat"
    pg.pause()            # pg_ctl stop: the database is down (fault drills)
    pg.resume()           # pg_ctl start again, same port, same data
    pg.stop()             # stop and delete everything
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tutorial.cluster.procs import free_port, tail
from tutorial.components import find


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl) are not installed."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``, as set-up finds them
    ([tutorial.components][tutorial.components]: $PG_BIN, then PATH, then Debian's
    newest ``/usr/lib/postgresql/<version>/bin``)."""
    initdb, pg_ctl = find("initdb"), find("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PostgresMissing("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN")
    # resolve(): a link on PATH (/usr/local/bin/initdb) points into the real directory,
    # which also holds postgres and pg_basebackup.
    return initdb.resolve().parent


class TempPostgres:
    """One PostgreSQL server of our own, on 127.0.0.1 and a free port."""

    def __init__(self, dbname: str = "chat", port: int | None = None) -> None:
        self.dbname = dbname
        self.port = port or 0
        self.bin = find_pg_bin()
        self.root: Path | None = None
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def data(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "postgres.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{tail(self.logfile) if self.root else ''}"
            )
        return result

    def start(self) -> str:
        """initdb, start, create the database; returns ``url``."""
        self.root = Path(tempfile.mkdtemp(prefix="tutorial-pg-"))
        try:
            if self._as_root:
                shutil.chown(self.root, "postgres", "postgres")
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
            if not self.port:
                self.port = free_port()
            self.resume()
            self._run(
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.dbname,
            )
        except BaseException:
            self.stop()
            raise
        return self.url

    def resume(self) -> None:
        """``pg_ctl start`` (again): same data, same port. Returns when it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def pause(self, mode: str = "fast") -> None:
        """``pg_ctl stop``: the database goes away (connections are cut), data stays."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        if self.root is None or not (self.data / "postmaster.pid").exists():
            return False
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return result.returncode == 0

    def stop(self) -> None:
        """Stop the server (immediately) and delete its directory. Safe to call twice."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                    check=False,
                )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
