"""Access control: credentials, anti-passback presence and passages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

Written by hand; keep it in step with gateway/storage/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "access_credentials",
        sa.Column(
            "id",
            sa.String(64),
            nullable=False,
            comment="credential id, e.g. R-0001 or V-20261121-3",
        ),
        sa.Column(
            "kind", sa.String(16), nullable=False, comment="resident, staff, vehicle, visitor"
        ),
        sa.Column("holder", sa.String(128), nullable=False, comment="person or vehicle owner"),
        sa.Column("grp", sa.String(64), nullable=False, comment="credential group (access.groups)"),
        sa.Column(
            "card_hash", sa.String(64), nullable=True, comment="keyed hash of the card, plate or QR"
        ),
        sa.Column(
            "card_uid", sa.String(64), nullable=True, comment="canonical UID; empty when hash-only"
        ),
        sa.Column("plate", sa.String(32), nullable=True, comment="licence plate, for vehicles"),
        sa.Column("valid_from", sa.BigInteger(), nullable=True, comment="UTC ns"),
        sa.Column("valid_until", sa.BigInteger(), nullable=True, comment="UTC ns"),
        sa.Column(
            "uses_left", sa.Integer(), nullable=True, comment="visitor passes: null = unlimited"
        ),
        sa.Column("blacklisted", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("certifications", _json(), nullable=False),
        sa.Column("data", _json(), nullable=False, comment="phone, unit, note, host"),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_credentials"),
    )
    op.create_index("ix_access_credentials_card_hash", "access_credentials", ["card_hash"])
    op.create_index("ix_access_credentials_plate", "access_credentials", ["plate"])
    op.create_table(
        "access_presence",
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("area", sa.String(64), nullable=False, comment="the area it entered last"),
        sa.Column("door", sa.String(255), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("credential_id", name="pk_access_presence"),
    )
    op.create_table(
        "access_passages",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False, comment="UTC ns"),
        sa.Column("door", sa.String(255), nullable=False),
        sa.Column("reader", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False, comment="in or out"),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False, comment="granted or why it was denied"),
        sa.Column("credential_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("card_hash", sa.String(64), nullable=True),
        sa.Column("card_masked", sa.String(64), nullable=False, comment="e.g. ****614E"),
        sa.Column("plate", sa.String(32), nullable=True),
        sa.Column("mode", sa.String(8), nullable=False, comment="decide or monitor"),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_passages"),
    )
    op.create_index("ix_access_passages_ts", "access_passages", ["ts"])
    op.create_index("ix_access_passages_door_ts", "access_passages", ["door", "ts"])
    op.create_index(
        "ix_access_passages_credential_id_ts", "access_passages", ["credential_id", "ts"]
    )


def downgrade() -> None:
    op.drop_table("access_passages")
    op.drop_table("access_presence")
    op.drop_table("access_credentials")
