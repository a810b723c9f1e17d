"""What the notifier sends: a :class:`Notification` for one :class:`Recipient`,
and its :class:`Rendered` text (made by :func:`gateway.notify.templates.render`).

The alarm a notification is about travels as an *AlarmView*: a plain mapping
with the keys of :data:`ALARM_VIEW_KEYS` (any may be missing; templates show
what is there). A digest carries its alarms in ``items`` (AlarmViews, each with
an optional ``ack_url`` of its own) and an empty ``alarm``.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.i18n import LOCALES
from gateway.model import Priority

__all__ = [
    "ADDRESS_KINDS",
    "ALARM_VIEW_KEYS",
    "KINDS",
    "Kind",
    "Notification",
    "Recipient",
    "Rendered",
    "document",
    "dumps",
    "new_id",
]

Kind = Literal["alarm", "reminder", "escalated", "cleared", "digest", "test"]
KINDS: Final = frozenset(get_args(Kind))

ADDRESS_KINDS: Final = frozenset(
    {"email", "mobile", "wecom_userid", "dingtalk_userid", "feishu_open_id", "mqtt_topic"}
)
"""Address kinds the built-in channels read from :attr:`Recipient.addresses`."""

ALARM_VIEW_KEYS: Final = (
    "id",
    "rule",
    "description",
    "priority",
    "category",
    "state",
    "device",
    "device_name",
    "location",
    "source",
    "value",
    "limit",
    "unit",
    "level",
    "ts",
    "count",
    "control_room",
)


def new_id() -> str:
    """A fresh notification id (uuid4, hex)."""
    return uuid.uuid4().hex


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person (or a group address) to notify."""

    id: str
    name: str
    locale: str = "zh-CN"  # one of gateway.i18n.LOCALES
    addresses: Mapping[str, str] = field(default_factory=dict)  # kind -> address

    def __post_init__(self) -> None:
        if self.locale not in LOCALES:
            raise ValueError(
                f"recipient {self.id!r}: unknown locale {self.locale!r}; use {', '.join(LOCALES)}"
            )

    def address(self, kind: str) -> str | None:
        """The address of ``kind``, or None when the recipient has none (or an empty one)."""
        value = self.addresses.get(kind)
        return value.strip() or None if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one recipient.

    ``level`` is the escalation level (for kind ``escalated``); ``site`` names
    the site (the MQTT topic's ``{site}``); ``timezone`` is the site's, for the
    times shown.
    """

    id: str
    kind: Kind
    recipient: Recipient
    alarm: Mapping[str, Any] = field(default_factory=dict)  # AlarmView; empty for a digest
    items: Sequence[Mapping[str, Any]] = ()  # AlarmViews (+ 'ack_url') for a digest
    ack_url: str = ""
    ts: int = 0  # UTC ns when it was made
    priority: Priority = Priority.MEDIUM
    timezone: str = "Asia/Shanghai"
    level: int = 0
    site: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notification kind {self.kind!r}; use {sorted(KINDS)}")
        try:
            _zone(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if not isinstance(self.priority, Priority):
            object.__setattr__(self, "priority", Priority(self.priority))

    @property
    def alarm_id(self) -> str | None:
        value = self.alarm.get("id")
        return str(value) if value else None

    def local_time(self, ts_ns: int) -> datetime:
        """``ts_ns`` (UTC ns) as an aware datetime in the site's time zone."""
        return datetime.fromtimestamp(ts_ns / 1e9, tz=_zone(self.timezone))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A notification as text, in the recipient's language.

    ``text`` is plain text, ``markdown`` the chat-robot form, ``html`` the
    e-mail form, ``short`` one line for SMS; each ends with the ack link.
    """

    subject: str
    text: str
    markdown: str
    html: str = ""
    short: str = ""


def _default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN / inf are not JSON
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Chinese kept readable; odd values as text, NaN as "nan")."""
    try:
        text = json.dumps(
            doc, ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False
        )
    except ValueError:
        text = json.dumps(_finite(doc), ensure_ascii=False, separators=(",", ":"), default=_default)
    return text.encode("utf-8")


def document(n: Notification, rendered: Rendered) -> dict[str, Any]:
    """The notification as a JSON document (webhook and MQTT payload, version 1)."""
    return {
        "version": 1,
        "id": n.id,
        "kind": n.kind,
        "ts": n.ts,
        "site": n.site,
        "priority": n.priority.value,
        "level": n.level,
        "recipient": {"id": n.recipient.id, "name": n.recipient.name, "locale": n.recipient.locale},
        "alarm": dict(n.alarm),
        "items": [dict(i) for i in n.items],
        "ack_url": n.ack_url,
        "subject": rendered.subject,
        "text": rendered.text,
    }
