"""mailbox, catalog news, inbox and outbox

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from chassis import UtcDateTime
from chassis.messaging import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("cause_id", sa.String(255), nullable=False, unique=True),
        sa.Column("cause_type", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("read_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_notifications_mailbox", "notifications", ["user_id", "created_at", "id"])
    op.create_table(
        "catalog_news",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("category", sa.String(50), nullable=True),
        sa.Column("price_amount", sa.BigInteger, nullable=False),
        sa.Column("price_currency", sa.String(3), nullable=False),
        sa.Column("old_price_amount", sa.BigInteger, nullable=True),
        sa.Column("old_price_currency", sa.String(3), nullable=True),
        sa.Column("cause_id", sa.String(255), nullable=False, unique=True),
        sa.Column("cause_type", sa.String(255), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_catalog_news_feed", "catalog_news", ["occurred_at", "id"])
    op.create_index("ix_catalog_news_product", "catalog_news", ["product_id", "occurred_at"])
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("catalog_news")
    op.drop_table("notifications")
