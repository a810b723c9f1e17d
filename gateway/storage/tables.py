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

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "ALARM_ID_MAX_LEN",
    "NAMING_CONVENTION",
    "SOURCE_MAX_LEN",
    "TYPE_MAX_LEN",
    "Id",
    "Json",
    "access_credentials",
    "access_passages",
    "access_presence",
    "ack_tokens",
    "alarms",
    "api_tokens",
    "audit",
    "deliveries",
    "escalations",
    "events",
    "metadata",
    "sessions",
    "users",
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
ALARM_ID_MAX_LEN = 400  # "<rule>@<source>"

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

# The current state of every alarm that is not plainly normal (active,
# unacknowledged, latched, shelved, suppressed or out of service): what a
# restart reloads. ``record`` is the alarm manager's full record as JSON; the
# other columns are copies of its fields, for filtering. Every transition is
# also an ``alarm.<transition>`` event in ``events`` (the history), written in
# the same transaction.
alarms = Table(
    "alarms",
    metadata,
    Column("id", String(ALARM_ID_MAX_LEN), primary_key=True, comment="<rule>@<source>"),
    Column("rule", String(TYPE_MAX_LEN), nullable=False),
    Column("source", String(SOURCE_MAX_LEN), nullable=False, comment="point or device"),
    Column("device", String(SOURCE_MAX_LEN), nullable=False),
    Column("state", String(32), nullable=False, comment="an AlarmState value"),
    Column("priority", String(16), nullable=False),
    Column("category", String(16), nullable=False),
    Column("control_room", String(64), nullable=False),
    Column("active", Boolean, nullable=False, comment="the process condition is present"),
    Column("updated_ts", BigInteger, nullable=False, comment="UTC ns of the last transition"),
    Column("record", Json, nullable=False),
    Index("ix_alarms_state", "state"),
    Index("ix_alarms_device", "device"),
)

# One row per alarm that has (or had) an escalation running: where it is in its
# policy and when the next step is due, so a restart resumes it on time.
escalations = Table(
    "escalations",
    metadata,
    Column("alarm_id", String(ALARM_ID_MAX_LEN), primary_key=True),
    Column("policy", String(TYPE_MAX_LEN), nullable=False),
    Column("level", Integer, nullable=False, comment="1-based level reached"),
    Column("status", String(16), nullable=False, comment="running or stopped"),
    Column("started_ts", BigInteger, nullable=False),
    Column("next_ts", BigInteger, nullable=True, comment="UTC ns of the next step, if any"),
    Column("record", Json, nullable=False),
    Index("ix_escalations_status_next_ts", "status", "next_ts"),
)

# Every message the gateway tried to send, with its fate.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, comment="UTC ns when it was queued"),
    Column("updated_ts", BigInteger, nullable=False),
    Column("notification", String(64), nullable=False, comment="notification id"),
    Column("alarm_id", String(ALARM_ID_MAX_LEN), nullable=True),
    Column("person", String(TYPE_MAX_LEN), nullable=True),
    Column("channel", String(TYPE_MAX_LEN), nullable=False),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="queued, sent, failed, fell_back, rate_limited, digested",
    ),
    Column("attempts", Integer, nullable=False),
    Column("error", String(1000), nullable=True),
    Column("data", Json, nullable=False),
    Index("ix_deliveries_alarm_id", "alarm_id"),
    Index("ix_deliveries_status_ts", "status", "ts"),
)

# Signed acknowledgement links handed out; a link works once, until it expires.
ack_tokens = Table(
    "ack_tokens",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("alarm_id", String(ALARM_ID_MAX_LEN), nullable=False),
    Column("person", String(TYPE_MAX_LEN), nullable=False),
    Column("issued_ts", BigInteger, nullable=False),
    Column("expires_ts", BigInteger, nullable=False),
    Column("used_ts", BigInteger, nullable=True),
    Column("used_from", String(255), nullable=True, comment="address or channel that used it"),
)

# People who log in to the control-room page and API. ``password_hash`` is an
# argon2id PHC string; the password itself is never stored.
users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(128), nullable=False),
    Column(
        "role", String(16), nullable=False, comment="viewer, guard, engineer, supervisor, admin"
    ),
    Column("password_hash", String(255), nullable=False, comment="argon2id PHC string"),
    Column("locale", String(16), nullable=False, comment="zh-CN, en, or empty for the site's"),
    Column("disabled", Boolean, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
)

