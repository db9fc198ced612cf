"""In-memory fakes of notifications' ports, for fast unit tests (same contract as the SQL ones)."""

from __future__ import annotations

from types import TracebackType

from notifications.domain.model import NewsItem, Notification
from notifications.service_layer.ports import MailboxQuery, NewsQuery


class InMemoryNotificationRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Notification] = {}

    async def add(self, notification: Notification) -> bool:
        if notification.id in self.rows or any(
            n.cause.message_id == notification.cause.message_id for n in self.rows.values()
        ):
            return False
        self.rows[notification.id] = notification
        return True

    async def get(self, notification_id: str) -> Notification | None:
        return self.rows.get(notification_id)

    async def save(self, notification: Notification) -> None:
        self.rows[notification.id] = notification

    async def find(self, query: MailboxQuery) -> list[Notification]:
        found = [
            n
            for n in self.rows.values()
            if n.user_id == query.user_id
            and (query.unread is None or query.unread is not n.is_read)
            and (query.before is None or (n.created_at, n.id) < query.before)
        ]
        found.sort(key=lambda n: (n.created_at, n.id), reverse=True)
        return found[: query.limit]

    async def count_unread(self, user_id: str) -> int:
        return sum(1 for n in self.rows.values() if n.user_id == user_id and not n.is_read)

    async def count_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.rows.values():
            counts[n.kind.value] = counts.get(n.kind.value, 0) + 1
        return counts


class InMemoryNewsRepository:
    def __init__(self) -> None:
        self.rows: dict[str, NewsItem] = {}

    async def add(self, item: NewsItem) -> bool:
        if item.id in self.rows or any(
            i.cause.message_id == item.cause.message_id for i in self.rows.values()
        ):
            return False
        self.rows[item.id] = item
        return True

    async def product_name(self, product_id: str) -> str | None:
        named = [i for i in self.rows.values() if i.product_id == product_id and i.name]
        if not named:
            return None
        return max(named, key=lambda i: (i.occurred_at, i.id)).name

    async def find(self, query: NewsQuery) -> list[NewsItem]:
        found = [
            i
            for i in self.rows.values()
            if query.before is None or (i.occurred_at, i.id) < query.before
        ]
        found.sort(key=lambda i: (i.occurred_at, i.id), reverse=True)
        return found[: query.limit]


class InMemoryNotificationsUnitOfWork:
    """Stages writes in a copy and keeps them on commit, like a real transaction."""

    def __init__(self) -> None:
        self.committed_notifications = InMemoryNotificationRepository()
        self.committed_news = InMemoryNewsRepository()
        self.commits = 0

    async def __aenter__(self) -> InMemoryNotificationsUnitOfWork:
        self.notifications = InMemoryNotificationRepository()
        self.notifications.rows = dict(self.committed_notifications.rows)
        self.news = InMemoryNewsRepository()
        self.news.rows = dict(self.committed_news.rows)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.committed_notifications.rows = dict(self.notifications.rows)
        self.committed_news.rows = dict(self.news.rows)
        self.commits += 1
