"""A throwaway certificate authority for the cluster's TLS termination.

``tutorial cluster up`` serves ``https://`` and ``wss://`` by default. At start it makes
a fresh CA and a server certificate for ``127.0.0.1``, ``localhost`` and ``::1`` with
`trustme <https://trustme.readthedocs.io>`_ (which uses ``cryptography``), writes the
files nginx needs into the cluster's temporary directory, and forgets them when the
cluster stops. Nothing here is ever committed or reused: every cluster has its own CA,
so trusting it trusts nothing else.

    ca = ThrowawayCA()
    files = ca.write(directory)      # files.cert (chain), files.key (0600), files.ca
    ctx = ca.client_context()        # an ssl.SSLContext that verifies against this CA
    ca.spki_sha256()                 # base64 SHA-256 of the server key, for Chromium

Clients verify for real: hostname and chain, against this CA only. Chromium is told
to accept this one server key by its SPKI hash
(``--ignore-certificate-errors-spki-list``), which is Chromium's way of pinning a
certificate for a test without touching the system's trust store.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

#: The names the server certificate is valid for: what a loopback client dials.
HOSTNAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where nginx finds its certificate chain and key, and clients the CA."""

    cert: Path  # the server certificate followed by the CA (the chain nginx sends)
    key: Path  # the server's private key, readable by its owner only
    ca: Path  # the CA certificate clients trust


class ThrowawayCA:
    """A CA and one server certificate, made in memory at construction time."""

    def __init__(self, hostnames: tuple[str, ...] = HOSTNAMES) -> None:
        import trustme

        self.hostnames = hostnames
        self._ca = trustme.CA(organization_name="socketio-chat-tutorial throwaway CA")
        self._cert = self._ca.issue_cert(*hostnames)

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    @property
    def server_cert_pem(self) -> bytes:
        return self._cert.cert_chain_pems[0].bytes()

    def write(self, directory: Path | str) -> TlsFiles:
        """Write ``server.pem`` (chain), ``server.key`` (mode 0600) and ``ca.pem``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = TlsFiles(directory / "server.pem", directory / "server.key", directory / "ca.pem")
        files.cert.write_bytes(b"".join(p.bytes() for p in self._cert.cert_chain_pems))
        fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self._cert.private_key_pem.bytes())
        files.ca.write_bytes(self.ca_pem)
        return files

    def client_context(self) -> ssl.SSLContext:
        """Verify the server's chain and name against this CA (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode())
        return context

    def spki_sha256(self) -> str:
        """base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate: what
        Chromium's ``--ignore-certificate-errors-spki-list`` takes."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        cert = x509.load_pem_x509_certificate(self.server_cert_pem)
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")

    def describe(self) -> str:
        """One line for a log: who issued what, for which names."""
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(self.server_cert_pem)
        algorithm = type(cert.public_key()).__name__.removeprefix("_")
        return (
            f"server certificate for {', '.join(self.hostnames)} ({algorithm}), "
            f"valid until {cert.not_valid_after_utc:%Y-%m-%d}, issued by a throwaway CA"
        )


def client_context_from(ca_file: Path | str) -> ssl.SSLContext:
    """A verifying client context from a CA file (what another process reads)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
