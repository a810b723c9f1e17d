"""The uplink's topic tree and payloads, version 1 (documented in README.md).

::

    <root>/v1/<site>/readings/<device>/<point>   {"v": 21.5, "ts": <ns>, "q": "good"}
    <root>/v1/<site>/events/<type, dots as />    {"type", "source", "ts", "data"}
    <root>/v1/<site>/alarms/<alarm id>           the Alarm as JSON
    <root>/v1/<site>/availability/<device>       "online" / "offline" (retained)
    <root>/v1/<site>/gateway/status              "online" / "offline" (retained; will)

A name that would break the tree (a '/', '+', '#' or NUL inside one level)
has those characters replaced by '_'. Timestamps are UTC nanoseconds since
the epoch, as everywhere in the gateway. Payloads are compact UTF-8 JSON;
values JSON cannot hold are written as strings (a datetime in event data)
or null (NaN, infinities).
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.model import Alarm, Event, Reading

__all__ = [
    "OFFLINE",
    "ONLINE",
    "VERSION",
    "alarm_command_topic",
    "alarm_payload",
    "alarm_topic",
    "availability_topic",
    "base",
    "event_payload",
    "event_topic",
    "level",
    "reading_payload",
    "reading_topic",
    "status_topic",
]

VERSION = "v1"
ONLINE = b"online"
OFFLINE = b"offline"

_BAD = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
).encode


def _dumps(doc: Any) -> str:
    try:
        return _encode(doc)
    except ValueError:  # NaN or infinity somewhere: JSON has no such numbers
        return _encode(_finite(doc))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def level(name: str) -> str:
    """``name`` made safe as one topic level."""
    return name.translate(_BAD) or "_"


def base(root: str, site: str) -> str:
    return f"{root}/{VERSION}/{level(site)}"


def reading_topic(root: str, site: str, device: str, point: str) -> str:
    return f"{base(root, site)}/readings/{level(device)}/{level(point)}"


def event_topic(root: str, site: str, event_type: str) -> str:
    """``door.forced`` -> ``.../events/door/forced`` (so ``events/door/#`` works)."""
    return f"{base(root, site)}/events/" + "/".join(level(p) for p in event_type.split("."))


def alarm_topic(root: str, site: str, alarm_id: str) -> str:
    return f"{base(root, site)}/alarms/{level(alarm_id)}"


def availability_topic(root: str, site: str, device: str) -> str:
    return f"{base(root, site)}/availability/{level(device)}"


def alarm_command_topic(root: str, site: str) -> str:
    """Where alarm commands come in (``alarm_commands:`` of the uplink)."""
    return f"{base(root, site)}/alarms/command"


def status_topic(root: str, site: str) -> str:
    return f"{base(root, site)}/gateway/status"


def reading_payload(r: Reading) -> bytes:
    return _dumps({"v": r.value, "ts": r.ts, "q": r.quality.value}).encode()


def event_payload(e: Event) -> bytes:
    doc: dict[str, Any] = {"type": e.type, "source": e.source, "ts": e.ts, "data": dict(e.data)}
    return _dumps(doc).encode()


def alarm_payload(a: Alarm) -> bytes:
    doc: dict[str, Any] = {
        "id": a.id,
        "rule": a.rule,
        "source": a.source,
        "state": a.state.value,
        "priority": a.priority.value,
        "ts": a.ts,
        "message": a.message,
        "transition": a.transition,
        "category": a.category,
        "route": a.route,
        "device": a.device,
        "user": a.user,
        "note": a.note,
        "data": dict(a.data),
    }
    return _dumps(doc).encode()
