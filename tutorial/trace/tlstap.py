"""A tap in front of a TLS-terminating balancer: what the Internet side sees.

    tap = TlsTap(trace, upstream=("127.0.0.1", nginx_port), name_of=names.get)
    await tap.start()
    client = ChatClient(tap.url, ...)        # https://127.0.0.1:TAP_PORT, same certificate

Each TCP connection is relayed to the balancer unchanged, from the *client's own source
address* (a client bound to 127.0.0.3 reaches nginx as 127.0.0.3, so sticky sessions
still hold). A copy of each direction goes through a :class:`~tutorial.protocol.tls.
RecordDecoder`; every record becomes a ``tls`` event between the client's lifeline
(``name_of(address)``) and the balancer's. The handshake's hellos are readable; all
the rest is "application data, N bytes (encrypted)". Put beside the wiretaps behind the
balancer, the two views show what TLS termination means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tutorial.protocol.layers import DecodeError, Direction, Layer
from tutorial.protocol.tls import RecordDecoder, TlsRecord
from tutorial.trace.model import Trace
from tutorial.trace.proxy import LoopbackProxy

CHUNK = 65536
C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


class TlsTap(LoopbackProxy):
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
        #: False: keep relaying, record nothing.
        self.recording = True
        self.failures: list[str] = []

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = str((writer.get_extra_info("peername") or ("?", 0))[0])
        client = self.name_of(address) or address
        # From the client's own address: nginx's sticky hash sees the client, not the tap.
        local = (address, 0) if address.startswith("127.") else None
        await self.relay_both_ways(
            reader,
            writer,
            lambda src, dst, direction: self._pump(client, src, dst, direction),
            local_addr=local,
        )

    async def _pump(
        self,
        client: str,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        decoder = RecordDecoder()
        try:
            while data := await src.read(CHUNK):
                dst.write(data)  # relay first, unchanged
                self._observe(client, decoder, direction, data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass

    def _observe(
        self, client: str, decoder: RecordDecoder, direction: Direction, data: bytes
    ) -> None:
        if not self.recording:
            return
        try:
            t = self.trace.elapsed()
            for record in decoder.receive_data(data):
                self._record(client, direction, record, t)
        except Exception as exc:  # never let recording break the connection
            self.failures.append(f"{type(exc).__name__}: {exc}")

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
