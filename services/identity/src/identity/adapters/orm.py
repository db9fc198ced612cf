"""Identity's tables. Only identity ever reads or writes them."""

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, MetaData, String, Table, Text

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False),
    # the address lowercased whole: what uniqueness and sign-in compare
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("roles", String(200), nullable=False),  # space-separated, sorted
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex, never the token
    Column("family_id", String(36), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("rotated_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_refresh_tokens_family", "family_id"),
    Index("ix_refresh_tokens_expires", "expires_at"),
    Index("ix_refresh_tokens_user", "user_id"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("public_jwk", Text, nullable=False),
    Column("sealed_private_key", LargeBinary, nullable=False),  # encrypted PKCS#8 PEM
    Column("created_at", UtcDateTime, nullable=False),
    Column("retired_at", UtcDateTime, nullable=True),
    Column("publish_until", UtcDateTime, nullable=True),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(64), nullable=False),  # SHA-256 hex of account or address
    Column("failed_at", UtcDateTime, nullable=False),
    Index("ix_login_failures_subject", "subject", "failed_at"),
    Index("ix_login_failures_failed_at", "failed_at"),
)

# The outbox (events committed with the change that caused them) and the inbox.
outbox, inbox = add_messaging_tables(metadata)
