"""Who is calling: the principal the gateway vouches for, in a short-lived signed token.

The gateway verifies the public access token (JWT) and forwards the caller to services as an
internal token in `X-Mercato-Principal`, HMAC-signed with the platform's internal secret.
A client cannot forge it without the secret, and the gateway strips any copy a client sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chassis.errors import ForbiddenError, UnauthenticatedError

__all__ = [
    "PRINCIPAL_HEADER",
    "InternalTokenCodec",
    "Principal",
]

PRINCIPAL_HEADER = "x-mercato-principal"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InternalTokenCodec:
    """Signs and verifies internal principal tokens: `<payload>.<hmac-sha256>`."""

    def __init__(
        self, secret: bytes, *, ttl: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        if not secret:
            raise ValueError("internal secret must not be empty")
        self._key = hashlib.sha256(b"mercato-internal-principal\x00" + secret).digest()
        self._ttl = ttl
        self._clock = clock

    def issue(self, principal: Principal) -> str:
        payload: dict[str, Any] = {
            "sub": principal.subject,
            "roles": sorted(principal.roles),
            "exp": int(self._clock() + self._ttl),
        }
        if principal.email is not None:
            payload["email"] = principal.email
        body = _b64(orjson.dumps(payload))
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str) -> Principal:
        body, _, signature = token.partition(".")
        if not body or not signature or not hmac.compare_digest(signature, self._sign(body)):
            raise UnauthenticatedError("the internal identity token is not valid")
        try:
            payload = orjson.loads(_unb64(body))
            subject, roles, expiry = payload["sub"], payload["roles"], payload["exp"]
        except (ValueError, KeyError, TypeError):
            raise UnauthenticatedError("the internal identity token is not valid") from None
        if not isinstance(subject, str) or not isinstance(expiry, int):
            raise UnauthenticatedError("the internal identity token is not valid")
        if expiry < self._clock():
            raise UnauthenticatedError("the internal identity token has expired")
        return Principal(subject, frozenset(_strings(roles)), payload.get("email"))

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())


def _strings(values: Iterable[Any]) -> Iterable[str]:
    return (value for value in values if isinstance(value, str))


def require(principal: Principal | None, *, role: str | None = None) -> Principal:
    """The principal, or the right AuthError: 401 when absent, 403 when lacking `role`."""
    if principal is None:
        raise UnauthenticatedError("this operation needs a signed-in user")
    if role is not None and not principal.has_role(role):
        raise ForbiddenError(f"this operation needs the {role} role")
    return principal
