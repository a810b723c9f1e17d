"""Alarms, escalations, deliveries and acknowledgement links.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Written by hand; keep it in step with gateway/storage/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = 400


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.String(_ID), nullable=False, comment="<rule>@<source>"),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("source", sa.String(255), nullable=False, comment="point or device"),
        sa.Column("device", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, comment="an AlarmState value"),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("control_room", sa.String(64), nullable=False),
        sa.Column(
            "active", sa.Boolean(), nullable=False, comment="the process condition is present"
        ),
        sa.Column(
            "updated_ts", sa.BigInteger(), nullable=False, comment="UTC ns of the last transition"
        ),
        sa.Column("record", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
    )
    op.create_index("ix_alarms_state", "alarms", ["state"])
    op.create_index("ix_alarms_device", "alarms", ["device"])

    op.create_table(
        "escalations",
        sa.Column("alarm_id", sa.String(_ID), nullable=False),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False, comment="1-based level reached"),
        sa.Column("status", sa.String(16), nullable=False, comment="running or stopped"),
        sa.Column("started_ts", sa.BigInteger(), nullable=False),
        sa.Column(
            "next_ts", sa.BigInteger(), nullable=True, comment="UTC ns of the next step, if any"
        ),
        sa.Column("record", _json(), nullable=False),
        sa.PrimaryKeyConstraint("alarm_id", name="pk_escalations"),
    )
    op.create_index("ix_escalations_status_next_ts", "escalations", ["status", "next_ts"])

    op.create_table(
        "deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("ts", sa.BigInteger(), nullable=False, comment="UTC ns when it was queued"),
        sa.Column("updated_ts", sa.BigInteger(), nullable=False),
        sa.Column("notification", sa.String(64), nullable=False, comment="notification id"),
        sa.Column("alarm_id", sa.String(_ID), nullable=True),
        sa.Column("person", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column(
            "status",
            sa.String(16),
            nullable=False,
            comment="queued, sent, failed, fell_back, rate_limited, digested",
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_alarm_id", "deliveries", ["alarm_id"])
    op.create_index("ix_deliveries_status_ts", "deliveries", ["status", "ts"])

    op.create_table(
        "ack_tokens",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("alarm_id", sa.String(_ID), nullable=False),
        sa.Column("person", sa.String(128), nullable=False),
        sa.Column("issued_ts", sa.BigInteger(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=False),
        sa.Column("used_ts", sa.BigInteger(), nullable=True),
        sa.Column(
            "used_from", sa.String(255), nullable=True, comment="address or channel that used it"
        ),
        sa.PrimaryKeyConstraint("nonce", name="pk_ack_tokens"),
    )


def downgrade() -> None:
    op.drop_table("ack_tokens")
    op.drop_index("ix_deliveries_status_ts", table_name="deliveries")
    op.drop_index("ix_deliveries_alarm_id", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_escalations_status_next_ts", table_name="escalations")
    op.drop_table("escalations")
    op.drop_index("ix_alarms_device", table_name="alarms")
    op.drop_index("ix_alarms_state", table_name="alarms")
    op.drop_table("alarms")
