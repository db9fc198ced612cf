"""The psp's tables. Only the psp ever reads or writes them."""

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from chassis import UtcDateTime

metadata = MetaData()

authorizations = Table(
    "authorizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("reference", String(255), nullable=False),
    Column("token", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decline_code", String(40), nullable=True),
    Column("captured_amount", BigInteger, nullable=False),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_authorizations_reference", "reference"),
    Index("ix_authorizations_created", "created_at", "id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("method", String(10), nullable=False),
    Column("path", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
