"""Signing keys: Ed25519 key pairs, sealed at rest, rotated on a schedule, published as JWKS.

A key signs while it is active (not retired). When it is retired another takes over, but
it stays published in the JWK Set until every token it signed has expired
(`publish_until` = retirement + access-token lifetime + clock-skew leeway).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "ALGORITHM",
    "KeyCipher",
    "KeyPolicy",
    "SigningKey",
    "active_key",
    "jwk_set",
    "new_signing_key",
    "published_keys",
    "rotation_due",
]

ALGORITHM = "EdDSA"
CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class KeyPolicy:
    rotation_period: timedelta  # an active key older than this is replaced
    overlap: timedelta  # how long a retired key stays published: the access-token lifetime

    @property
    def publish_after_retirement(self) -> timedelta:
        return self.overlap + CLOCK_SKEW


@dataclass(frozen=True)
class SigningKey:
    kid: str  # RFC 7638 thumbprint of the public key
    public_jwk: dict[str, str]  # {"kty": "OKP", "crv": "Ed25519", "x": ...}
    sealed_private_key: bytes  # encrypted PKCS#8 PEM; see KeyCipher
    created_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.retired_at is None

    def retire(self, *, now: datetime, policy: KeyPolicy) -> SigningKey:
        return replace(self, retired_at=now, publish_until=now + policy.publish_after_retirement)

    def jwk(self) -> dict[str, str]:
        return {**self.public_jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


class KeyCipher:
    """Seals private keys with a passphrase derived from a settings secret.

    The PEM is PKCS#8 encrypted by `cryptography`'s best available scheme, so a copy of the
    database alone does not let anyone mint tokens. Opened keys are cached by kid.
    """

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the key encryption secret must not be empty")
        self._passphrase = hashlib.sha256(b"mercato-identity-keys\x00" + secret.encode()).digest()
        self._opened: dict[str, Ed25519PrivateKey] = {}

    def seal(self, private_key: Ed25519PrivateKey) -> bytes:
        return private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )

    def open(self, key: SigningKey) -> Ed25519PrivateKey:
        """The private key; `ValueError` if it was sealed with another secret."""
        opened = self._opened.get(key.kid)
        if opened is None:
            loaded = serialization.load_pem_private_key(
                key.sealed_private_key, password=self._passphrase
            )
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"key {key.kid} is not an Ed25519 key")
            opened = self._opened[key.kid] = loaded
        return opened

    def can_open(self, key: SigningKey) -> bool:
        try:
            self.open(key)
        except (ValueError, TypeError):
            return False
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_signing_key(cipher: KeyCipher, *, now: datetime) -> SigningKey:
    private_key = Ed25519PrivateKey.generate()
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    # RFC 7638: SHA-256 over the required members, sorted, without whitespace.
    canonical = json.dumps(public, sort_keys=True, separators=(",", ":")).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return SigningKey(
        kid=kid, public_jwk=public, sealed_private_key=cipher.seal(private_key), created_at=now
    )


def active_key(keys: Iterable[SigningKey]) -> SigningKey | None:
    """The key that signs: the newest active one."""
    active = [key for key in keys if key.is_active]
    return max(active, key=lambda k: (k.created_at, k.kid), default=None)


def rotation_due(key: SigningKey | None, *, now: datetime, policy: KeyPolicy) -> bool:
    return key is None or now - key.created_at >= policy.rotation_period


def published_keys(keys: Iterable[SigningKey], *, now: datetime) -> list[SigningKey]:
    """Keys whose signatures may still be valid: active ones and recently retired ones."""
    live = [
        key
        for key in keys
        if key.is_active or (key.publish_until is not None and key.publish_until > now)
    ]
    return sorted(live, key=lambda k: (k.created_at, k.kid), reverse=True)


def jwk_set(keys: Iterable[SigningKey]) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}
