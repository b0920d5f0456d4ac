"""Passwords and tokens.

Passwords are stored as salted scrypt hashes (stdlib ``hashlib.scrypt``), compared
in constant time. A successful login returns a signed, expiring token (itsdangerous),
which a client may send later in the Socket.IO CONNECT ``auth`` payload or in
``authenticate {token}`` instead of the password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from tutorial.chat.store import UserRecord

# RFC 7914 parameters: N=2**14, r=8, p=1 is the common interactive-login choice
# (about 16 MiB and a few tens of milliseconds per check).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str, salt: str | None = None) -> tuple[str, str]:
    """Return ``(salt, hash)`` as hex strings."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return salt, digest.hex()


def make_user(name: str, password: str) -> UserRecord:
    salt, digest = hash_password(password)
    return UserRecord(name, salt, digest)


def check_password(record: UserRecord, password: str) -> bool:
    _, digest = hash_password(password, record.salt)
    return hmac.compare_digest(digest, record.password_hash)


class TokenSigner:
    """Signs ``{"u": user}`` with the server secret; tokens expire after ``ttl`` seconds."""

    def __init__(self, secret: str, ttl: int = 3600) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="chat-token")
        self.ttl = ttl

    def issue(self, user: str) -> str:
        return str(self._serializer.dumps({"u": user}))

    def verify(self, token: str, max_age: int | None = None) -> str | None:
        """The user a valid token names, or None for a forged, mangled or expired one."""
        try:
            data = self._serializer.loads(token, max_age=self.ttl if max_age is None else max_age)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        return str(data["u"])
