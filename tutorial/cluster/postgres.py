"""A throwaway PostgreSQL cluster: ``initdb`` into a temporary directory, ``pg_ctl start``
on a free loopback port, one database, trust authentication; removed by ``stop``.

``initdb`` refuses to run as root, so as root every server binary runs as the
``postgres`` user (``runuser -u postgres --``) in a directory that user owns.

    pg = TempPostgres()
    pg.start()            # pg.url == "postgresql://postgres@127.0.0.1:PORT/chat"
    pg.pause()            # pg_ctl stop: the database is down (fault drills)
    pg.resume()           # pg_ctl start again, same port, same data
    pg.stop()             # stop and delete everything

Streaming replicas (hot standbys) of it, each its own server on its own port::

    standby = TempStandby(pg, name="replica-1")
    standby.start()       # pg_basebackup -R -X stream from pg, then pg_ctl start
    standby.lag_bytes()   # how far its replay is behind the primary's WAL
    standby.pause_replay(); standby.resume_replay()   # lag on purpose (a lesson)
    standby.promote()     # pg_ctl promote: it becomes a primary (after pg stopped)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tutorial.cluster.procs import free_port, tail, wait_until
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

    def __init__(
        self, dbname: str = "chat", port: int | None = None, name: str = "primary"
    ) -> None:
        self.dbname = dbname
        self.name = name
        self.port = port or 0
        self.bin = find_pg_bin()
        self.root: Path | None = None
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        """Running as root: every PostgreSQL command runs as the postgres user."""

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
        if self.as_root:
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
            if self.as_root:
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
        # cluster_name: a standby's WAL receiver uses it as its application_name, so
        # the primary's pg_stat_replication names each replica.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
            # Base backups taken side by side each force a checkpoint, which may recycle
            # a segment another backup has yet to stream ("requested WAL segment ...
            # has already been removed"): keep a little WAL.
            f"-c wal_keep_size=64MB -c cluster_name={self.name}"
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

    def psql(self, sql: str) -> str:
        """Run one SQL statement with ``psql`` (as ``postgres``); its unaligned output."""
        result = self._run(
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            self.dbname,
            "-XAtqc",
            sql,
        )
        return result.stdout.strip()

    def replication(self) -> dict[str, dict[str, Any]]:
        """The primary's view of its standbys (``pg_stat_replication``), by name:
        ``{state, sent_lsn, replay_lsn, lag_bytes}``."""
        rows = self.psql(
            "SELECT application_name, state, sent_lsn, replay_lsn, "
            "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)::bigint "
            "FROM pg_stat_replication ORDER BY application_name"
        )
        out: dict[str, dict[str, Any]] = {}
        for line in rows.splitlines():
            name, state, sent, replay, lag = line.split("|")
            out[name] = {
                "state": state,
                "sent_lsn": sent,
                "replay_lsn": replay,
                "lag_bytes": int(lag) if lag else None,
            }
        return out

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TempStandby(TempPostgres):
    """A hot standby of ``primary``: a base backup, then WAL streamed and replayed.

    ``pg_basebackup -R`` writes ``standby.signal`` and ``primary_conninfo``; the standby
    then connects to the primary as a WAL receiver and replays every change. Reads
    work on it (``hot_standby`` is on by default), writes are refused.
    """

    def __init__(self, primary: TempPostgres, name: str = "replica-1") -> None:
        super().__init__(primary.dbname, name=name)
        self.primary = primary

    def start(self) -> str:
        """Base backup from the primary, start, wait until it streams; returns ``url``."""
        self.root = Path(tempfile.mkdtemp(prefix=f"tutorial-pg-{self.name}-"))
        try:
            if self.as_root:
                shutil.chown(self.root, "postgres", "postgres")
            self._run(
                str(self.bin / "pg_basebackup"),
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary.port),
                "-U",
                "postgres",
            )
            if not self.port:
                self.port = free_port()
            self.resume()
            wait_until(
                lambda: self.primary.replication().get(self.name, {}).get("state") == "streaming",
                30,
                f"{self.name} streaming",
                interval=0.1,
            )
        except BaseException:
            self.stop()
            raise
        return self.url

    def follow(self, primary: TempPostgres) -> None:
        """Stream from another primary (after a promotion): a new ``primary_conninfo``,
        reloaded; ``recovery_target_timeline = latest`` lets it follow the new timeline."""
        self.primary = primary
        conninfo = f"host=127.0.0.1 port={primary.port} user=postgres"
        self.psql(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
        self.psql("SELECT pg_reload_conf()")

    def lag_bytes(self) -> int | None:
        """WAL bytes the primary has written that this standby has not replayed yet."""
        return self.primary.replication().get(self.name, {}).get("lag_bytes")

    def pause_replay(self) -> None:
        """``pg_wal_replay_pause()``: WAL still arrives, but is not applied: reads here
        see the database as it was (replication lag, on purpose)."""
        self.psql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()")

    def promote(self) -> None:
        """``pg_ctl promote``: leave recovery, accept writes (a new timeline)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def is_standby(self) -> bool:
        return self.psql("SELECT pg_is_in_recovery()") == "t"
