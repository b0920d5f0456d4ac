"""A tap in front of a TLS-terminating balancer: what the Internet side sees.

    tap = TlsTap(trace, upstream=("127.0.0.1", nginx_port), name_of=names.get)
    await tap.start()
    client = ChatClient(tap.url, ...)        # https://127.0.0.1:TAP_PORT, same certificate

Each TCP connection is relayed to the balancer unchanged
([LoopbackProxy][tutorial.trace.proxy.LoopbackProxy]'s loop), from the *client's own
source address* (a client bound to 127.0.0.3 reaches nginx as 127.0.0.3, so sticky
sessions still hold). A copy of each direction goes through a
[RecordDecoder][tutorial.protocol.tls.RecordDecoder]; every record becomes a ``tls``
event between the client's lifeline (``name_of(address)``) and the balancer's. The
handshake's hellos are readable; all the rest is "application data, N bytes
(encrypted)". Put beside the wiretaps behind the balancer, the two views show what TLS
termination means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tutorial.protocol.layers import C2S, DecodeError, Direction, Layer
from tutorial.protocol.tls import RecordDecoder, TlsRecord
from tutorial.trace.model import Trace
from tutorial.trace.proxy import LoopbackProxy, Relayed


@dataclass
class TlsConnection(Relayed):
    """One relayed connection: the client's lifeline and a record decoder each way."""

    client: str = "?"
    decoders: dict[Direction, RecordDecoder] = field(default_factory=dict)


class TlsTap(LoopbackProxy[TlsConnection]):
    """An asyncio TCP proxy that records TLS records, never decrypting them."""

    def __init__(
        self,
        trace: Trace,
        upstream: tuple[str, int],
        *,
        balancer_lifeline: str = "nginx",
        balancer_label: str = "nginx (TLS)",
        name_of: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__(upstream)
        self.trace = trace
        self.balancer = balancer_lifeline
        self.balancer_label = balancer_label
        self.name_of = name_of or (lambda address: None)
        self.recording = True
        """False: keep relaying, record nothing."""
        self.failures: list[str] = []
        """Exceptions caught while recording (the relayed bytes were not affected)."""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # -- the relay's hooks -------------------------------------------------------------

    def opened(self, number: int, peer_port: int) -> TlsConnection:
        return TlsConnection(number)

    def source(self, conn: TlsConnection, peer_host: str) -> tuple[str, int] | None:
        conn.client = self.name_of(peer_host) or peer_host
        # From the client's own address: nginx's sticky hash sees the client, not the tap.
        return (peer_host, 0) if peer_host.startswith("127.") else None

    def received(self, conn: TlsConnection, direction: Direction, data: bytes) -> None:
        if not self.recording:
            return
        try:
            decoder = conn.decoders.setdefault(direction, RecordDecoder())
            t = self.trace.elapsed()
            for record in decoder.receive_data(data):
                self._record(conn.client, direction, record, t)
        except Exception as exc:  # never let recording break the connection
            self.failures.append(f"{type(exc).__name__}: {exc}")

    # -- recording ---------------------------------------------------------------------

    def _record(
        self, client: str, direction: Direction, record: TlsRecord | DecodeError, t: float
    ) -> None:
        self.trace.add_lifeline(client, client, "client")
        self.trace.add_lifeline(self.balancer, self.balancer_label, "balancer")
        source, target = (client, self.balancer) if direction is C2S else (self.balancer, client)
        if isinstance(record, DecodeError):
            self.trace.record(source, target, Layer.TLS, str(record), kind="error", t=t)
            return
        fields = {"type": record.kind, "length": record.length, "encrypted": record.encrypted}
        if record.server_name:
            fields["server_name"] = record.server_name
        self.trace.record(
            source, target, Layer.TLS, str(record), fields=fields, raw=record.raw, t=t
        )


__all__ = ["TlsConnection", "TlsTap"]
