"""Notifications' composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.messaging import MessageBus, Messaging, RetryPolicy, asyncapi_router
from notifications.adapters.repository import SqlNotificationsUnitOfWork
from notifications.entrypoints.api import build_routers
from notifications.entrypoints.consumer import CONSUMER, build_apply
from notifications.entrypoints.contracts import CONTRACTS
from notifications.entrypoints.events import CONSUMED_TYPES
from notifications.service_layer.ports import Clock
from notifications.settings import NotificationsSettings

VERSION = "0.1.0"


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: NotificationsSettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def build_app(
    settings: NotificationsSettings,
    *,
    bus: MessageBus | None = None,
    clock: Clock = utc_now,
    retry: RetryPolicy | None = None,
) -> FastAPI:
    """The notifications app. Tests may inject a `bus` (e.g. an `InMemoryMessageBus` to
    publish into), a `clock` and a faster `retry`; by default the bus is the one
    `settings.broker_url` names."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    if bus is None:
        messaging = Messaging.from_url(
            settings.broker_url, database=database, service=settings.service_name
        )
    else:
        messaging = Messaging(bus=bus, database=database, service=settings.service_name)
    messaging.consume(CONSUMED_TYPES, build_apply(clock), consumer=CONSUMER, retry=retry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if settings.should_migrate_on_start:
                await asyncio.to_thread(migrate, settings)
            await messaging.start()
            try:
                yield
            finally:
                await messaging.stop()
        finally:
            await database.dispose()

    routers = build_routers(
        reader=lambda: SqlNotificationsUnitOfWork.reading(database),
        writer=lambda: SqlNotificationsUnitOfWork.writing(database),
        clock=clock,
        max_page_size=settings.max_page_size,
    )
    return create_app(
        settings,
        [
            *routers,
            asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url),
        ],
        title="Mercato notifications",
        version=VERSION,
        readiness={"database": database.ping, "broker": messaging.ping},
        lifespan=lifespan,
    )
