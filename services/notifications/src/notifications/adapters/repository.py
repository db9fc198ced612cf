"""Notifications' storage on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from notifications.adapters.orm import catalog_news, notifications
from notifications.domain.model import (
    Cause,
    NewsItem,
    NewsKind,
    Notification,
    NotificationKind,
)
from notifications.domain.money import Amount
from notifications.service_layer.ports import MailboxQuery, NewsQuery, Position


async def _insert_once(session: AsyncSession, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless a row with the same unique key exists: True if inserted.

    ON CONFLICT DO NOTHING rather than catching IntegrityError, which would end a
    PostgreSQL transaction the inbox still needs.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"notifications supports PostgreSQL and SQLite, not {dialect}")
    result = cast(CursorResult[Any], await session.execute(statement.values(values)))
    return result.rowcount == 1


def _before(time_column: Any, id_column: Any, position: Position) -> ColumnElement[bool]:
    moment, last_id = position
    return or_(time_column < moment, and_(time_column == moment, id_column < last_id))


def _notification(row: RowMapping) -> Notification:
    return Notification(
        id=row["id"],
        user_id=row["user_id"],
        kind=NotificationKind(row["kind"]),
        title=row["title"],
        body=row["body"],
        cause=Cause(row["cause_id"], row["cause_type"]),
        created_at=row["created_at"],
        read_at=row["read_at"],
    )


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, notification: Notification) -> bool:
        return await _insert_once(
            self.session,
            notifications,
            {
                "id": notification.id,
                "user_id": notification.user_id,
                "kind": notification.kind.value,
                "title": notification.title,
                "body": notification.body,
                "cause_id": notification.cause.message_id,
                "cause_type": notification.cause.message_type,
                "created_at": notification.created_at,
                "read_at": notification.read_at,
            },
        )

    async def get(self, notification_id: str) -> Notification | None:
        result = await self.session.execute(
            select(notifications).where(notifications.c.id == notification_id)
        )
        row = result.mappings().first()
        return _notification(row) if row else None

    async def save(self, notification: Notification) -> None:
        # Only the reading state changes; what a notification says never does.
        await self.session.execute(
            update(notifications)
            .where(notifications.c.id == notification.id)
            .values(read_at=notification.read_at)
        )

    async def find(self, query: MailboxQuery) -> list[Notification]:
        statement = select(notifications).where(notifications.c.user_id == query.user_id)
        if query.unread is True:
            statement = statement.where(notifications.c.read_at.is_(None))
        elif query.unread is False:
            statement = statement.where(notifications.c.read_at.is_not(None))
        if query.before is not None:
            statement = statement.where(
                _before(notifications.c.created_at, notifications.c.id, query.before)
            )
        statement = statement.order_by(
            notifications.c.created_at.desc(), notifications.c.id.desc()
        ).limit(query.limit)
        result = await self.session.execute(statement)
        return [_notification(row) for row in result.mappings()]

    async def count_unread(self, user_id: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.user_id == user_id, notifications.c.read_at.is_(None))
        )
        return int(count or 0)

    async def count_by_kind(self) -> dict[str, int]:
        result = await self.session.execute(
            select(notifications.c.kind, func.count().label("n")).group_by(notifications.c.kind)
        )
        return {row.kind: int(row.n) for row in result}


def _news_item(row: RowMapping) -> NewsItem:
    old_price = (
        Amount(row["old_price_amount"], row["old_price_currency"])
        if row["old_price_amount"] is not None
        else None
    )
    return NewsItem(
        id=row["id"],
        kind=NewsKind(row["kind"]),
        product_id=row["product_id"],
        sku=row["sku"],
        name=row["name"],
        category=row["category"],
        price=Amount(row["price_amount"], row["price_currency"]),
        old_price=old_price,
        cause=Cause(row["cause_id"], row["cause_type"]),
        occurred_at=row["occurred_at"],
        created_at=row["created_at"],
    )


class SqlNewsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, item: NewsItem) -> bool:
        return await _insert_once(
            self.session,
            catalog_news,
            {
                "id": item.id,
                "kind": item.kind.value,
                "product_id": item.product_id,
                "sku": item.sku,
                "name": item.name,
                "category": item.category,
                "price_amount": item.price.amount,
                "price_currency": item.price.currency,
                "old_price_amount": item.old_price.amount if item.old_price else None,
                "old_price_currency": item.old_price.currency if item.old_price else None,
                "cause_id": item.cause.message_id,
                "cause_type": item.cause.message_type,
                "occurred_at": item.occurred_at,
                "created_at": item.created_at,
            },
        )

    async def product_name(self, product_id: str) -> str | None:
        name = await self.session.scalar(
            select(catalog_news.c.name)
            .where(catalog_news.c.product_id == product_id, catalog_news.c.name.is_not(None))
            .order_by(catalog_news.c.occurred_at.desc(), catalog_news.c.id.desc())
            .limit(1)
        )
        return str(name) if name is not None else None

    async def find(self, query: NewsQuery) -> list[NewsItem]:
        statement = select(catalog_news)
        if query.before is not None:
            statement = statement.where(
                _before(catalog_news.c.occurred_at, catalog_news.c.id, query.before)
            )
        statement = statement.order_by(
            catalog_news.c.occurred_at.desc(), catalog_news.c.id.desc()
        ).limit(query.limit)
        result = await self.session.execute(statement)
        return [_news_item(row) for row in result.mappings()]


class SqlNotificationsUnitOfWork:
    """A unit of work on one database session; rolls back unless committed.

    `joining(session)` takes part in a transaction someone else owns (the inbox's, when a
    consumed event is applied): its commit only flushes, and the owner commits or rolls
    back the whole, inbox claim included.
    """

    notifications: SqlNotificationRepository
    news: SqlNewsRepository

    def __init__(self, sessions: Callable[[], AsyncSession], *, owned: bool = True) -> None:
        self._sessions = sessions
        self._owned = owned

    @classmethod
    def reading(cls, database: Database) -> SqlNotificationsUnitOfWork:
        return cls(database.sessions)

    @classmethod
    def writing(cls, database: Database) -> SqlNotificationsUnitOfWork:
        return cls(database.write_sessions)

    @classmethod
    def joining(cls, session: AsyncSession) -> SqlNotificationsUnitOfWork:
        return cls(lambda: session, owned=False)

    async def __aenter__(self) -> SqlNotificationsUnitOfWork:
        self._session = self._sessions()
        self.notifications = SqlNotificationRepository(self._session)
        self.news = SqlNewsRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owned:
            await self._session.rollback()
            await self._session.close()

    async def commit(self) -> None:
        if self._owned:
            await self._session.commit()
        else:
            await self._session.flush()
