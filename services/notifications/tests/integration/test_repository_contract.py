"""One contract for the mailbox and news storage: the in-memory fake, SQLite and PostgreSQL."""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chassis import Database, find_migrations, upgrade_database
from notifications import bootstrap
from notifications.adapters.memory import InMemoryNotificationsUnitOfWork
from notifications.adapters.repository import SqlNotificationsUnitOfWork
from notifications.domain import templates
from notifications.domain.model import (
    Cause,
    NewsItem,
    NewsKind,
    Notification,
    new_news_item,
    new_notification,
)
from notifications.domain.money import Amount
from notifications.service_layer.ports import MailboxQuery, NewsQuery, NotificationsUnitOfWork

Factory = Callable[[], NotificationsUnitOfWork]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def uow(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    if request.param == "memory":
        fake = InMemoryNotificationsUnitOfWork()
        yield lambda: fake
        return
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/contract.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade_database(url, find_migrations(bootstrap.__file__))
    database = Database(url)
    try:
        yield lambda: SqlNotificationsUnitOfWork.writing(database)
    finally:
        await database.dispose()


def mail(user_id: str, n: int, *, cause: str | None = None) -> Notification:
    return new_notification(
        user_id=user_id,
        message=templates.order_confirmed(f"o-{n}", Amount(n, "EUR")),
        cause=Cause(cause or f"m-{user_id}-{n}", "orders.order.confirmed.v1"),
        now=T0 + timedelta(seconds=n),
    )


def news(n: int, product_id: str, name: str | None, kind: NewsKind) -> NewsItem:
    return new_news_item(
        kind=kind,
        product_id=product_id,
        sku="MUG-1",
        name=name,
        category="kitchen" if name else None,
        price=Amount(1000 + n, "EUR"),
        old_price=Amount(1000, "EUR") if kind is NewsKind.PRICE_CHANGED else None,
        cause=Cause(f"c-{n}", "catalog.product.created.v1"),
        occurred_at=T0 + timedelta(minutes=n),
        now=T0,
    )


async def add(factory: Factory, *notifications: Notification) -> list[bool]:
    added = []
    async with factory() as uow:
        for notification in notifications:
            added.append(await uow.notifications.add(notification))
        await uow.commit()
    return added


async def test_one_notification_per_cause(uow: Factory) -> None:
    first = mail("u", 1, cause="same")
    assert await add(uow, first) == [True]
    assert await add(uow, mail("u", 2, cause="same")) == [False]
    async with uow() as work:
        assert await work.notifications.get(first.id) == first
        assert await work.notifications.count_by_kind() == {"order_confirmed": 1}


async def test_nothing_is_kept_without_commit(uow: Factory) -> None:
    async with uow() as work:
        await work.notifications.add(mail("u", 1))
    async with uow() as work:
        assert await work.notifications.find(MailboxQuery(user_id="u", limit=10)) == []


async def test_find_pages_newest_first_per_user(uow: Factory) -> None:
    await add(uow, *(mail("u", n) for n in range(1, 6)), mail("other", 9))
    # two at the same instant: the id breaks the tie, and paging must not skip either
    twins = [mail("u", 7, cause="t1"), mail("u", 7, cause="t2")]
    await add(uow, *twins)
    async with uow() as work:
        seen: list[Notification] = []
        before = None
        while True:
            page = await work.notifications.find(MailboxQuery(user_id="u", limit=2, before=before))
            if not page:
                break
            seen += page
            before = (page[-1].created_at, page[-1].id)
    assert len(seen) == 7
    assert {n.user_id for n in seen} == {"u"}
    assert [(n.created_at, n.id) for n in seen] == sorted(
        ((n.created_at, n.id) for n in seen), reverse=True
    )
    assert all(n.created_at.tzinfo is not None for n in seen)


async def test_reading_state_is_saved_and_filtered(uow: Factory) -> None:
    one, two = mail("u", 1), mail("u", 2)
    await add(uow, one, two)
    read = one.read(now=T0 + timedelta(hours=1))
    async with uow() as work:
        await work.notifications.save(read)
        await work.commit()
    async with uow() as work:
        assert (await work.notifications.get(one.id)) == read
        unread = await work.notifications.find(MailboxQuery(user_id="u", limit=9, unread=True))
        done = await work.notifications.find(MailboxQuery(user_id="u", limit=9, unread=False))
        assert [n.id for n in unread] == [two.id]
        assert [n.id for n in done] == [one.id]
        assert await work.notifications.count_unread("u") == 1
        assert await work.notifications.count_unread("nobody") == 0


async def test_news_feed_and_product_names(uow: Factory) -> None:
    items = [
        news(1, "p-1", "Mug", NewsKind.PRODUCT_CREATED),
        news(2, "p-1", None, NewsKind.PRICE_CHANGED),
        news(3, "p-2", "Bowl", NewsKind.PRODUCT_CREATED),
    ]
    async with uow() as work:
        assert [await work.news.add(item) for item in items] == [True, True, True]
        assert await work.news.add(news(1, "p-9", "Dup", NewsKind.PRODUCT_CREATED)) is False
        await work.commit()
    async with uow() as work:
        assert await work.news.product_name("p-1") == "Mug"
        assert await work.news.product_name("p-3") is None
        feed = await work.news.find(NewsQuery(limit=2))
        assert [i.product_id for i in feed] == ["p-2", "p-1"]
        rest = await work.news.find(NewsQuery(limit=5, before=(feed[-1].occurred_at, feed[-1].id)))
    assert rest == [items[0]]
    assert feed[1] == items[1]
