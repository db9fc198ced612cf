"""The public route table: resource prefixes mapped to services (or static upstreams)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from chassis.errors import ConfigurationError


@dataclass(frozen=True)
class Route:
    prefix: str
    service: str  # a registered service, or the name of a static upstream
    upstream: str | None = None  # a fixed URL outside the registry (strangler routes)


# What the public API is made of. A service not running yet answers 503 problem+json.
SERVICE_ROUTES: tuple[Route, ...] = (
    Route("/api/v1/auth", service="identity"),
    Route("/api/v1/users", service="identity"),
    Route("/api/v1/products", service="catalog"),
    Route("/api/v1/categories", service="catalog"),
    Route("/api/v1/notifications", service="notifications"),
    Route("/api/v1/orders", service="orders"),
    Route("/api/v1/inventory", service="inventory"),
    Route("/api/v1/payments", service="payments"),
)


def route_label(route: Route | None, path: str) -> str:
    """The `route` label of a request in metrics and logs: bounded, unlike the raw path.

    The route's prefix for the collection itself (`POST /api/v1/orders` places an order),
    `<prefix>/*` for anything below it (`/api/v1/orders/{id}/cancel`), `<unmatched>` for a
    path no route takes.
    """
    if route is None:
        return "<unmatched>"
    prefix = route.prefix.rstrip("/")
    return route.prefix if path.rstrip("/") == prefix else f"{prefix}/*"


def parse_static_routes(spec: str) -> tuple[Route, ...]:
    """`/legacy=http://127.0.0.1:9000,/old-shop=http://…` → routes to fixed upstreams."""
    routes = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        prefix, sep, url = item.partition("=")
        if not sep or not prefix.startswith("/") or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"gateway: invalid setting GATEWAY_STATIC_ROUTES: {item!r} is not /prefix=http(s)://…"
            )
        prefix = prefix.rstrip("/") or "/"
        name = "upstream-" + (re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-") or "root")
        routes.append(Route(prefix, service=name, upstream=url.rstrip("/")))
    return tuple(routes)


# A decoded path with dot segments (`..%2f` decodes to `../`) or control characters is not
# the path the service would get: on the way upstream dot segments are resolved and line
# breaks dropped, so `/api/v1/orders/..%2f..%2f..%2finternal/audit/orders` would be routed
# to orders as an order and arrive as `/internal/audit/orders`. Such a path is no resource.
_AMBIGUOUS = re.compile(r"(?:^|/)\.\.?(?:/|$)|[\x00-\x1f\x7f]")


class RouteTable:
    """Longest-prefix match on path segments, precompiled into a dict per prefix length."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self._by_prefix: dict[str, Route] = {}
        for route in routes:  # the first route for a prefix wins: static routes come first
            self._by_prefix.setdefault(route.prefix, route)
        self._lengths = sorted({route.prefix.count("/") for route in routes}, reverse=True)

    def match(self, path: str) -> Route | None:
        if _AMBIGUOUS.search(path):
            return None
        parts = path.split("/")
        for depth in self._lengths:
            if len(parts) > depth:
                route = self._by_prefix.get("/".join(parts[: depth + 1]))
                if route is not None:
                    return route
        return None

    def services(self) -> list[str]:
        return sorted({route.service for route in self.routes if route.upstream is None})
