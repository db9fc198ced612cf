"""Notifications' HTTP API: the caller's own mailbox, the public news feed, an audit count.

The gateway exposes `/api/v1/notifications…` as is. A mailbox is its owner's alone: the
user id is the subject of the internal token the gateway forwards, never a parameter, and
another user's notification answers 404 exactly like one that does not exist.
"""

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from chassis import (
    Money,
    Page,
    Principal,
    api_router,
    clean_text,
    decode_cursor,
    encode_cursor,
    require_role,
)
from chassis.errors import InvalidInputError
from notifications.domain import templates
from notifications.domain.model import NewsItem, Notification, NotificationKind
from notifications.domain.money import Amount
from notifications.errors import NotificationNotFoundError
from notifications.service_layer import handlers
from notifications.service_layer.handlers import UnitOfWorkFactory
from notifications.service_layer.ports import Clock, MailboxQuery, NewsQuery, Position

# No `from __future__ import annotations` here: FastAPI must see the route signatures'
# Annotated types (some built inside build_routers) as objects, not as strings.

# Notification ids are UUIDs; anything else cannot be one, so it is not looked up at all.
_NOTIFICATION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

NotificationId = Annotated[str, Path(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=512)]


class CauseOut(BaseModel):
    message_id: str
    message_type: str


class NotificationOut(BaseModel):
    id: str
    user_id: str
    kind: NotificationKind
    title: str
    body: str
    cause: CauseOut
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> "NotificationOut":
        return cls(
            id=notification.id,
            user_id=notification.user_id,
            kind=notification.kind,
            title=notification.title,
            body=notification.body,
            cause=CauseOut(
                message_id=notification.cause.message_id,
                message_type=notification.cause.message_type,
            ),
            created_at=notification.created_at,
            read_at=notification.read_at,
        )


class UnreadCountOut(BaseModel):
    unread: int


def _money(amount: Amount | None) -> Money | None:
    return None if amount is None else Money(amount=amount.amount, currency=amount.currency)


class NewsItemOut(BaseModel):
    id: str
    kind: Literal["product_created", "price_changed"]
    headline: str
    product_id: str
    sku: str
    name: str | None
    category: str | None
    price: Money
    old_price: Money | None
    occurred_at: datetime

    @classmethod
    def of(cls, item: NewsItem) -> "NewsItemOut":
        return cls(
            id=item.id,
            kind=item.kind.value,
            headline=templates.headline(item),
            product_id=item.product_id,
            sku=item.sku,
            name=item.name,
            category=item.category,
            price=Money(amount=item.price.amount, currency=item.price.currency),
            old_price=_money(item.old_price),
            occurred_at=item.occurred_at,
        )


class CountOut(BaseModel):
    total: int
    by_kind: dict[str, int]


def _before(cursor: str | None) -> Position | None:
    """The position a `next_cursor` we issued points at, or InvalidInputError (422)."""
    if not cursor:
        return None
    moment, last_id = decode_cursor(cursor, length=2)
    if not isinstance(moment, str) or not isinstance(last_id, str):
        raise InvalidInputError("the cursor does not belong to this listing")
    try:
        when = datetime.fromisoformat(moment)
        last_id = clean_text(last_id)
    except ValueError:
        raise InvalidInputError("the cursor does not belong to this listing") from None
    if when.tzinfo is None or len(last_id) > 64:
        raise InvalidInputError("the cursor does not belong to this listing")
    return when, last_id


def _cursor(moment: datetime, last_id: str) -> str:
    return encode_cursor([moment.isoformat(), last_id])


def build_routers(
    *,
    reader: UnitOfWorkFactory,
    writer: UnitOfWorkFactory,
    clock: Clock,
    max_page_size: int,
) -> list[APIRouter]:
    router = api_router(prefix="/api/v1/notifications", tags=["notifications"])
    user = Depends(require_role())
    Limit = Annotated[int, Query(ge=1, le=max_page_size)]

    @router.get("", response_model=Page[NotificationOut])
    async def list_notifications(
        principal: Annotated[Principal, user],
        limit: Limit = 20,
        cursor: Cursor = None,
        unread: Annotated[
            bool | None,
            Query(description="true: unread ones only; false: read ones only; absent: all"),
        ] = None,
    ) -> Page[NotificationOut]:
        rows, last = await handlers.mailbox(
            reader(),
            MailboxQuery(
                user_id=principal.subject, limit=limit, unread=unread, before=_before(cursor)
            ),
        )
        return Page[NotificationOut](
            items=[NotificationOut.of(n) for n in rows],
            next_cursor=_cursor(last.created_at, last.id) if last else None,
        )

    @router.get("/unread-count", response_model=UnreadCountOut)
    async def count_unread(principal: Annotated[Principal, user]) -> UnreadCountOut:
        return UnreadCountOut(
            unread=await handlers.unread_count(reader(), user_id=principal.subject)
        )

    @router.get("/news", response_model=Page[NewsItemOut])
    async def list_news(limit: Limit = 20, cursor: Cursor = None) -> Page[NewsItemOut]:
        """New products and price changes in the catalog, newest first (public)."""
        rows, last = await handlers.news(reader(), NewsQuery(limit=limit, before=_before(cursor)))
        return Page[NewsItemOut](
            items=[NewsItemOut.of(i) for i in rows],
            next_cursor=_cursor(last.occurred_at, last.id) if last else None,
        )

    def _checked(notification_id: str) -> str:
        if not _NOTIFICATION_ID.match(notification_id):
            raise NotificationNotFoundError(f"no notification {notification_id!r} in your mailbox")
        return notification_id

    @router.get("/{notification_id}", response_model=NotificationOut)
    async def get_notification(
        principal: Annotated[Principal, user], notification_id: NotificationId
    ) -> NotificationOut:
        found = await handlers.get_notification(
            reader(), user_id=principal.subject, notification_id=_checked(notification_id)
        )
        return NotificationOut.of(found)

    @router.post("/{notification_id}/read", response_model=NotificationOut)
    async def mark_read(
        principal: Annotated[Principal, user], notification_id: NotificationId
    ) -> NotificationOut:
        updated = await handlers.mark_read(
            writer(),
            user_id=principal.subject,
            notification_id=_checked(notification_id),
            now=clock(),
        )
        return NotificationOut.of(updated)

    audit = api_router(prefix="/internal/audit", tags=["audit"])

    @audit.get(
        "/notifications/count",
        response_model=CountOut,
        dependencies=[Depends(require_role("admin"))],
    )
    async def count_notifications() -> CountOut:
        by_kind = await handlers.count_by_kind(reader())
        return CountOut(total=sum(by_kind.values()), by_kind=by_kind)

    return [router, audit]
