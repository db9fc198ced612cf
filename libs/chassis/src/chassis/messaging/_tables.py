"""The outbox and inbox tables, which live in each service's own database.

A service adds them to its MetaData (`add_messaging_tables`) and creates them in one of its
own Alembic migrations (`create_messaging_tables(op)`); the chassis never creates tables
behind a service's back. Both build the same definition, so they cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.schema import SchemaItem

from chassis._columns import UtcDateTime

if TYPE_CHECKING:
    from alembic.operations import Operations

__all__ = [
    "INBOX_TABLE",
    "OUTBOX_TABLE",
    "add_messaging_tables",
    "create_messaging_tables",
    "drop_messaging_tables",
]

# Prefixed so they never clash with a service's own tables (a mailbox may well be an "inbox").
OUTBOX_TABLE = "messaging_outbox"
INBOX_TABLE = "messaging_inbox"

LAST_ERROR_LENGTH = 1000
_UNSENT = text("sent_at IS NULL")


def _outbox_items() -> list[SchemaItem]:
    return [
        # BIGSERIAL on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("id", String(255), nullable=False),
        Column("type", String(255), nullable=False),
        Column("subject", String(255), nullable=False),
        Column("envelope", Text, nullable=False),  # Envelope.to_bytes(), UTF-8 JSON
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", String(LAST_ERROR_LENGTH), nullable=True),
        UniqueConstraint("id", name=f"uq_{OUTBOX_TABLE}_id"),
        # The relay only ever reads unsent rows in seq order: a small partial index.
        Index(f"ix_{OUTBOX_TABLE}_unsent", "seq", postgresql_where=_UNSENT, sqlite_where=_UNSENT),
        # Pruning finds old rows without scanning the retained ones.
        Index(f"ix_{OUTBOX_TABLE}_created_at", "created_at"),
    ]


def _inbox_items() -> list[SchemaItem]:
    return [
        Column("consumer", String(200), nullable=False),
        Column("message_id", String(255), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("consumer", "message_id", name=f"pk_{INBOX_TABLE}"),
    ]


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the outbox and inbox tables to a service's MetaData; returns (outbox, inbox)."""
    # AUTOINCREMENT keeps SQLite from reusing the seq of a pruned last row: seq only grows.
    outbox = Table(OUTBOX_TABLE, metadata, *_outbox_items(), sqlite_autoincrement=True)
    inbox = Table(INBOX_TABLE, metadata, *_inbox_items())
    return outbox, inbox


def create_messaging_tables(op: Operations) -> None:
    """Create both tables from a service's migration: `create_messaging_tables(op)`."""
    op.create_table(OUTBOX_TABLE, *_outbox_items(), sqlite_autoincrement=True)
    op.create_table(INBOX_TABLE, *_inbox_items())


def drop_messaging_tables(op: Operations) -> None:
    """The downgrade of `create_messaging_tables`."""
    op.drop_table(INBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)


@cache
def messaging_tables() -> tuple[Table, Table]:
    """The chassis's own handle on the tables, for the statements it runs (built on first use)."""
    return add_messaging_tables(MetaData())
