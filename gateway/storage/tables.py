"""The event store's schema: the one SQLAlchemy ``MetaData`` of the gateway.

Every table the event store owns is declared here, and every change to it
comes with a hand-written Alembic revision in ``migrations/versions/``. The
revision, not this module, is what creates tables in a database; this module
is what the code queries with (and what ``alembic revision --autogenerate``
compares against when a developer drafts the next revision).

Conventions: timestamps are ``BIGINT`` UTC nanoseconds (as in
:mod:`gateway.model`); JSON columns are ``JSONB`` on PostgreSQL and ``JSON``
(text) elsewhere; constraint names follow :data:`NAMING_CONVENTION` so that
later revisions can address them on every backend.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "NAMING_CONVENTION",
    "SOURCE_MAX_LEN",
    "TYPE_MAX_LEN",
    "Id",
    "Json",
    "events",
    "metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TYPE_MAX_LEN = 128
SOURCE_MAX_LEN = 255

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, comment="UTC ns since the epoch"),
    Column("type", String(TYPE_MAX_LEN), nullable=False, comment="dotted: access.denied"),
    Column("source", String(SOURCE_MAX_LEN), nullable=False, comment="device or service"),
    Column("data", Json, nullable=False),
    Index("ix_events_type_ts", "type", "ts"),
    Index("ix_events_source_ts", "source", "ts"),
)