# API tokens for machines: only a SHA-256 of the token is kept; the token is
# shown once, when it is created.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True, comment="public id, shown in lists and the audit"),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, comment="hex SHA-256 of the token"),
    Column("created_by", String(64), nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("expires_ts", BigInteger, nullable=True),
    Column("last_used_ts", BigInteger, nullable=True),
    Column("revoked_ts", BigInteger, nullable=True),
    UniqueConstraint("token_hash"),
)

# Browser sessions (cookie): only a SHA-256 of the session id is kept.
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True, comment="hex SHA-256 of the cookie value"),
    Column("username", String(64), nullable=False),
    Column("csrf", String(64), nullable=False, comment="token the page echoes in X-CSRF-Token"),
    Column("created_ts", BigInteger, nullable=False),
    Column("last_seen_ts", BigInteger, nullable=False),
    Column("expires_ts", BigInteger, nullable=False, comment="absolute end of the session"),
    Column("client", String(255), nullable=False, comment="address it was opened from"),
    Column("user_agent", String(255), nullable=False),
    Index("ix_sessions_username", "username"),
)

# Who did what, when, from where: every state-changing call of the API (done
# or refused), every login and logout, every user and token change.
audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, comment="UTC ns"),
    Column("username", String(64), nullable=False, comment="empty when anonymous"),
    Column("role", String(16), nullable=False),
    Column("auth", String(16), nullable=False, comment="session, token, cli or anonymous"),
    Column("action", String(64), nullable=False, comment="dotted: alarm.acknowledge, user.create"),
    Column("target", String(ALARM_ID_MAX_LEN), nullable=False),
    Column("outcome", String(16), nullable=False, comment="ok, denied, failed, error"),
    Column("client", String(255), nullable=False, comment="remote address"),
    Column("detail", Json, nullable=False),
    Index("ix_audit_ts", "ts"),
    Index("ix_audit_username_ts", "username", "ts"),
    Index("ix_audit_action_ts", "action", "ts"),
)

# Access control (gateway/access/). A card is known by a keyed hash of its
# canonical value (``card_hash``); the UID itself is kept only for the roles
# that manage cards, and never in passages.
access_credentials = Table(
    "access_credentials",
    metadata,
    Column(
        "id", String(64), primary_key=True, comment="credential id, e.g. R-0001 or V-20261121-3"
    ),
    Column("kind", String(16), nullable=False, comment="resident, staff, vehicle, visitor"),
    Column("holder", String(128), nullable=False, comment="person or vehicle owner"),
    Column("grp", String(64), nullable=False, comment="credential group (access.groups)"),
    Column("card_hash", String(64), nullable=True, comment="keyed hash of the card, plate or QR"),
    Column("card_uid", String(64), nullable=True, comment="canonical UID; empty when hash-only"),
    Column("plate", String(32), nullable=True, comment="licence plate, for vehicles"),
    Column("valid_from", BigInteger, nullable=True, comment="UTC ns"),
    Column("valid_until", BigInteger, nullable=True, comment="UTC ns"),
    Column("uses_left", Integer, nullable=True, comment="visitor passes: null = unlimited"),
    Column("blacklisted", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("certifications", Json, nullable=False),
    Column("data", Json, nullable=False, comment="phone, unit, note, host"),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    Index("ix_access_credentials_card_hash", "card_hash"),
    Index("ix_access_credentials_plate", "plate"),
)

# Where each credential is, for anti-passback ("no card, no exit").
access_presence = Table(
    "access_presence",
    metadata,
    Column("credential_id", String(64), primary_key=True),
    Column("area", String(64), nullable=False, comment="the area it entered last"),
    Column("door", String(SOURCE_MAX_LEN), nullable=False),
    Column("ts", BigInteger, nullable=False),
)

# Every passage and denial, searchable by door, credential and time.
access_passages = Table(
    "access_passages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, comment="UTC ns"),
    Column("door", String(SOURCE_MAX_LEN), nullable=False),
    Column("reader", String(SOURCE_MAX_LEN), nullable=False),
    Column("direction", String(8), nullable=False, comment="in or out"),
    Column("granted", Boolean, nullable=False),
    Column("reason", String(32), nullable=False, comment="granted or why it was denied"),
    Column("credential_id", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("card_hash", String(64), nullable=True),
    Column("card_masked", String(64), nullable=False, comment="e.g. ****614E"),
    Column("plate", String(32), nullable=True),
    Column("mode", String(8), nullable=False, comment="decide or monitor"),
    Column("data", Json, nullable=False),
    Index("ix_access_passages_ts", "ts"),
    Index("ix_access_passages_door_ts", "door", "ts"),
    Index("ix_access_passages_credential_id_ts", "credential_id", "ts"),
)
