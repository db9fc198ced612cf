"""outbox and inbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op
from chassis.messaging import create_messaging_tables, drop_messaging_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
