"""Inbox: the idempotent consumer, so at-least-once delivery has an exactly-once effect.

A consumer claims each message in the same transaction as its effects: the claim inserts
(consumer, message id) into the inbox table, whose primary key makes a second claim of the same
message a no-op. If the transaction commits, the effects and the claim are stored together and
every later delivery of that id (a redelivery, a replay, a republish by the outbox relay months
later) is seen as a duplicate and only acknowledged. If it rolls back, neither is stored and the
next delivery applies it. The bus acknowledges after the handler returns, that is after commit.

Two deliveries of one message at the same time are safe: on PostgreSQL the second insert waits
on the first transaction's key and then does nothing (or claims it, if the first rolled back);
SQLite runs one writer at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from prometheus_client import Counter
from sqlalchemy import CursorResult, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from chassis._database import Database
from chassis.messaging._bus import Delivery, Handler
from chassis.messaging._envelope import Envelope
from chassis.messaging._tables import messaging_tables

__all__ = ["INBOX_DUPLICATES", "Apply", "Inbox", "idempotent"]

INBOX_DUPLICATES = Counter(
    "mercato_inbox_duplicates_total",
    "Messages a consumer had already processed, acknowledged without effect",
    ["consumer"],
)

_log = structlog.get_logger("chassis.messaging")

Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]
"""A consumer's effects for one message, written in the session it is given (not committed)."""


def _inbox() -> Table:
    return messaging_tables()[1]


class Inbox:
    """The record of which messages one consumer has processed."""

    def __init__(self, consumer: str) -> None:
        if not consumer:
            raise ValueError("an inbox needs a consumer name")
        self.consumer = consumer

    async def claim(self, session: AsyncSession, envelope: Envelope) -> bool:
        """Mark `envelope` processed in the session's transaction.

        True the first time: apply its effects in the same transaction, then commit.
        False for a duplicate: apply nothing.
        """
        values = {
            "consumer": self.consumer,
            "message_id": envelope.id,
            "processed_at": datetime.now(UTC),
        }
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            statement: Any = postgresql.insert(_inbox()).on_conflict_do_nothing()
        elif dialect == "sqlite":
            statement = sqlite.insert(_inbox()).on_conflict_do_nothing()
        else:
            raise NotImplementedError(f"the inbox supports PostgreSQL and SQLite, not {dialect}")
        result = cast(CursorResult[Any], await session.execute(statement.values(values)))
        if result.rowcount == 1:
            return True
        INBOX_DUPLICATES.labels(self.consumer).inc()
        _log.debug("duplicate message skipped", consumer=self.consumer, message_id=envelope.id)
        return False


def idempotent(
    database: Database,
    consumer: str,
    apply: Apply,
    *,
    after_commit: Callable[[], None] | None = None,
) -> Handler:
    """A bus handler that applies each message at most once for `consumer`.

    Opens a write transaction, claims the message, runs `apply`, commits. Duplicates are
    acknowledged without running `apply`. An exception rolls everything back and reaches the
    bus, which redelivers. `after_commit` runs after each commit (e.g. an outbox relay's
    `notify`, when `apply` records events).
    """
    inbox = Inbox(consumer)

    async def handle(envelope: Envelope, delivery: Delivery) -> None:
        async with database.write_sessions() as session:
            if not await inbox.claim(session, envelope):
                return
            await apply(session, envelope)
            await session.commit()
        if after_commit is not None:
            after_commit()

    return handle
