"""Use cases and event handling on the in-memory fakes (`events` builds envelopes: conftest)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chassis.messaging import Envelope, MalformedMessageError
from notifications.adapters.memory import InMemoryNotificationsUnitOfWork
from notifications.domain.model import NewsKind, NotificationKind
from notifications.entrypoints.consumer import handle
from notifications.errors import NotificationNotFoundError
from notifications.service_layer import handlers
from notifications.service_layer.ports import MailboxQuery, NewsQuery


class Ticking:
    """A clock that moves one second per reading, so creation order is unambiguous."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def uow() -> InMemoryNotificationsUnitOfWork:
    return InMemoryNotificationsUnitOfWork()


@pytest.fixture
def clock() -> Ticking:
    return Ticking()


async def consume(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, *envelopes: Envelope
) -> None:
    for envelope in envelopes:
        await handle(uow, envelope, clock=clock)


async def test_registration_sends_a_welcome(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    envelope = events.registered("u-1", name="Ada")
    await consume(uow, clock, envelope)
    (notification,) = uow.committed_notifications.rows.values()
    assert notification.user_id == "u-1"
    assert notification.kind is NotificationKind.WELCOME
    assert notification.title == "Welcome to Mercato, Ada"
    assert notification.cause.message_id == envelope.id
    assert notification.cause.message_type == "identity.user.registered.v1"
    assert notification.read_at is None


async def test_the_same_event_twice_makes_one_notification(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    envelope = events.order("confirmed", "u-1")
    await consume(uow, clock, envelope, envelope)
    assert len(uow.committed_notifications.rows) == 1


async def test_order_events_reach_the_orders_user(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    await consume(
        uow,
        clock,
        events.order("confirmed", "u-1", amount=1290),
        events.order("rejected", "u-2", amount=500, reason="payment_declined"),
        events.order("cancelled", "u-1", amount=4200),
    )
    by_user = sorted(
        (n.user_id, n.kind.value, n.body) for n in uow.committed_notifications.rows.values()
    )
    assert [(user, kind) for user, kind, _ in by_user] == [
        ("u-1", "order_cancelled"),
        ("u-1", "order_confirmed"),
        ("u-2", "order_rejected"),
    ]
    assert "€42.00" in by_user[0][2]
    assert "€12.90" in by_user[1][2]
    assert "your card was declined" in by_user[2][2]


async def test_catalog_events_feed_the_news_not_a_mailbox(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    await consume(
        uow,
        clock,
        events.product_created("p-1", name="Mug", amount=1490),
        events.price_changed("p-1", old=1490, new=990),
        events.price_changed("p-unknown", old=100, new=200),
    )
    assert uow.committed_notifications.rows == {}
    items, last = await handlers.news(uow, NewsQuery(limit=10))
    assert last is None
    assert [(i.kind, i.product_id, i.name) for i in items] == [
        (NewsKind.PRICE_CHANGED, "p-unknown", None),
        (NewsKind.PRICE_CHANGED, "p-1", "Mug"),  # the name learnt when it was new
        (NewsKind.PRODUCT_CREATED, "p-1", "Mug"),
    ]


async def test_a_malformed_event_changes_nothing(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    bad = events.envelope("identity.user.registered.v1", "u-1", {"user_id": "u-1"})
    with pytest.raises(MalformedMessageError):
        await consume(uow, clock, bad)
    assert uow.commits == 0


async def test_mailbox_pages_newest_first_and_filters_unread(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    await consume(uow, clock, *(events.order("confirmed", "u-1") for _ in range(5)))
    await consume(uow, clock, events.order("confirmed", "u-2"))
    page, last = await handlers.mailbox(uow, MailboxQuery(user_id="u-1", limit=3))
    assert len(page) == 3
    assert last is page[-1]
    assert [n.created_at for n in page] == sorted((n.created_at for n in page), reverse=True)
    rest, last = await handlers.mailbox(
        uow, MailboxQuery(user_id="u-1", limit=3, before=(page[-1].created_at, page[-1].id))
    )
    assert len(rest) == 2
    assert last is None
    assert {n.user_id for n in page + rest} == {"u-1"}

    await handlers.mark_read(uow, user_id="u-1", notification_id=page[0].id, now=clock())
    unread, _ = await handlers.mailbox(uow, MailboxQuery(user_id="u-1", limit=10, unread=True))
    read, _ = await handlers.mailbox(uow, MailboxQuery(user_id="u-1", limit=10, unread=False))
    assert len(unread) == 4
    assert [n.id for n in read] == [page[0].id]
    assert await handlers.unread_count(uow, user_id="u-1") == 4


async def test_marking_read_is_idempotent_and_owner_only(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    await consume(uow, clock, events.registered("u-1"))
    (notification,) = uow.committed_notifications.rows.values()

    first = await handlers.mark_read(
        uow, user_id="u-1", notification_id=notification.id, now=clock()
    )
    again = await handlers.mark_read(
        uow, user_id="u-1", notification_id=notification.id, now=clock()
    )
    assert first.read_at is not None
    assert again.read_at == first.read_at
    assert uow.commits == 2  # the event and the first read; the second wrote nothing

    with pytest.raises(NotificationNotFoundError):
        await handlers.mark_read(uow, user_id="u-2", notification_id=notification.id, now=clock())
    with pytest.raises(NotificationNotFoundError):
        await handlers.get_notification(uow, user_id="u-2", notification_id=notification.id)
    with pytest.raises(NotificationNotFoundError):
        await handlers.mark_read(uow, user_id="u-1", notification_id="missing", now=clock())


async def test_count_by_kind(
    uow: InMemoryNotificationsUnitOfWork, clock: Ticking, events: Any
) -> None:
    await consume(
        uow,
        clock,
        events.registered("u-1"),
        events.registered("u-2"),
        events.order("confirmed", "u-1"),
        events.product_created("p-1"),
    )
    assert await handlers.count_by_kind(uow) == {"welcome": 2, "order_confirmed": 1}
