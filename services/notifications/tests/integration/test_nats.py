"""On a real broker: identity publishes `identity.user.registered.v1` on a nats-server of
our own, and the welcome notification appears in the new user's mailbox."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chassis import EmbeddedNatsServer
from chassis.messaging import Envelope, bus_from_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/notifications.db"


async def test_a_registration_on_nats_lands_as_a_welcome(
    nats_server: EmbeddedNatsServer, start_service: Any, callers: Any
) -> None:
    consumer_bus = bus_from_url(nats_server.url, service="notifications")
    async with start_service(bus=consumer_bus) as service:
        identity = bus_from_url(nats_server.url, service="identity")
        await identity.start()
        try:
            registered = Envelope(
                type="identity.user.registered.v1",
                source="identity",
                subject="user-42",
                data={"user_id": "user-42", "email": "grace@example.com", "name": "Grace"},
            )
            await identity.publish(registered)
            await identity.publish(registered)  # a retried publish: still one welcome
        finally:
            await identity.close()

        async def arrived() -> bool:
            response = await service.client.get(
                "/api/v1/notifications", headers=callers.user("user-42")
            )
            return bool(response.json()["items"])

        await service.until(arrived, "the welcome notification")
        ready = await service.client.get("/readyz")
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        items = (
            await service.client.get("/api/v1/notifications", headers=callers.user("user-42"))
        ).json()["items"]
    assert [n["title"] for n in items] == ["Welcome to Mercato, Grace"]
    assert items[0]["cause"] == {
        "message_id": registered.id,
        "message_type": "identity.user.registered.v1",
    }
