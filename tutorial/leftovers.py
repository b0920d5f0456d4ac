"""What a notebook left running: child processes and listening TCP ports.

A chapter's teardown cell closes what the chapter started, then calls
[find_leftovers][tutorial.leftovers.find_leftovers] to *check* it, so that "nothing is
left running" is a finding, not a promise. Linux only (it reads ``/proc``); elsewhere it
says it could not check.

* **Processes**: every descendant of this process (a chat server, nginx, redis-server,
  PostgreSQL started by a cluster), by pid and command line.
* **Ports**: TCP sockets this process listens on, except the Jupyter kernel's own
  (its ZeroMQ sockets).
"""

from __future__ import annotations

import contextlib
import gc
import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Leftovers:
    """What [find_leftovers][tutorial.leftovers.find_leftovers] found.

    True when something is still running."""

    closed: int
    processes: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    checked: bool = True
    notes: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.processes or self.ports)

    def lines(self) -> list[str]:
        out = [f"closed {self.closed} live chat(s)"]
        if not self.checked:
            out.append("could not check for processes and ports here (no /proc)")
            return out
        if not self:
            out.append("checked: no child process and no listening port is left")
        for proc in self.processes:
            out.append(f"✗ still running: process {proc}")
        for port in self.ports:
            out.append(f"✗ still listening: 127.0.0.1:{port}")
        out.extend(self.notes)
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        colour = "#842029" if self else "#0f5132"
        body = "<br>".join(html.escape(line) for line in self.lines())
        return f"<div class='tutorial-teardown' style='color:{colour}'>{body}</div>"


def child_processes(pid: int | None = None) -> list[str]:
    """``"pid command line"`` for every live descendant of ``pid`` (default: this one)."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie is gone, only not yet reaped
            continue
        parents[int(entry.name)] = int(fields[1])
    found: list[str] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for child, ppid in sorted(parents.items()):
            if ppid == parent:
                frontier.append(child)
                try:
                    cmd = (PROC / str(child) / "cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found.append(f"{child} {cmd.decode(errors='replace').strip()[:120]}")
    return found


def listening_ports() -> set[int]:
    """TCP ports (IPv4 and IPv6) on which this process holds a listening socket."""
    inodes = set()
    for fd in (PROC / "self" / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def kernel_ports() -> set[int]:
    """The ports of this Jupyter kernel's own sockets (none outside a kernel): its five
    channels, and whatever else its ZeroMQ sockets are bound to (the tutorial itself
    uses no ZeroMQ)."""
    ports: set[int] = set()
    try:
        from ipykernel.connect import get_connection_info

        info = get_connection_info(unpack=True)
    except Exception:
        info = {}
    if isinstance(info, dict):
        ports |= {int(v) for k, v in info.items() if k.endswith("_port") and v}
    zmq = sys.modules.get("zmq")
    if zmq is not None:
        for obj in gc.get_objects():
            # type(), not isinstance(): a weakref proxy among the objects forwards
            # __class__ and raises ReferenceError once its referent is gone.
            if issubclass(type(obj), zmq.Socket) and not obj.closed:
                with contextlib.suppress(Exception):
                    endpoint = obj.getsockopt(zmq.LAST_ENDPOINT).decode()
                    if endpoint.startswith("tcp://"):
                        ports.add(int(endpoint.rsplit(":", 1)[1]))
    return ports


def find_leftovers(closed: int = 0) -> Leftovers:
    if not (PROC / "self" / "fd").exists():
        return Leftovers(closed, checked=False)
    processes = tuple(child_processes())
    ports = tuple(sorted(listening_ports() - kernel_ports()))
    return Leftovers(closed, processes, ports)
