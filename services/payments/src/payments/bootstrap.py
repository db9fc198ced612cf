"""Payments' composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.discovery import Registry, registry_from_url
from chassis.http import ServiceClient
from chassis.messaging import MessageBus, Messaging, asyncapi_router
from chassis.resilience import CircuitBreakerConfig, RetryPolicy
from payments.adapters.psp import HttpPaymentProvider
from payments.adapters.repository import SqlPaymentsUnitOfWork
from payments.entrypoints import consumers
from payments.entrypoints.api import build_routers
from payments.entrypoints.contracts import CONTRACTS
from payments.service_layer.ports import Clock, PaymentProvider
from payments.service_layer.processor import Backoff, PaymentProcessor
from payments.settings import PaymentsSettings

VERSION = "0.1.0"


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: PaymentsSettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def _counts_against_the_psp(error: BaseException) -> bool:
    return not isinstance(error, asyncio.CancelledError)


def build_psp_client(settings: PaymentsSettings, registry: Registry) -> ServiceClient:
    return ServiceClient(
        registry,
        timeout=settings.psp_timeout,
        retry=RetryPolicy(max_attempts=settings.psp_attempts, base_delay=0.05, max_delay=0.5),
        breaker=CircuitBreakerConfig(
            minimum_number_of_calls=20,
            sliding_window_size=50,
            failure_rate_threshold=50,
            slow_call_duration_threshold=max(settings.psp_timeout, 2.0),
            wait_duration_in_open_state=settings.psp_breaker_wait,
            permitted_number_of_calls_in_half_open_state=3,
            is_failure=_counts_against_the_psp,
        ),
    )


def build_app(
    settings: PaymentsSettings,
    *,
    bus: MessageBus | None = None,
    registry: Registry | None = None,
    provider: PaymentProvider | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The payments app. Tests inject a `bus` (e.g. in memory), a `registry` or a fake
    `provider`; production builds them from the settings."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    registry = registry or registry_from_url(settings.registry_url or "memory://")
    client = build_psp_client(settings, registry)
    messaging = (
        Messaging(bus=bus, database=database, service="payments")
        if bus is not None
        else Messaging.from_url(settings.broker_url, database=database, service="payments")
    )
    processor = PaymentProcessor(
        reader=lambda: SqlPaymentsUnitOfWork(database, write=False),
        writer=lambda: SqlPaymentsUnitOfWork(database, write=True),
        provider=provider or HttpPaymentProvider(client, service=settings.psp_service),
        clock=clock,
        backoff=Backoff(settings.retry_base_delay, settings.retry_max_delay),
        on_commit=messaging.notify,
        max_concurrent=settings.max_concurrent_payments,
        sweep_interval=settings.reconcile_interval,
    )
    consumers.register(messaging, wake=processor.wake, clock=clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(database.dispose)
            if settings.should_migrate_on_start:
                await asyncio.to_thread(migrate, settings)
            await registry.start()  # early, so the first psp calls find it (start is idempotent)
            await client.start()
            stack.push_async_callback(client.close)
            await messaging.start()
            stack.push_async_callback(messaging.stop)
            await processor.start()  # its first sweep picks up what a restart left behind
            stack.push_async_callback(processor.stop)
            yield

    return create_app(
        settings,
        [
            *build_routers(reader=lambda: SqlPaymentsUnitOfWork(database, write=False)),
            asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url),
        ],
        title="Mercato payments",
        version=VERSION,
        readiness={"database": database.ping, "broker": messaging.ping},
        lifespan=lifespan,
        registry=registry,
    )
