"""Inventory's tables (and the messaging outbox and inbox). Only inventory reads them."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

stock = Table(
    "stock",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("product_id", String(64), nullable=True),
    Column("available", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("committed", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The conditional updates never break these; the database refuses it if a bug would.
    CheckConstraint("available >= 0", name="ck_stock_available"),
    CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
    CheckConstraint("committed >= 0", name="ck_stock_committed"),
)

stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("sku", String(64), ForeignKey("stock.sku"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("order_id", String(64), nullable=True),
    Column("reason", String(200), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_stock_movements_sku_kind", "sku", "kind"),
    Index("ix_stock_movements_order", "order_id"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("problem_skus", Text, nullable=False),  # JSON list
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The expiry loop asks for held reservations by expiry time.
    Index("ix_reservations_status_expires", "status", "expires_at"),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column(
        "order_id",
        String(64),
        ForeignKey("reservations.order_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("sku", String(64), ForeignKey("stock.sku"), primary_key=True),
    Column("quantity", BigInteger, nullable=False),
    CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
)
