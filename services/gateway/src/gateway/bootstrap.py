"""The gateway's composition root: settings in, edge built, the aiohttp app out."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from chassis import InternalTokenCodec, configure_observability
from chassis.discovery import (
    NatsKvRegistry,
    Registry,
    ServiceInstance,
    StaticRegistry,
    registry_from_url,
    utc_now,
)
from chassis.http import ServiceClient
from chassis.tracing import flush_tracing
from gateway.auth import AccessTokenVerifier
from gateway.console import ConsoleApi, build_console
from gateway.console.sampler import Sampler
from gateway.edge import Edge, problem
from gateway.openapi import MergedOpenApi
from gateway.order_events import EventStreamPolicy
from gateway.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from gateway.routing import SERVICE_ROUTES, RouteTable, parse_static_routes
from gateway.settings import GatewaySettings
from gateway.sites import Site

VERSION = "0.1.0"
EDGE = web.AppKey("edge", Edge)
CONSOLE = web.AppKey("console", ConsoleApi)
log = structlog.get_logger("gateway")


def build_app(
    settings: GatewaySettings,
    *,
    registry: Registry | None = None,
    limiter: RateLimiter | None = None,
    order_events: EventStreamPolicy | None = None,
    console_sampler: Sampler | None = None,
    configure_logs: bool = True,
) -> web.Application:
    if configure_logs:  # process-wide: logs and where spans go
        configure_observability(settings, version=VERSION)
    static = parse_static_routes(settings.static_routes)
    routes = RouteTable((*static, *SERVICE_ROUTES))
    if registry is None:
        registry = registry_from_url(settings.registry_url or "memory://")
    client = ServiceClient(registry, timeout=settings.request_timeout)
    upstreams = ServiceClient(
        StaticRegistry.from_spec(";".join(f"{r.service}={r.upstream}" for r in static))
        if static
        else StaticRegistry([]),
        timeout=settings.request_timeout,
    )

    async def fetch_jwks() -> dict[str, Any]:
        answer = await client.request("identity", "GET", "/.well-known/jwks.json", timeout=2.0)
        document: dict[str, Any] = answer.json()
        return document

    if limiter is None:
        limiter = (
            RedisRateLimiter(
                settings.redis_url,
                rate=settings.rate_limit_per_second,
                burst=settings.rate_limit_burst,
            )
            if settings.redis_url
            else InProcessRateLimiter(
                rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
            )
        )
    edge = Edge(
        routes=routes,
        client=client,
        upstreams=upstreams,
        verifier=AccessTokenVerifier(
            fetch_jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        limiter=limiter,
        internal_tokens=InternalTokenCodec(settings.internal_secret.get_secret_value().encode()),
        request_timeout=settings.request_timeout,
        cors_origins=frozenset(o.strip() for o in settings.cors_origins.split(",") if o.strip()),
        max_body_bytes=settings.max_body_bytes,
        order_events=order_events,
    )
    openapi = MergedOpenApi(client, routes, version=VERSION)
    console = build_console(
        settings, registry=registry, client=client, edge=edge, sampler=console_sampler
    )
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # Header limits belong to the request handler, which takes them from here (aiohttp's
        # run_app has no such argument and would drop them).
        handler_args={
            "max_field_size": settings.max_header_bytes,
            "max_line_size": settings.max_header_bytes,
        },
    )

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        if isinstance(registry, NatsKvRegistry):
            try:
                await registry.check()
            except Exception:
                return problem(
                    503,
                    "registry: not connected",
                    request_id=request.headers.get("x-request-id", "-"),
                    instance="/readyz",
                    slug="not-ready",
                    extra={"checks": {"registry": "failing"}},
                )
        return web.json_response({"status": "ready", "checks": {"registry": "ok"}})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def merged_openapi(_: web.Request) -> web.Response:
        return web.Response(body=await openapi.document(), content_type="application/json")

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/openapi.json", merged_openapi)
    # The web UIs and the console's API (admins only), before the catch-all.
    Site.from_package("storefront", mount="").add_routes(app.router)
    Site.from_package("console", mount="/console").add_routes(app.router)
    console.add_routes(app.router)
    # Any path, even one with an encoded line break (`.` alone would leave those to aiohttp's
    # plain-text 404): the edge answers problem+json for all of them.
    app.router.add_route("*", r"/{tail:[\s\S]*}", edge.handle)

    async def lifecycle(_: web.Application) -> Any:
        await registry.start()
        await client.start()
        await upstreams.start()
        now = utc_now()
        await registry.register(
            ServiceInstance(
                service="gateway",
                instance_id=settings.instance_id,
                host=settings.advertise_host or settings.host,
                port=settings.port,
                version=VERSION,
                started_at=now,
                last_heartbeat=now,
            )
        )
        log.info("starting", version=VERSION, port=settings.port)
        yield
        await console.close()  # its sampler uses the registry
        await registry.close()
        await client.close()
        await upstreams.close()
        await limiter.close()
        flush_tracing()
        log.info("stopped")

    app.cleanup_ctx.append(lifecycle)
    app[EDGE] = edge
    app[CONSOLE] = console
    return app
