"""How the benchmark's processes talk: the interface between ``tutorial bench`` and its
children, written down once and used by both sides.

``tutorial bench`` (the *parent*) starts two kinds of child process:

* **servers**: ``python -m tutorial.cluster.bench serve --port P --db URL [--redis URL]
  [--name N] [--trace]``, the teaching server as ``tutorial serve`` runs it, minus the
  rate limit (or ``python -m tutorial.cluster.baseline`` for the baseline). A server is
  ready when ``GET /healthz`` answers; it stops on SIGTERM.
* **load generators**: ``python -m tutorial.cluster.bench worker CONFIG``, where
  ``CONFIG`` is a JSON file holding a [WorkerConfig][tutorial.cluster.benchwire.WorkerConfig].

A load generator and the parent exchange one JSON object per line, each with a
``"kind"``:

1. worker → parent (stdout), once every client has connected and joined:
   [Ready][tutorial.cluster.benchwire.Ready];
2. with a warm-up (``WorkerConfig.warmup``), parent → worker, once all workers are
   ready: [WarmUp][tutorial.cluster.benchwire.WarmUp]; the worker's senders send the
   warm-up messages, and the worker answers [Warm][tutorial.cluster.benchwire.Warm]
   once each of its clients has received all of them (every worker's);
3. parent → worker (stdin), once all workers are ready (and warm):
   [Go][tutorial.cluster.benchwire.Go];
4. worker → parent, every 0.25 s while sending:
   [Progress][tutorial.cluster.benchwire.Progress];
5. worker → parent, when every client got every message or at the timeout:
   [Result][tutorial.cluster.benchwire.Result].

A line that is not one of these (a library's stray print) is ignored by
[decode][tutorial.cluster.benchwire.decode]; the parent gives up on a worker whose
stdout ends before its ``Result``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClientSpec:
    """One benchmark client: its user, its login token, its source address (for nginx's
    sticky hash), and whether it sends."""

    user: str
    token: str | None
    addr: str | None
    sender: bool


@dataclass(frozen=True)
class WorkerConfig:
    """What one load generator does (the parent writes it to a JSON file)."""

    kind: str  # "teaching" or "baseline"
    url: str
    clients: list[ClientSpec]
    messages: int  # acked messages per sender
    expected_per_client: int  # deliveries each client must see
    timeout: float
    ca: str | None = None  # the CA file to trust when nginx terminates TLS
    # Before "ready": each sender sends this many acked warm-up messages (text
    # "warmup ..."), and each client waits for warmup_per_client of them; they are
    # neither timed nor counted.
    warmup: int = 0
    warmup_per_client: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data = json.loads(text)
        data["clients"] = [ClientSpec(**c) for c in data["clients"]]
        return cls(**data)


@dataclass(frozen=True)
class Ready:
    """Every client of this worker is connected and in the room."""

    kind: str = "ready"


@dataclass(frozen=True)
class WarmUp:
    """Every worker is connected: send the warm-up messages (parent to worker)."""

    kind: str = "warmup"


@dataclass(frozen=True)
class Warm:
    """Every client of this worker has received every warm-up message."""

    kind: str = "warm"


@dataclass(frozen=True)
class Go:
    """Start sending now (the parent's clock starts)."""

    kind: str = "go"


@dataclass(frozen=True)
class Progress:
    """Deliveries seen so far by this worker's clients."""

    deliveries: int
    kind: str = "progress"


@dataclass(frozen=True)
class Result:
    """The worker's tally: deliveries, the monotonic time of the last one, failed sends,
    and every delivery's latency in milliseconds."""

    deliveries: int
    last: float
    errors: int
    latencies: list[float] = field(default_factory=list)
    kind: str = "result"


Message = Ready | WarmUp | Warm | Go | Progress | Result
_KINDS: dict[str, type[Message]] = {
    "ready": Ready,
    "warmup": WarmUp,
    "warm": Warm,
    "go": Go,
    "progress": Progress,
    "result": Result,
}


def encode(message: Message) -> bytes:
    """One line of the interface."""
    return json.dumps(asdict(message), separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes | str) -> Message | None:
    """The message on one line (None: not a message of this interface)."""
    try:
        data: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        return None
    try:
        return _KINDS[data["kind"]](**data)
    except TypeError:
        return None


__all__ = [
    "ClientSpec",
    "Go",
    "Message",
    "Progress",
    "Ready",
    "Result",
    "Warm",
    "WarmUp",
    "WorkerConfig",
    "decode",
    "encode",
]
