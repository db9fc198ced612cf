"""Catalog's composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from catalog.adapters.repository import SqlCatalogUnitOfWork
from catalog.entrypoints.api import build_router
from catalog.entrypoints.contracts import CONTRACTS
from catalog.settings import CatalogSettings
from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.messaging import Messaging, asyncapi_router

VERSION = "0.1.0"


def migrate(settings: CatalogSettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def build_app(settings: CatalogSettings, *, messaging: Messaging | None = None) -> FastAPI:
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    if messaging is None:
        messaging = Messaging.from_url(settings.broker_url, database=database, service="catalog")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.should_migrate_on_start:
            await asyncio.to_thread(migrate, settings)
        await messaging.start()
        try:
            yield
        finally:
            await messaging.stop()
            await database.dispose()

    router = build_router(
        reader=lambda: SqlCatalogUnitOfWork(database, write=False),
        writer=lambda: SqlCatalogUnitOfWork(database, write=True, on_commit=messaging.notify),
        max_page_size=settings.max_page_size,
    )
    return create_app(
        settings,
        [router, asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url)],
        title="Mercato catalog",
        version=VERSION,
        readiness={"database": database.ping, "broker": messaging.ping},
        lifespan=lifespan,
    )
