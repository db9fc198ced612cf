"""Authorization as FastAPI dependencies, checked before the request body is read.

An unauthorized caller must learn nothing about a route's schema, so `GuardedRoute` runs
every `RoleGuard` of a route before FastAPI parses and validates the body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from chassis._identity import PRINCIPAL_HEADER, InternalTokenCodec, Principal, require

__all__ = ["GuardedRoute", "RoleGuard", "api_router", "current_principal", "require_role"]

_CACHE_KEY = "mercato.principal"


def principal_of(request: Request) -> Principal | None:
    """The caller the gateway vouched for, verified once per request; None if anonymous."""
    if _CACHE_KEY in request.scope:
        cached: Principal | None = request.scope[_CACHE_KEY]
        return cached
    token = request.headers.get(PRINCIPAL_HEADER)
    principal = None
    if token:
        codec: InternalTokenCodec = request.app.state.internal_tokens
        principal = codec.verify(token)
    request.scope[_CACHE_KEY] = principal
    return principal


async def current_principal(request: Request) -> Principal | None:
    """Dependency: the signed-in caller, or None for anonymous callers."""
    return principal_of(request)


class RoleGuard:
    """Dependency that demands a signed-in caller, with `role` when given."""

    def __init__(self, role: str | None = None) -> None:
        self.role = role

    async def __call__(self, request: Request) -> Principal:
        return require(principal_of(request), role=self.role)


def require_role(role: str | None = None) -> RoleGuard:
    return RoleGuard(role)


def _guards(dependant: Dependant) -> Iterator[RoleGuard]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, RoleGuard):
            yield sub.call
        yield from _guards(sub)


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = list(_guards(self.dependant))
        if not guards:
            return handler

        async def guarded(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            return await handler(request)

        return guarded


def api_router(**options: Any) -> APIRouter:
    """An `APIRouter` whose routes check authorization before reading the body."""
    return APIRouter(route_class=GuardedRoute, **options)
