"""Identity's composition root: settings in, adapters built, the app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from chassis import Database, create_app, find_migrations, upgrade_database
from chassis.messaging import Messaging, asyncapi_router
from identity.adapters.passwords import Argon2PasswordHasher
from identity.adapters.repository import SqlIdentityUnitOfWork
from identity.domain.keys import KeyCipher, KeyPolicy
from identity.domain.throttling import LoginLimits
from identity.domain.tokens import TokenPolicy
from identity.entrypoints.api import build_router
from identity.entrypoints.contracts import CONTRACTS
from identity.service_layer import handlers
from identity.service_layer.handlers import Authority
from identity.service_layer.ports import Clock, PasswordHasher
from identity.settings import IdentitySettings

VERSION = "0.1.0"

log = logging.getLogger("identity")


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(settings: IdentitySettings) -> None:
    upgrade_database(settings.database_url, find_migrations(__file__))


def build_hasher(settings: IdentitySettings) -> Argon2PasswordHasher:
    return Argon2PasswordHasher(
        time_cost=settings.password_time_cost,
        memory_cost=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )


def build_authority(
    settings: IdentitySettings, *, hasher: PasswordHasher | None = None
) -> Authority:
    access_lifetime = timedelta(seconds=settings.access_token_ttl)
    return Authority(
        hasher=hasher or build_hasher(settings),
        cipher=KeyCipher(settings.key_encryption_secret.get_secret_value()),
        tokens=TokenPolicy(
            issuer=settings.issuer,
            audience=settings.audience,
            access_lifetime=access_lifetime,
            refresh_lifetime=timedelta(seconds=settings.refresh_token_ttl),
        ),
        keys=KeyPolicy(
            rotation_period=timedelta(seconds=settings.key_rotation_period),
            overlap=access_lifetime,
        ),
        limits=LoginLimits(
            per_account=settings.login_max_failures_per_account,
            per_address=settings.login_max_failures_per_address,
            window=timedelta(seconds=settings.login_failure_window),
        ),
    )


async def rotate_keys(settings: IdentitySettings) -> str | None:
    """Force a signing-key rotation now (`python -m identity rotate-keys`): the new kid."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        key = await handlers.rotate_signing_key(
            SqlIdentityUnitOfWork(database, write=True),
            build_authority(settings),
            now=utc_now(),
            force=True,
        )
    finally:
        await database.dispose()
    return key.kid if key else None


def build_app(
    settings: IdentitySettings,
    *,
    hasher: PasswordHasher | None = None,
    clock: Clock = utc_now,
    messaging: Messaging | None = None,
) -> FastAPI:
    """The identity app. Tests inject a fast `hasher` and a `clock`; production uses
    argon2id with the settings' (at least OWASP's) parameters and the wall clock."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    authority = build_authority(settings, hasher=hasher)
    bus = messaging or Messaging.from_url(
        settings.broker_url, database=database, service="identity"
    )

    def reader() -> SqlIdentityUnitOfWork:
        return SqlIdentityUnitOfWork(database, write=False)

    def writer() -> SqlIdentityUnitOfWork:
        return SqlIdentityUnitOfWork(database, write=True, on_commit=bus.notify)

    async def maintain() -> None:
        await handlers.rotate_signing_key(writer(), authority, now=clock())
        await handlers.prune(writer(), authority, now=clock())

    async def maintain_forever() -> None:
        while True:
            await asyncio.sleep(settings.maintenance_interval)
            try:
                await maintain()
            except Exception:  # a database hiccup must not end the loop; retry next round
                log.exception("maintenance_failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if settings.should_migrate_on_start:
                await asyncio.to_thread(migrate, settings)
            await handlers.ensure_admin(
                writer(),
                authority,
                email=settings.admin_email,
                password=settings.admin_password.get_secret_value(),
                now=clock(),
            )
            await maintain()
            await bus.start()
            # Make the dummy hash now, so the first unknown email costs what later ones do.
            await asyncio.to_thread(authority.hasher.verify, None, "")
            maintenance = asyncio.create_task(maintain_forever(), name="identity-maintenance")
            try:
                yield
            finally:
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance
                await bus.stop()
        finally:
            await database.dispose()

    router = build_router(
        reader=reader,
        writer=writer,
        authority=authority,
        clock=clock,
        forwarded_hops=settings.forwarded_hops,
    )
    return create_app(
        settings,
        [router, asyncapi_router(CONTRACTS, version=VERSION, broker_url_hint=settings.broker_url)],
        title="Mercato identity",
        version=VERSION,
        readiness={"database": database.ping, "broker": bus.ping},
        lifespan=lifespan,
    )
