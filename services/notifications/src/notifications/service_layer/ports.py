"""What the service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from notifications.domain.model import NewsItem, Notification

Clock = Callable[[], datetime]

Position = tuple[datetime, str]
"""Where a newest-first listing stopped: (time, id) of the last row seen."""


@dataclass(frozen=True)
class MailboxQuery:
    user_id: str
    limit: int
    unread: bool | None = None  # True: unread only, False: read only, None: all
    before: Position | None = None


@dataclass(frozen=True)
class NewsQuery:
    limit: int
    before: Position | None = None


class NotificationRepository(Protocol):
    async def add(self, notification: Notification) -> bool:
        """Store it; False (and store nothing) when its cause made a notification already."""

    async def get(self, notification_id: str) -> Notification | None: ...
    async def save(self, notification: Notification) -> None: ...
    async def find(self, query: MailboxQuery) -> list[Notification]:
        """The user's notifications, newest first (created_at, then id, descending)."""

    async def count_unread(self, user_id: str) -> int: ...
    async def count_by_kind(self) -> dict[str, int]: ...


class NewsRepository(Protocol):
    async def add(self, item: NewsItem) -> bool:
        """Store it; False (and store nothing) when its cause made an item already."""

    async def product_name(self, product_id: str) -> str | None:
        """The latest name the feed knows for a product."""

    async def find(self, query: NewsQuery) -> list[NewsItem]:
        """Newest first (occurred_at, then id, descending)."""


class NotificationsUnitOfWork(Protocol):
    """One transaction over the mailbox and the news feed."""

    @property
    def notifications(self) -> NotificationRepository: ...
    @property
    def news(self) -> NewsRepository: ...

    async def __aenter__(self) -> NotificationsUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
