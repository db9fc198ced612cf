"""Notifications' tables. Only notifications ever reads or writes them."""

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables

metadata = MetaData()

# Column sizes bound what the consumed events' schemas accept (entrypoints/events.py), so a
# valid event always fits.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    # One message makes at most one notification, even if the inbox forgot it was seen.
    Column("cause_id", String(255), nullable=False, unique=True),
    Column("cause_type", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=True),
    Index("ix_notifications_mailbox", "user_id", "created_at", "id"),
)

catalog_news = Table(
    "catalog_news",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=True),
    Column("category", String(50), nullable=True),
    Column("price_amount", BigInteger, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("old_price_amount", BigInteger, nullable=True),
    Column("old_price_currency", String(3), nullable=True),
    Column("cause_id", String(255), nullable=False, unique=True),
    Column("cause_type", String(255), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_catalog_news_feed", "occurred_at", "id"),
    Index("ix_catalog_news_product", "product_id", "occurred_at"),
)

# The inbox (each consumed message applied once) and the outbox (unused: nothing published).
outbox, inbox = add_messaging_tables(metadata)
