"""One OpenAPI document for the public API, merged from the services' own documents."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog

from chassis.http import ServiceClient, ServiceUnavailableError
from gateway.routing import RouteTable

log = structlog.get_logger("gateway.openapi")


def merge(
    documents: dict[str, dict[str, Any]], routes: RouteTable, *, version: str
) -> dict[str, Any]:
    """Public paths of each service (those the route table sends to it), with schemas
    renamed `<Service>_<Name>` where two services use one name for different schemas."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for service, document in sorted(documents.items()):
        own = document.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service.capitalize()}_{name}"
            for name, schema in own.items()
            if name in schemas and schemas[name] != schema
        }
        text = orjson.dumps(document).decode()
        for old, new in renames.items():
            text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
        document = orjson.loads(text)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        for path, item in document.get("paths", {}).items():
            route = routes.match(path)
            if route is not None and route.service == service:
                paths[path] = _bearer_secured(item)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mercato public API",
            "version": version,
            "description": "Merged by the gateway from each service's own OpenAPI document.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _bearer_secured(item: dict[str, Any]) -> dict[str, Any]:
    """A service's guarded operation wants the internal identity token, which the gateway
    makes from the client's bearer token: publicly, it wants the bearer token."""
    for operation in item.values():
        if isinstance(operation, dict) and "security" in operation:
            operation["security"] = [{"bearer": []}]
    return item


class MergedOpenApi:
    """Fetches and merges on demand, cached for `ttl` seconds; a service that is down is
    left out (and listed in `x-missing-services`) rather than failing the whole document."""

    def __init__(
        self, client: ServiceClient, routes: RouteTable, *, version: str, ttl: float = 30.0
    ) -> None:
        self.client = client
        self.routes = routes
        self.version = version
        self.ttl = ttl
        self._cached: tuple[float, bytes] | None = None

    async def document(self) -> bytes:
        if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
            return self._cached[1]
        services = self.routes.services()
        fetched = await asyncio.gather(*(self._fetch(s) for s in services))
        documents = {s: d for s, d in zip(services, fetched, strict=True) if d is not None}
        merged = merge(documents, self.routes, version=self.version)
        missing = [s for s, d in zip(services, fetched, strict=True) if d is None]
        if missing:
            merged["x-missing-services"] = missing
        body = orjson.dumps(merged)
        # A partial document is cached briefly, so a service coming up shows soon.
        self._cached = (time.monotonic() - (self.ttl - 2 if missing else 0), body)
        return body

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        try:
            answer = await self.client.request(service, "GET", "/openapi.json", timeout=2.0)
        except ServiceUnavailableError:
            return None
        if answer.status != 200:
            return None
        document: dict[str, Any] = answer.json()
        return document
