"""Identity's HTTP API. The gateway exposes these paths as they are.

Client addresses (for login throttling) come from `X-Forwarded-For`: each proxy in front
appends the address it saw, so with `forwarded_hops` proxies (the gateway alone: 1) the
client is that many entries from the right; anything left of it may be forged by the client.
Without the header, or when it is malformed, the socket peer counts.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from chassis import Principal, api_router, clean_text, require_role
from identity.domain.keys import jwk_set
from identity.domain.tokens import TokenPair
from identity.domain.users import User
from identity.service_layer import handlers
from identity.service_layer.handlers import Authority, UnitOfWorkFactory
from identity.service_layer.ports import Clock

_ALLOWED_FORMAT_CHARACTERS = frozenset("\u200c\u200d")  # joiners: emoji and Indic scripts


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _display_name(value: str) -> str:
    value = clean_text(value)
    for character in value:
        category = unicodedata.category(character)
        if category in ("Cc", "Zl", "Zp"):
            raise ValueError("must be a single line without control characters")
        if category == "Cf" and character not in _ALLOWED_FORMAT_CHARACTERS:
            # bidi overrides and invisible characters make names that spoof others
            raise ValueError("must not contain invisible formatting characters")
    return value


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(clean_text)]
SignInEmail = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(clean_text)
]
# Never stripped or otherwise changed here: the domain normalises (NFKC) before hashing.
Password = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    AfterValidator(_valid_unicode),
    Field(json_schema_extra={"format": "password", "writeOnly": True}),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_display_name),
]
RefreshTokenText = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    name: Name


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: SignInEmail
    password: Password


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenText


class UserOut(BaseModel):
    id: str
    email: str
    name: str


class MeOut(UserOut):
    roles: list[str]
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> MeOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            roles=sorted(user.roles),
            created_at=user.created_at,
        )


class TokenOut(BaseModel):
    """The OAuth 2.0 token response shape (RFC 6749 §5.1)."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str

    @classmethod
    def of(cls, pair: TokenPair) -> TokenOut:
        return cls(
            access_token=pair.access_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
        )


def client_address(request: Request, *, hops: int) -> str:
    """The client's IP address as the `hops`-th proxy from the right saw it."""
    if hops > 0:
        entries = [
            entry.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for entry in header.split(",")
        ]
        entries = [entry for entry in entries if entry]
        if len(entries) >= hops:
            try:
                return str(ipaddress.ip_address(entries[-hops]))
            except ValueError:
                pass
    return request.client.host if request.client else "unknown"


def _no_store(response: Response) -> None:
    # Token responses must not be cached anywhere (RFC 6749 §5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def build_router(
    *,
    reader: UnitOfWorkFactory,
    writer: UnitOfWorkFactory,
    authority: Authority,
    clock: Clock,
    forwarded_hops: int,
) -> APIRouter:
    router = api_router(tags=["identity"])
    signed_in = Depends(require_role())

    @router.post(
        "/api/v1/auth/register", response_model=UserOut, status_code=status.HTTP_201_CREATED
    )
    async def register(body: RegisterIn) -> UserOut:
        user = await handlers.register(
            writer(),
            authority,
            email=body.email,
            password=body.password,
            name=body.name,
            now=clock(),
        )
        return UserOut(id=user.id, email=user.email, name=user.name)

    @router.post("/api/v1/auth/token", response_model=TokenOut)
    async def token(body: TokenIn, request: Request, response: Response) -> TokenOut:
        _no_store(response)
        pair = await handlers.sign_in(
            writer(),
            authority,
            email=body.email,
            password=body.password,
            address=client_address(request, hops=forwarded_hops),
            now=clock(),
        )
        return TokenOut.of(pair)

    @router.post("/api/v1/auth/refresh", response_model=TokenOut)
    async def refresh(body: RefreshIn, response: Response) -> TokenOut:
        _no_store(response)
        pair = await handlers.refresh(
            writer(), authority, refresh_token=body.refresh_token, now=clock()
        )
        return TokenOut.of(pair)

    @router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(body: RefreshIn) -> Response:
        await handlers.sign_out(writer(), refresh_token=body.refresh_token, now=clock())
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/api/v1/users/me", response_model=MeOut)
    async def me(response: Response, principal: Principal = signed_in) -> MeOut:
        response.headers["Cache-Control"] = "private, no-store"
        return MeOut.of(await handlers.get_user(reader(), principal.subject))

    async def jwks() -> Response:
        keys = await handlers.public_signing_keys(reader(), now=clock())
        body: dict[str, Any] = jwk_set(keys)
        # Short: a verifier meeting an unknown `kid` should refetch anyway.
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})

    router.add_api_route("/.well-known/jwks.json", jwks, methods=["GET"])
    router.add_api_route("/api/v1/auth/jwks.json", jwks, methods=["GET"])
    return router
