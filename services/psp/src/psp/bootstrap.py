"""The psp's composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from starlette.responses import Response

from chassis import Database, create_app, find_migrations, upgrade_database
from psp.adapters.repository import SqlPspUnitOfWork
from psp.domain.faults import FaultInjector, FaultKnobs
from psp.entrypoints.api import bad_request_response, build_routers
from psp.errors import BadRequestError
from psp.settings import PspSettings

VERSION = "0.1.0"


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: PspSettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def build_faults(settings: PspSettings) -> FaultInjector:
    return FaultInjector(
        FaultKnobs(
            latency_ms=settings.fault_latency_ms,
            error_rate=settings.fault_error_rate,
            timeout_after_charge_rate=settings.fault_timeout_after_charge_rate,
            timeout_seconds=settings.fault_timeout_seconds,
        ),
        rng=random.Random(settings.fault_seed),
    )


def build_app(
    settings: PspSettings,
    *,
    faults: FaultInjector | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    database = Database(settings.database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.should_migrate_on_start:
            await asyncio.to_thread(migrate, settings)
        try:
            yield
        finally:
            await database.dispose()

    injector = faults or build_faults(settings)
    app = create_app(
        settings,
        build_routers(
            reader=lambda: SqlPspUnitOfWork(database, write=False),
            writer=lambda: SqlPspUnitOfWork(database, write=True),
            faults=injector,
            clock=clock,
        ),
        title="Mercato psp (simulated payment provider)",
        version=VERSION,
        readiness={"database": database.ping},
        lifespan=lifespan,
    )
    app.state.faults = injector

    async def on_bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequestError)
        return bad_request_response(request, exc)

    app.add_exception_handler(BadRequestError, on_bad_request)
    return app
