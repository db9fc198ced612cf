"""Registering publishes `identity.user.registered.v1` through the outbox, password-free."""

import asyncio
from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from chassis import Database
from chassis.messaging import Envelope, InMemoryMessageBus, Messaging
from identity.adapters.passwords import Argon2PasswordHasher
from identity.bootstrap import build_app
from identity.settings import IdentitySettings


async def test_registration_is_published_once_without_secrets(
    make_settings: Callable[..., IdentitySettings],
) -> None:
    config = make_settings()
    bus = InMemoryMessageBus()
    database = Database(config.database_url)
    seen: list[Envelope] = []

    async def record(envelope: Envelope, _: object) -> None:
        seen.append(envelope)

    app = build_app(
        config,
        hasher=Argon2PasswordHasher(time_cost=1, memory_cost=8),
        messaging=Messaging(bus=bus, database=database, service="identity"),
    )
    try:
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://identity"
            ) as client,
        ):
            await bus.subscribe("test", ["identity.user.registered.v1"], record)
            body = {
                "email": "Ada@Example.com",
                "password": "a long enough passphrase",
                "name": "Ada",
            }
            created = await client.post("/api/v1/auth/register", json=body)
            assert created.status_code == 201
            assert (await client.post("/api/v1/auth/register", json=body)).status_code == 409
            for _ in range(100):
                if any(e.data["name"] == "Ada" for e in seen):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
    finally:
        await database.dispose()
    # (the first admin, created at start-up, is a registered user too)
    mine = [e for e in seen if e.subject == created.json()["id"]]
    assert len(mine) == 1
    (event,) = mine
    assert event.data == {
        "user_id": created.json()["id"],
        "email": created.json()["email"],
        "name": "Ada",
    }
    assert "passphrase" not in event.to_bytes().decode()
