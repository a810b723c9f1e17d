"""Alarm commands received by the uplink: JSON on ``<root>/v1/<site>/alarms/command``.

Payload (version 1)::

    {"action": "acknowledge", "alarm": "tx1-winding_alarm@tx1.winding_temp_max",
     "user": "张工", "note": "on my way", "id": "optional correlation id"}

``action`` is one of :data:`ACTIONS`; ``shelve`` also takes ``duration_s`` and
``reason`` (as does ``out_of_service``);
``maintenance`` takes ``device`` and ``on`` instead of ``alarm``. The command
is put on the bus as ``Command(target="alarms", ...)`` with the role the
uplink's ``alarm_commands.role`` grants; the alarm manager checks it. A
payload that cannot be understood becomes a ``mqtt.command_rejected`` event
(kept in the event store with the reason), never a silent drop.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.model import Command

__all__ = ["ACTIONS", "CommandPayloadError", "parse_alarm_command"]

ACTIONS = frozenset(
    {
        "acknowledge",
        "comment",
        "shelve",
        "unshelve",
        "reset",
        "out_of_service",
        "return_to_service",
        "maintenance",
    }
)
_MAX_TEXT = 1000


class CommandPayloadError(ValueError):
    """The payload is not a usable alarm command; the message says why."""


def parse_alarm_command(payload: bytes, role: str, origin: str) -> Command:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CommandPayloadError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CommandPayloadError("expected a JSON object")
    action = doc.get("action")
    if action not in ACTIONS:
        raise CommandPayloadError(
            f"'action' must be one of {', '.join(sorted(ACTIONS))}, got {action!r}"
        )
    user = _text(doc, "user", required=True)
    args: dict[str, Any] = {"note": _text(doc, "note")}
    if action == "maintenance":
        args["device"] = _text(doc, "device", required=True)
        on = doc.get("on")
        if not isinstance(on, bool):
            raise CommandPayloadError("'on' must be true or false")
        args["on"] = on
    else:
        args["id"] = _text(doc, "alarm", required=True)
    reason = _text(doc, "reason")
    if reason:
        args["reason"] = reason  # shelve and out_of_service want one
    if action == "shelve":
        duration = doc.get("duration_s")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
            raise CommandPayloadError("'duration_s' must be a positive number of seconds")
        args["duration_s"] = float(duration)
    return Command(
        target="alarms",
        action=action,
        args=args,
        id=_text(doc, "id"),
        user=user,
        role=role,
        origin=origin,
    )


def _text(doc: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise CommandPayloadError(f"'{key}' must be a string")
    value = value.strip()
    if required and not value:
        raise CommandPayloadError(f"'{key}' is required")
    if len(value) > _MAX_TEXT or "\x00" in value:
        raise CommandPayloadError(f"'{key}' is too long or contains a NUL character")
    return value
