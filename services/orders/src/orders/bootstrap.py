"""Orders' composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.discovery import Registry, registry_from_url
from chassis.http import ServiceClient
from chassis.messaging import MessageBus, Messaging, asyncapi_router
from chassis.saga import SqlSagaOrchestrator
from orders.adapters.catalog import HttpCatalog
from orders.adapters.repository import SqlOrdersUnitOfWork, SqlOrderTransaction
from orders.entrypoints.api import build_router, install_error_handlers
from orders.entrypoints.contracts import CONTRACTS
from orders.entrypoints.internal import build_internal_router
from orders.entrypoints.messages import build_consumer, consumed_types
from orders.service_layer import handlers
from orders.service_layer.admission import CheckoutAdmission
from orders.service_layer.checkout import checkout_saga
from orders.service_layer.ports import Catalog, Clock
from orders.settings import OrdersSettings

VERSION = "0.1.0"

log = structlog.get_logger("orders")


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: OrdersSettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def pending_budget(settings: OrdersSettings) -> int:
    """The longest a checkout keeps an order PENDING when every participant answers within
    a step timeout: two forward steps, then (on a failure or timeout) two compensations."""
    return math.ceil(4 * settings.saga_step_timeout + settings.saga_poll_interval)


def build_app(
    settings: OrdersSettings,
    *,
    bus: MessageBus | None = None,
    registry: Registry | None = None,
    catalog: Catalog | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The orders app. Tests may inject the bus, the registry (where catalog is found), a
    fake catalog and a clock; production builds them from the settings."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    registry = registry or registry_from_url(settings.registry_url or "memory://")
    client = ServiceClient(registry, timeout=settings.catalog_timeout)
    catalog = catalog or HttpCatalog(client, timeout=settings.catalog_timeout)
    if bus is not None:
        messaging = Messaging(bus=bus, database=database, service=settings.service_name)
    else:
        messaging = Messaging.from_url(
            settings.broker_url, database=database, service=settings.service_name
        )

    def transaction(session: AsyncSession) -> SqlOrderTransaction:
        return SqlOrderTransaction(session, source=settings.service_name)

    orchestrator = SqlSagaOrchestrator(
        database,
        [
            checkout_saga(
                transaction=transaction,
                clock=clock,
                step_timeout=settings.saga_step_timeout,
                max_step_timeout=settings.saga_max_step_timeout,
            )
        ],
        source=settings.service_name,
        notify=messaging.notify,
        clock=clock,
        poll_interval=settings.saga_poll_interval,
        resume_grace=settings.saga_resume_grace,
    )
    messaging.consume(
        consumed_types(orchestrator),
        build_consumer(orchestrator=orchestrator, transaction=transaction, clock=clock),
    )

    def uow(*, write: bool = False) -> SqlOrdersUnitOfWork:
        return SqlOrdersUnitOfWork(
            database,
            write=write,
            orchestrator=orchestrator,
            notify=messaging.notify,
            source=settings.service_name,
        )

    async def forget_old_keys_forever() -> None:
        while True:
            try:
                await handlers.forget_idempotency_keys(
                    uow, ttl=settings.idempotency_ttl, now=clock()
                )
            except Exception:  # a database hiccup must not end the loop; retry next round
                log.exception("idempotency key clean-up failed")
            await asyncio.sleep(settings.maintenance_interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if settings.should_migrate_on_start:
                await asyncio.to_thread(migrate, settings)
            await client.start()
            await messaging.start()
            await orchestrator.start()  # resumes unfinished checkouts, then watches deadlines
            maintenance = asyncio.create_task(forget_old_keys_forever(), name="orders-keys")
            try:
                yield
            finally:
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance
                await orchestrator.stop()
                await messaging.stop()
        finally:
            await client.close()
            await database.dispose()

    app = create_app(
        settings,
        [
            build_router(
                uow=uow,
                catalog=catalog,
                clock=clock,
                max_page_size=settings.max_page_size,
                max_pending=settings.max_pending_orders,
                pending_retry_after=settings.pending_retry_after,
                admission=CheckoutAdmission(
                    max_wait=settings.checkout_max_wait,
                    floor=settings.checkout_floor,
                    horizon=pending_budget(settings),
                ),
            ),
            build_internal_router(
                uow=uow,
                orchestrator=orchestrator,
                saga_timeout_seconds=pending_budget(settings),
                max_page_size=settings.max_page_size,
            ),
            asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url),
        ],
        title="Mercato orders",
        version=VERSION,
        readiness={"database": database.ping, "broker": messaging.ping},
        lifespan=lifespan,
        registry=registry,
    )
    install_error_handlers(app)
    app.state.messaging = messaging
    app.state.orchestrator = orchestrator
    return app
