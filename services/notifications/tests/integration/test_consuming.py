"""Consuming events through a bus (in memory here), on SQLite and PostgreSQL.

Each event makes at most one notification: a redelivery, a republish by the producer's
outbox relay, or a replay months later all find the message in the inbox.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import delete

from chassis import Database
from chassis.messaging import InMemoryMessageBus
from notifications.adapters.orm import inbox

pytestmark = pytest.mark.slow

CONSUMER = "notifications"


async def mailbox(service: Any, callers: Any, user_id: str) -> list[dict[str, Any]]:
    response = await service.client.get(
        "/api/v1/notifications", params={"limit": 100}, headers=callers.user(user_id)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_redelivered_event_makes_one_notification(
    service: Any, events: Any, callers: Any
) -> None:
    welcome = events.registered("u-1")
    await service.publish(welcome, welcome, welcome)
    sentinel = events.order("confirmed", "u-1")  # one subscriber: handled after the copies
    await service.publish(sentinel)
    await service.until_total(2)
    kinds = [n["kind"] for n in await mailbox(service, callers, "u-1")]
    assert kinds == ["order_confirmed", "welcome"]


async def test_an_event_replayed_months_later_makes_no_second_notification(
    start_service: Any, events: Any, callers: Any
) -> None:
    bus = InMemoryMessageBus()
    confirmed = events.order("confirmed", "u-1")
    async with start_service(bus=bus) as service:
        await service.publish(confirmed)
        await service.until_total(1)

    months_later = datetime.now(UTC) + timedelta(days=200)
    async with start_service(bus=bus, clock=lambda: months_later) as service:
        await service.publish(confirmed)  # the same message: same id, same time
        await service.publish(events.order("cancelled", "u-1"))
        await service.until_total(2)
        items = await mailbox(service, callers, "u-1")
    assert [n["kind"] for n in items] == ["order_cancelled", "order_confirmed"]
    assert items[0]["created_at"].startswith(months_later.strftime("%Y-%m-%d"))


async def test_a_forgotten_inbox_still_makes_no_second_notification(
    service: Any, database_url: str, events: Any, callers: Any
) -> None:
    """Should an inbox ever be pruned, the mailbox's unique cause id still holds the line."""
    welcome = events.registered("u-1")
    await service.publish(welcome)
    await service.until_total(1)
    database = Database(database_url)
    try:
        async with database.write_sessions() as session:
            await session.execute(delete(inbox))
            await session.commit()
    finally:
        await database.dispose()

    await service.publish(welcome, events.registered("u-2"))
    await service.until_total(2)
    assert len(await mailbox(service, callers, "u-1")) == 1
    assert len(await mailbox(service, callers, "u-2")) == 1
    assert await service.bus.dead_letters(consumer=CONSUMER) == []


async def test_a_newer_minor_version_is_welcome(service: Any, events: Any, callers: Any) -> None:
    data = {
        "user_id": "u-1",
        "email": "ada@example.com",
        "name": "Ada",
        "locale": "en-GB",
        "marketing_opt_in": False,
    }
    await service.publish(events.envelope("identity.user.registered.v1", "u-1", data))
    await service.until_total(1)
    (welcome,) = await mailbox(service, callers, "u-1")
    assert welcome["title"] == "Welcome to Mercato, Ada"


async def test_malformed_events_are_dead_lettered_at_once(
    service: Any, events: Any, callers: Any
) -> None:
    bad = [
        events.envelope("identity.user.registered.v1", "u-1", {"user_id": "u-1"}),
        events.envelope(
            "orders.order.confirmed.v1",
            "o-1",
            {"order_id": "o-1", "user_id": "u-1", "total": {"amount": 12.9, "currency": "EUR"}},
        ),
        events.envelope(
            "identity.user.registered.v1",
            "u-1",
            {"user_id": "u-1", "email": "a@b.c", "name": "nul\x00"},
        ),
    ]
    await service.publish(*bad)
    bus: InMemoryMessageBus = service.bus
    await bus.inject("identity.user.registered.v1", b"not json at all")
    await bus.inject("orders.order.confirmed.v1", orjson.dumps({"type": "x"}))

    async def all_dead() -> bool:
        return len(await bus.dead_letters(consumer=CONSUMER)) == 5

    await service.until(all_dead, "five dead letters")
    letters = await bus.dead_letters(consumer=CONSUMER)
    assert all(letter.attempts == 1 for letter in letters)  # malformed: no retries
    assert {letter.envelope.id for letter in letters if letter.envelope} == {e.id for e in bad}

    # Nothing was delivered, and the consumer goes on with the next good event.
    await service.publish(events.registered("u-1"))
    await service.until_total(1)
    assert [n["kind"] for n in await mailbox(service, callers, "u-1")] == ["welcome"]


async def test_events_of_types_not_consumed_are_not_delivered(service: Any, events: Any) -> None:
    await service.publish(
        events.envelope("orders.order.cancellation_requested.v1", "o-1", {"order_id": "o-1"}),
        events.envelope("identity.user.registered.v2", "u-1", {"user_id": "u-1"}),
        events.registered("u-1"),
    )
    await service.until_total(1)
    assert await service.bus.dead_letters(consumer=CONSUMER) == []
