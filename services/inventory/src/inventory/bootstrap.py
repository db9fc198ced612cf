"""Inventory's composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.discovery import Registry
from chassis.messaging import MessageBus, Messaging, asyncapi_router
from inventory.adapters.repository import SqlInventoryUnitOfWork
from inventory.entrypoints.api import build_internal_router, build_router
from inventory.entrypoints.contracts import CONTRACTS
from inventory.entrypoints.expiry import ExpiryLoop
from inventory.entrypoints.grpc_service import GrpcServer, InventoryService
from inventory.entrypoints.messages import register_consumers
from inventory.service_layer.ports import Clock
from inventory.settings import InventorySettings

VERSION = "0.1.0"


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: InventorySettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def build_app(
    settings: InventorySettings,
    *,
    clock: Clock = utc_now,
    bus: MessageBus | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    """The inventory app: HTTP, the gRPC server, the message consumers and the expiry loop,
    all started and stopped by its lifespan. Tests inject a `clock`, a `bus` (e.g. an
    `InMemoryMessageBus`) and a `registry`; production builds the bus from
    `MERCATO_BROKER_URL` and the registry from `MERCATO_REGISTRY_URL`."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    if bus is None:
        messaging = Messaging.from_url(settings.broker_url, database=database, service="inventory")
    else:
        messaging = Messaging(bus=bus, database=database, service="inventory")

    def reader() -> SqlInventoryUnitOfWork:
        return SqlInventoryUnitOfWork(database)

    def writer() -> SqlInventoryUnitOfWork:
        return SqlInventoryUnitOfWork(database, write=True)

    def auditor() -> SqlInventoryUnitOfWork:
        return SqlInventoryUnitOfWork(database, snapshot=True)

    register_consumers(
        messaging,
        initial_stock=settings.initial_stock,
        reservation_ttl=timedelta(seconds=settings.reservation_ttl),
        clock=clock,
    )
    grpc_server = GrpcServer(InventoryService(reader), host=settings.host, port=settings.grpc_port)
    expiry = ExpiryLoop(
        writer, clock=clock, interval=settings.expiry_interval, batch=settings.expiry_batch
    )
    # Filled in once the gRPC server has bound its port (0 picks one); the chassis reads it
    # when it registers the instance, which is after this lifespan's start-up.
    ports: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(database.dispose)
            if settings.should_migrate_on_start:
                await asyncio.to_thread(migrate, settings)
            await messaging.start()
            stack.push_async_callback(messaging.stop)
            ports["grpc"] = await grpc_server.start()
            stack.push_async_callback(grpc_server.stop, settings.shutdown_timeout)
            expiry.start()
            stack.push_async_callback(expiry.stop)
            app.state.grpc_port = ports["grpc"]
            yield

    return create_app(
        settings,
        [
            build_router(reader=reader, writer=writer, clock=clock),
            build_internal_router(reader=auditor),
            asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url),
        ],
        title="Mercato inventory",
        version=VERSION,
        readiness={"database": database.ping, "broker": messaging.ping, "grpc": grpc_server.ping},
        lifespan=lifespan,
        registry=registry,
        extra_ports=ports,
    )
