"""Create the events table.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand; keep it in step with gateway/storage/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("ts", sa.BigInteger(), nullable=False, comment="UTC ns since the epoch"),
        sa.Column("type", sa.String(128), nullable=False, comment="dotted: access.denied"),
        sa.Column("source", sa.String(255), nullable=False, comment="device or service"),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_type_ts", "events", ["type", "ts"])
    op.create_index("ix_events_source_ts", "events", ["source", "ts"])


def downgrade() -> None:
    op.drop_index("ix_events_source_ts", table_name="events")
    op.drop_index("ix_events_type_ts", table_name="events")
    op.drop_table("events")
