"""Notifications' use cases: plain functions over a unit of work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from notifications.domain.model import (
    Cause,
    Message,
    NewsItem,
    NewsKind,
    Notification,
    new_news_item,
    new_notification,
)
from notifications.domain.money import Amount
from notifications.errors import NotificationNotFoundError
from notifications.service_layer.ports import MailboxQuery, NewsQuery, NotificationsUnitOfWork

UnitOfWorkFactory = Callable[[], NotificationsUnitOfWork]

T = TypeVar("T")


def _page(rows: Sequence[T], limit: int) -> tuple[list[T], T | None]:
    """A page of at most `limit` rows out of `limit + 1` fetched, and its last row when more
    follow (to build the next cursor)."""
    if len(rows) > limit:
        page = list(rows[:limit])
        return page, page[-1]
    return list(rows), None


# -- writes, from consumed events ----------------------------------------------------------


async def notify(
    uow: NotificationsUnitOfWork,
    *,
    user_id: str,
    message: Message,
    cause: Cause,
    now: datetime,
) -> Notification | None:
    """Put `message` in the user's mailbox, once per cause; None if it is there already."""
    notification = new_notification(user_id=user_id, message=message, cause=cause, now=now)
    async with uow:
        added = await uow.notifications.add(notification)
        await uow.commit()
    return notification if added else None


async def record_new_product(
    uow: NotificationsUnitOfWork,
    *,
    product_id: str,
    sku: str,
    name: str,
    category: str,
    price: Amount,
    cause: Cause,
    occurred_at: datetime,
    now: datetime,
) -> NewsItem | None:
    item = new_news_item(
        kind=NewsKind.PRODUCT_CREATED,
        product_id=product_id,
        sku=sku,
        name=name,
        category=category,
        price=price,
        old_price=None,
        cause=cause,
        occurred_at=occurred_at,
        now=now,
    )
    async with uow:
        added = await uow.news.add(item)
        await uow.commit()
    return item if added else None


async def record_price_change(
    uow: NotificationsUnitOfWork,
    *,
    product_id: str,
    sku: str,
    old_price: Amount,
    new_price: Amount,
    cause: Cause,
    occurred_at: datetime,
    now: datetime,
) -> NewsItem | None:
    """The event has no name; the feed reuses the one it learnt when the product was new."""
    async with uow:
        item = new_news_item(
            kind=NewsKind.PRICE_CHANGED,
            product_id=product_id,
            sku=sku,
            name=await uow.news.product_name(product_id),
            category=None,
            price=new_price,
            old_price=old_price,
            cause=cause,
            occurred_at=occurred_at,
            now=now,
        )
        added = await uow.news.add(item)
        await uow.commit()
    return item if added else None


# -- the mailbox, for its owner ------------------------------------------------------------


async def mailbox(
    uow: NotificationsUnitOfWork, query: MailboxQuery
) -> tuple[list[Notification], Notification | None]:
    """A page of the user's notifications, newest first, and the last one when more follow."""
    async with uow:
        rows = await uow.notifications.find(
            MailboxQuery(
                user_id=query.user_id,
                limit=query.limit + 1,
                unread=query.unread,
                before=query.before,
            )
        )
    return _page(rows, query.limit)


async def _own(uow: NotificationsUnitOfWork, user_id: str, notification_id: str) -> Notification:
    notification = await uow.notifications.get(notification_id)
    if notification is None or notification.user_id != user_id:
        # Someone else's notification is "not found" too: ids are not probed for existence.
        raise NotificationNotFoundError(f"no notification {notification_id} in your mailbox")
    return notification


async def get_notification(
    uow: NotificationsUnitOfWork, *, user_id: str, notification_id: str
) -> Notification:
    async with uow:
        return await _own(uow, user_id, notification_id)


async def mark_read(
    uow: NotificationsUnitOfWork, *, user_id: str, notification_id: str, now: datetime
) -> Notification:
    """Idempotent: marking a read notification again keeps its first `read_at`."""
    async with uow:
        current = await _own(uow, user_id, notification_id)
        updated = current.read(now=now)
        if updated is not current:
            await uow.notifications.save(updated)
            await uow.commit()
    return updated


async def unread_count(uow: NotificationsUnitOfWork, *, user_id: str) -> int:
    async with uow:
        return await uow.notifications.count_unread(user_id)


# -- the news feed and the audit -----------------------------------------------------------


async def news(
    uow: NotificationsUnitOfWork, query: NewsQuery
) -> tuple[list[NewsItem], NewsItem | None]:
    async with uow:
        rows = await uow.news.find(NewsQuery(limit=query.limit + 1, before=query.before))
    return _page(rows, query.limit)


async def count_by_kind(uow: NotificationsUnitOfWork) -> dict[str, int]:
    async with uow:
        return await uow.notifications.count_by_kind()
