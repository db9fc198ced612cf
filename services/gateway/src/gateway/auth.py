"""Authentication at the edge: access tokens (JWT) verified against identity's JWKS.

Only EdDSA is accepted, so `alg=none` and RS/HS confusion fail before any key is used;
`iss`, `aud`, `exp` and the `at+jwt` type are required. Keys come from identity's JWKS,
cached, and fetched again when a token names an unknown `kid` (at most every few
seconds, so forged kids cannot turn the gateway into a JWKS flood). Verified tokens are
cached until they expire: a signature check costs far more than a dict lookup.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import structlog

from chassis import Principal
from chassis.errors import UnauthenticatedError

log = structlog.get_logger("gateway.auth")

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
_ALGORITHMS = ["EdDSA"]


class AccessTokenVerifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        refetch_interval: float = 5.0,
        cache_size: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self.issuer = issuer
        self.audience = audience
        self.refetch_interval = refetch_interval
        self.cache_size = cache_size
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        principal, expiry = await self._verify(token)
        self._verified[token] = (principal, expiry)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnauthenticatedError("the access token is malformed") from None
        if header.get("alg") not in _ALGORITHMS:
            raise UnauthenticatedError("the access token's algorithm is not accepted")
        if header.get("typ") != "at+jwt":
            raise UnauthenticatedError("the token is not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise UnauthenticatedError("the access token names no key")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("the access token has expired") from None
        except jwt.PyJWTError:
            raise UnauthenticatedError("the access token is not valid") from None
        roles = claims.get("roles", [])
        principal = Principal(
            subject=str(claims["sub"]),
            roles=frozenset(r for r in roles if isinstance(r, str))
            if isinstance(roles, list)
            else frozenset(),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        )
        return principal, float(claims["exp"])

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is None and self._clock() - self._fetched_at >= self.refetch_interval:
            await self.refresh()
            key = self._keys.get(kid)
        if key is None:
            raise UnauthenticatedError("the access token was signed by an unknown key")
        return key

    async def refresh(self) -> None:
        self._fetched_at = self._clock()
        try:
            document = await self._fetch_jwks()
        except Exception as error:  # identity down: keep the keys we have
            log.warning("jwks_fetch_failed", error=type(error).__name__)
            return
        keys: dict[str, jwt.PyJWK] = {}
        for item in document.get("keys", []):
            kid = item.get("kid") if isinstance(item, dict) else None
            if not isinstance(kid, str):
                continue
            try:
                keys[kid] = jwt.PyJWK(item, algorithm="EdDSA")
            except jwt.PyJWTError:
                log.warning("jwks_key_skipped", kid=kid)
        self._keys = keys
