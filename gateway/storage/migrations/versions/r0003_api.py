"""Users, API tokens, browser sessions and the audit trail of the API.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Written by hand; keep it in step with gateway/storage/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column(
            "role",
            sa.String(16),
            nullable=False,
            comment="viewer, guard, engineer, supervisor, admin",
        ),
        sa.Column("password_hash", sa.String(255), nullable=False, comment="argon2id PHC string"),
        sa.Column(
            "locale", sa.String(16), nullable=False, comment="zh-CN, en, or empty for the site's"
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_users"),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.String(32),
            nullable=False,
            comment="public id, shown in lists and the audit",
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, comment="hex SHA-256 of the token"),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_used_ts", sa.BigInteger(), nullable=True),
        sa.Column("revoked_ts", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "sessions",
        sa.Column(
            "id_hash",
            sa.String(64),
            nullable=False,
            comment="hex SHA-256 of the cookie value",
        ),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column(
            "csrf",
            sa.String(64),
            nullable=False,
            comment="token the page echoes in X-CSRF-Token",
        ),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ts", sa.BigInteger(), nullable=False),
        sa.Column(
            "expires_ts", sa.BigInteger(), nullable=False, comment="absolute end of the session"
        ),
        sa.Column("client", sa.String(255), nullable=False, comment="address it was opened from"),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_sessions"),
    )
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_table(
        "audit",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False, comment="UTC ns"),
        sa.Column("username", sa.String(64), nullable=False, comment="empty when anonymous"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column(
            "auth", sa.String(16), nullable=False, comment="session, token, cli or anonymous"
        ),
        sa.Column(
            "action",
            sa.String(64),
            nullable=False,
            comment="dotted: alarm.acknowledge, user.create",
        ),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, comment="ok, denied, failed, error"),
        sa.Column("client", sa.String(255), nullable=False, comment="remote address"),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_ts", "audit", ["ts"])
    op.create_index("ix_audit_username_ts", "audit", ["username", "ts"])
    op.create_index("ix_audit_action_ts", "audit", ["action", "ts"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("sessions")
    op.drop_table("api_tokens")
    op.drop_table("users")
