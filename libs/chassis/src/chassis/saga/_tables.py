"""The saga table, which lives in the orchestrating service's own database.

Like the messaging tables: a service adds it to its MetaData (`add_saga_tables`) and creates it
in one of its own Alembic migrations (`create_saga_tables(op)`); both build one definition.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.schema import SchemaItem

from chassis._columns import UtcDateTime

if TYPE_CHECKING:
    from alembic.operations import Operations

__all__ = ["SAGA_TABLE", "add_saga_tables", "create_saga_tables", "drop_saga_tables"]

SAGA_TABLE = "saga_instances"


def _saga_items() -> list[SchemaItem]:
    return [
        Column("id", String(36), primary_key=True),
        Column("saga_type", String(100), nullable=False),
        Column("correlation_id", String(255), nullable=False),
        Column("status", String(20), nullable=False),
        Column("step", String(100), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("data", Text, nullable=False),  # JSON object
        Column("history", Text, nullable=False),  # JSON list of timeline entries
        Column("failure", Text, nullable=True),  # JSON object once compensating
        Column("deadline", UtcDateTime, nullable=True),  # NULL once finished
        Column("step_started_at", UtcDateTime, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("finished_at", UtcDateTime, nullable=True),
        Column("version", Integer, nullable=False),
        # One saga of a type per business key: replies find their saga without ambiguity.
        UniqueConstraint("saga_type", "correlation_id", name=f"uq_{SAGA_TABLE}_correlation"),
        Index(f"ix_{SAGA_TABLE}_correlation_id", "correlation_id"),
        # The timeout loop reads unfinished sagas by deadline (finished ones have none).
        Index(f"ix_{SAGA_TABLE}_deadline", "deadline"),
        Index(f"ix_{SAGA_TABLE}_status_created", "status", "created_at", "id"),
        Index(f"ix_{SAGA_TABLE}_created", "created_at", "id"),
    ]


def add_saga_tables(metadata: MetaData) -> Table:
    """Add the saga table to a service's MetaData; returns it."""
    return Table(SAGA_TABLE, metadata, *_saga_items())


def create_saga_tables(op: Operations) -> None:
    """Create the saga table from a service's migration: `create_saga_tables(op)`."""
    op.create_table(SAGA_TABLE, *_saga_items())


def drop_saga_tables(op: Operations) -> None:
    """The downgrade of `create_saga_tables`."""
    op.drop_table(SAGA_TABLE)


@cache
def saga_table() -> Table:
    """The chassis's own handle on the table, for the statements it runs."""
    return add_saga_tables(MetaData())
