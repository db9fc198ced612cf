"""Payments' tables. Only payments ever reads or writes them."""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)

payments = Table(
    "payments",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("payment_token", String(255), nullable=True),
    Column("psp_authorization_id", String(64), nullable=True),
    Column("decline_reason", String(64), nullable=True),
    Column("authorized_amount", BigInteger, nullable=False),
    Column("captured_amount", BigInteger, nullable=False),
    Column("voided_amount", BigInteger, nullable=False),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_payments_created", "created_at", "order_id"),
)

payment_operations = Table(
    "payment_operations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(64), ForeignKey("payments.order_id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("amount", BigInteger, nullable=True),
    Column("outcome", String(100), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("cause_id", String(255), nullable=True),
    Column("correlation_id", String(255), nullable=True),
    Column("traceparent", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    UniqueConstraint("order_id", "position", name="uq_payment_operations_position"),
    Index("ix_payment_operations_due", "status", "next_attempt_at"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("order_id", String(64), ForeignKey("payments.order_id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("psp_reference", String(64), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_ledger_entries_order", "order_id", "seq"),
    sqlite_autoincrement=True,
)
