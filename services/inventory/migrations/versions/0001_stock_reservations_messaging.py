"""stock, movements ledger, reservations, messaging outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-12-12
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
        "stock",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("product_id", sa.String(64), nullable=True),
        sa.Column("available", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("committed", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("available >= 0", name="ck_stock_available"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
        sa.CheckConstraint("committed >= 0", name="ck_stock_committed"),
    )
    op.create_table(
        "stock_movements",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
        ),
        sa.Column("sku", sa.String(64), sa.ForeignKey("stock.sku"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_stock_movements_sku_kind", "stock_movements", ["sku", "kind"])
    op.create_index("ix_stock_movements_order", "stock_movements", ["order_id"])
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("problem_skus", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_reservations_status_expires", "reservations", ["status", "expires_at"]
    )
    op.create_table(
        "reservation_lines",
        sa.Column(
            "order_id",
            sa.String(64),
            sa.ForeignKey("reservations.order_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sku", sa.String(64), sa.ForeignKey("stock.sku"), primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
    op.drop_table("stock_movements")
    op.drop_table("stock")
