"""`create_app`: a FastAPI application with everything a Mercato service needs around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import Response

from chassis._guards import GuardedRoute
from chassis._identity import InternalTokenCodec
from chassis._middleware import ServiceMiddleware
from chassis._observability import configure_observability
from chassis._openapi import document_problems_and_guards
from chassis._problems import install_problem_handlers, request_problem
from chassis._settings import ServiceSettings
from chassis.discovery import (
    NatsKvRegistry,
    Registry,
    ServiceInstance,
    registry_from_url,
    utc_now,
)
from chassis.tracing import flush_tracing

__all__ = ["ReadinessCheck", "create_app"]

ReadinessCheck = Callable[[], Awaitable[object]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

log = structlog.get_logger("chassis.app")


def create_app(
    settings: ServiceSettings,
    routers: Sequence[APIRouter] = (),
    *,
    title: str | None = None,
    version: str = "0.1.0",
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan | None = None,
    readiness_timeout: float = 2.0,
    configure_logs: bool = True,
    registry: Registry | None = None,
    extra_ports: Mapping[str, int] | None = None,
) -> FastAPI:
    """A service's FastAPI app with health, metrics, JSON logs and problem+json errors.

    With `configure_logs` (the default) it also sets this process's logging and tracing
    (see `chassis.tracing.configure_tracing`). `readiness` names the checks `/readyz` runs
    (e.g. the database, the broker); each is an async callable that raises when its
    dependency is not usable. `lifespan` is the service's own start-up/shutdown (open and
    close its adapters).

    With a `registry` (or `settings.registry_url`), the instance registers itself once its
    own start-up is done, and deregisters first thing on shutdown, so callers stop sending
    before anything closes. `extra_ports` (e.g. `{"grpc": 50051}`) are registered too.
    """
    if configure_logs:  # process-wide: logs and where spans go
        configure_observability(settings, version=version)
    checks = dict(readiness or {})
    if registry is None and settings.registry_url:
        registry = registry_from_url(settings.registry_url)
    if registry is not None and isinstance(registry, NatsKvRegistry):
        checks.setdefault("registry", registry.check)

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("starting", version=version, port=settings.port)
        async with AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            if registry is not None:
                await registry.start()
                stack.push_async_callback(registry.close)
                await registry.register(_this_instance(settings, version, extra_ports or {}))
            yield
        flush_tracing()
        log.info("stopped")

    app = FastAPI(
        title=title or settings.service_name,
        version=version,
        lifespan=app_lifespan,
        # The chassis makes the spans, metrics and logs (the same way for FastAPI services
        # and the aiohttp gateway); FastAPI's own OpenTelemetry support would duplicate them.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.route_class = GuardedRoute
    app.state.settings = settings
    app.state.internal_tokens = InternalTokenCodec(
        settings.internal_secret.get_secret_value().encode()
    )
    install_problem_handlers(app)
    document_problems_and_guards(app)
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.max_body_bytes)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        results = await _run_checks(checks, timeout=readiness_timeout)
        failed = {name: error for name, error in results.items() if error is not None}
        summary = {name: "ok" if error is None else "failing" for name, error in results.items()}
        if failed:
            return request_problem(
                request,
                503,
                title="Not ready",
                detail="; ".join(f"{name}: {error}" for name, error in failed.items()),
                slug="not-ready",
                extra={"checks": summary},
            )
        return JSONResponse({"status": "ready", "checks": summary})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


def _this_instance(
    settings: ServiceSettings, version: str, ports: Mapping[str, int]
) -> ServiceInstance:
    now = utc_now()
    return ServiceInstance(
        service=settings.service_name,
        instance_id=settings.instance_id,
        host=settings.advertise_host or settings.host,
        port=settings.port,
        ports=dict(ports),
        version=version,
        started_at=now,
        last_heartbeat=now,
    )


async def _run_checks(
    checks: Mapping[str, ReadinessCheck],
    *,
    timeout: float,
) -> dict[str, str | None]:
    async def run(check: ReadinessCheck) -> str | None:
        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return f"no answer within {timeout}s"
        except Exception as error:  # a failing dependency is reported, not raised
            return type(error).__name__
        return None

    names = list(checks)
    outcomes = await asyncio.gather(*(run(checks[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))
