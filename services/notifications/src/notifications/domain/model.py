"""A user's mailbox and the catalog's news feed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from notifications.domain.money import Amount

__all__ = [
    "Cause",
    "Message",
    "NewsItem",
    "NewsKind",
    "Notification",
    "NotificationKind",
    "new_news_item",
    "new_notification",
]


class NotificationKind(StrEnum):
    WELCOME = "welcome"
    ORDER_CONFIRMED = "order_confirmed"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELLED = "order_cancelled"


class NewsKind(StrEnum):
    PRODUCT_CREATED = "product_created"
    PRICE_CHANGED = "price_changed"


@dataclass(frozen=True)
class Cause:
    """The message a notification or news item came from (one message: at most one)."""

    message_id: str
    message_type: str


@dataclass(frozen=True)
class Message:
    """What a notification says, before it is addressed to anyone."""

    kind: NotificationKind
    title: str
    body: str  # plain text


@dataclass(frozen=True)
class Notification:
    id: str
    user_id: str
    kind: NotificationKind
    title: str
    body: str
    cause: Cause
    created_at: datetime
    read_at: datetime | None = None

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def read(self, *, now: datetime) -> Notification:
        """Marked read; reading it again keeps the first time it was read."""
        return self if self.read_at is not None else replace(self, read_at=now)


def new_notification(
    *, user_id: str, message: Message, cause: Cause, now: datetime
) -> Notification:
    return Notification(
        id=str(uuid.uuid4()),
        user_id=user_id,
        kind=message.kind,
        title=message.title,
        body=message.body,
        cause=cause,
        created_at=now,
    )


@dataclass(frozen=True)
class NewsItem:
    """Something that happened in the catalog: a new product or a new price."""

    id: str
    kind: NewsKind
    product_id: str
    sku: str
    name: str | None  # unknown for a price change of a product created before we listened
    category: str | None
    price: Amount
    old_price: Amount | None
    cause: Cause
    occurred_at: datetime  # when the catalog says it happened
    created_at: datetime  # when we recorded it


def new_news_item(
    *,
    kind: NewsKind,
    product_id: str,
    sku: str,
    name: str | None,
    category: str | None,
    price: Amount,
    old_price: Amount | None,
    cause: Cause,
    occurred_at: datetime,
    now: datetime,
) -> NewsItem:
    return NewsItem(
        id=str(uuid.uuid4()),
        kind=kind,
        product_id=product_id,
        sku=sku,
        name=name,
        category=category,
        price=price,
        old_price=old_price,
        cause=cause,
        occurred_at=occurred_at,
        created_at=now,
    )
