"""Access tokens (short-lived JWTs) and refresh tokens (opaque, single use, in families).

Every sign-in starts a refresh-token *family*. A refresh swaps the presented token for a new
one of the same family; presenting a token that was already swapped means someone kept a
copy, so the whole family is revoked (OAuth 2.0 Security BCP, refresh token rotation).
Only SHA-256 hashes of refresh tokens are stored.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from identity.domain.keys import ALGORITHM, KeyCipher, SigningKey
from identity.domain.users import User

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "RefreshToken",
    "TokenPair",
    "TokenPolicy",
    "access_claims",
    "hash_refresh_token",
    "new_refresh_token",
    "sign_access_token",
    "verify_access_token",
]

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 `typ`, not a secret)
REFRESH_TOKEN_BYTES = 32  # 256 bits


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_lifetime: timedelta
    refresh_lifetime: timedelta


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)


@dataclass(frozen=True)
class RefreshToken:
    id: str
    token_hash: str
    family_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None  # swapped for a successor: presenting it again is reuse
    revoked_at: datetime | None = None  # its family was revoked (logout or reuse)

    @property
    def is_spent(self) -> bool:
        return self.rotated_at is not None or self.revoked_at is not None

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_refresh_token(
    *, user_id: str, family_id: str | None, now: datetime, policy: TokenPolicy
) -> tuple[str, RefreshToken]:
    """A fresh opaque token (to hand out once) and its stored record."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    record = RefreshToken(
        id=str(uuid.uuid4()),
        token_hash=hash_refresh_token(token),
        family_id=family_id or str(uuid.uuid4()),
        user_id=user_id,
        issued_at=now,
        expires_at=now + policy.refresh_lifetime,
    )
    return token, record


def access_claims(user: User, *, now: datetime, policy: TokenPolicy) -> dict[str, Any]:
    issued = int(now.timestamp())
    return {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": user.id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(policy.access_lifetime.total_seconds()),
        "jti": uuid.uuid4().hex,
        "roles": sorted(user.roles),
        "email": user.email,
    }


def sign_access_token(claims: dict[str, Any], key: SigningKey, cipher: KeyCipher) -> str:
    return jwt.encode(
        claims,
        cipher.open(key),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def verify_access_token(
    token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    audience: str,
    now: datetime,
    leeway: timedelta = timedelta(0),
) -> dict[str, Any]:
    """The claims of a valid access token, or `jwt.InvalidTokenError`.

    For tests: the gateway verifies tokens in production. `now` is explicit so tests can
    verify at any moment; pyjwt checks signature, algorithm, issuer and audience.
    """
    header = jwt.get_unverified_header(token)
    if header.get("typ") != ACCESS_TOKEN_TYPE or header.get("alg") != ALGORITHM:
        raise jwt.InvalidTokenError("not an EdDSA access token")
    try:
        key = jwt.PyJWKSet.from_dict(jwks)[str(header.get("kid"))]
    except (KeyError, jwt.PyJWKSetError):
        raise jwt.InvalidTokenError("signed by a key that is not published") from None
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=issuer,
        options={
            "require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    moment = now.timestamp()
    if moment >= claims["exp"] + leeway.total_seconds():
        raise jwt.ExpiredSignatureError("the access token has expired")
    if moment < claims["nbf"] - leeway.total_seconds():
        raise jwt.ImmatureSignatureError("the access token is not valid yet")
    return claims
