"""Each messaging service serves its AsyncAPI document at `GET /asyncapi.json`, and
subscribes to exactly the types its contracts say it consumes."""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from chassis import Database
from chassis.messaging import (
    Handler,
    InMemoryMessageBus,
    MessageContracts,
    Messaging,
    RetryPolicy,
    Subscription,
    asyncapi,
)

SECRET = "contracts-test-internal-secret"


class RecordingBus(InMemoryMessageBus):
    """The in-memory bus, remembering every type a consumer subscribed to."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed: set[str] = set()

    async def subscribe(
        self,
        consumer: str,
        types: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = RetryPolicy(),
    ) -> Subscription:
        self.subscribed.update(types)
        return await super().subscribe(consumer, types, handler, retry=retry)


def _settings(service: str, tmp_path: Path, **more: Any) -> Any:
    module = importlib.import_module(f"{service}.settings")
    cls = getattr(module, f"{service.capitalize()}Settings")
    return cls(
        environment="test",
        data_dir=tmp_path,
        internal_secret=SECRET,
        broker_url="memory://",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{service}.db",
        **more,
    )


Build = Callable[[Path, RecordingBus, AsyncExitStack], FastAPI]


def _with_messaging(service: str, bus: RecordingBus, settings: Any, stack: AsyncExitStack) -> Any:
    database = Database(settings.database_url)
    stack.push_async_callback(database.dispose)
    return Messaging(bus=bus, database=database, service=service)


def catalog(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from catalog.bootstrap import build_app

    settings = _settings("catalog", tmp_path)
    return build_app(settings, messaging=_with_messaging("catalog", bus, settings, stack))


def identity(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from identity.adapters.passwords import Argon2PasswordHasher
    from identity.bootstrap import build_app

    settings = _settings(
        "identity",
        tmp_path,
        key_encryption_secret="contracts-test-key-secret",
        admin_email="root@mercato.local",
        admin_password="contracts-test-admin-password",
    )
    return build_app(
        settings,
        hasher=Argon2PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        messaging=_with_messaging("identity", bus, settings, stack),
    )


def inventory(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from inventory.bootstrap import build_app

    return build_app(_settings("inventory", tmp_path, grpc_port=0), bus=bus)


def orders(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from orders.bootstrap import build_app

    return build_app(_settings("orders", tmp_path), bus=bus)


def payments(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from payments.bootstrap import build_app

    return build_app(_settings("payments", tmp_path), bus=bus)


def notifications(tmp_path: Path, bus: RecordingBus, stack: AsyncExitStack) -> FastAPI:
    from notifications.bootstrap import build_app

    return build_app(_settings("notifications", tmp_path), bus=bus)


SERVICES: dict[str, Build] = {
    "catalog": catalog,
    "identity": identity,
    "inventory": inventory,
    "orders": orders,
    "payments": payments,
    "notifications": notifications,
}


@asynccontextmanager
async def running(
    service: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingBus]]:
    bus = RecordingBus()
    async with AsyncExitStack() as stack:
        app = SERVICES[service](tmp_path, bus, stack)
        await stack.enter_async_context(
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}")
        )
        yield client, bus


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_the_service_serves_its_asyncapi_and_consumes_what_it_declares(
    service: str, tmp_path: Path
) -> None:
    contracts: MessageContracts = importlib.import_module(
        f"{service}.entrypoints.contracts"
    ).CONTRACTS
    version: str = importlib.import_module(f"{service}.bootstrap").VERSION
    async with running(service, tmp_path) as (client, bus):
        answer = await client.get("/asyncapi.json")
        openapi = (await client.get("/openapi.json")).json()

    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document == asyncapi(contracts, version=version, broker_url_hint="memory://")
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == f"Mercato {service}"
    assert "/asyncapi.json" not in openapi["paths"]
    assert bus.subscribed == set(contracts.consumes)
    for section in ("messages", "schemas"):  # component keys AsyncAPI accepts
        assert all(
            re.fullmatch(r"[a-zA-Z0-9.\-_]+", key) for key in document["components"][section]
        )
    for ref in _refs(document):
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # KeyError: a dangling $ref


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
