"""Orders' tables (plus the chassis's outbox, inbox and saga tables, in the same database).

Only orders ever reads or writes them."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables
from chassis.saga import add_saga_tables

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(100), nullable=True),
    Column("cancellation", String(20), nullable=True),
    Column("total_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("checkout_completed", Boolean, nullable=False, server_default=false()),
    Index("ix_orders_user_created", "user_id", "created_at", "id"),
    Index("ix_orders_user_status", "user_id", "status"),
    Index("ix_orders_created", "created_at", "id"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    PrimaryKeyConstraint("order_id", "position", name="pk_order_lines"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
    Index("ix_idempotency_keys_created", "created_at"),
)

add_messaging_tables(metadata)
add_saga_tables(metadata)
